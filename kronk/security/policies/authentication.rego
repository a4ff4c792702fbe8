# Kronk authentication policy: is this (signature-verified) token acceptable at all?
#
# Kronk verifies the RS256 signature in Python against the key named by the token's
# KID, then evaluates this policy with:
#   input.signature_valid  true when the signature checked out
#   input.now              current UNIX time (seconds)
#   input.leeway           tolerated clock skew (seconds)
#   input.issuer           the issuer this server expects
#   input.token.header     the JOSE header {alg, kid, typ}
#   input.token.claims     the token's claims {iss, sub, iat, exp, nbf?, jti, admin, endpoints}
#   input.route            {path, kind, access, endpoint}
#   input.mode             "management" or "full"
# and reads data.kronk.authentication.decision = {"allow": bool, "reasons": [string]}.
# The first reason becomes the error code of the 401 response.
package kronk.authentication

import rego.v1

claims := input.token.claims

reasons contains "signature_invalid" if not input.signature_valid == true

reasons contains "claim_missing" if {
	some name in ["iss", "sub", "iat", "exp"]
	not present(name)
}

present(name) if {
	is_string(claims[name])
	claims[name] != ""
}

present(name) if is_number(claims[name])

reasons contains "token_expired" if input.now >= claims.exp + input.leeway

reasons contains "token_not_yet_valid" if claims.iat > input.now + input.leeway

reasons contains "token_not_yet_valid" if claims.nbf > input.now + input.leeway

reasons contains "issuer_mismatch" if claims.iss != input.issuer

default allow := false

allow if {
	input.signature_valid == true
	count(reasons) == 0
}

decision := {"allow": allow, "reasons": sort(reasons)}
