# Kronk authorization policy: may this authenticated token call this route?
#
# Same input as authentication.rego; input.route.access is what the route needs:
#   "authenticated"  any valid token (model discovery, unknown routes in full mode)
#   "grant"          a grant for input.route.endpoint in the token's endpoints claim
#   "admin"          an admin token (management APIs; /metrics in full mode)
# Admin tokens may call everything. Rate limits are counted by Kronk after this allows.
# Kronk reads data.kronk.authorization.decision = {"allow": bool, "reasons": [string]};
# the first reason becomes the error code of the 403 response.
package kronk.authorization

import rego.v1

claims := input.token.claims

default allow := false

allow if claims.admin == true

allow if input.route.access == "authenticated"

allow if {
	input.route.access == "grant"
	is_object(claims.endpoints[input.route.endpoint])
}

reasons contains "admin_required" if {
	not allow
	input.route.access == "admin"
}

reasons contains "endpoint_not_granted" if {
	not allow
	input.route.access == "grant"
}

reasons contains "access_denied" if {
	not allow
	not input.route.access in {"admin", "grant"}
}

decision := {"allow": allow, "reasons": sort(reasons)}
