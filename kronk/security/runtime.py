"""The security layer of one running server: keys, policies and rate limits together.

`SecurityRuntime.admit` is the whole per-request check, in order: verify the token's
signature (Python), ask the Rego policies (authentication, then authorization), then
count the call against the token's grant. It blocks (disk, Redis, policy thread), so
the middleware calls it via `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from kronk.errors import AuthenticationError, PermissionDeniedError
from kronk.security.admin import BootstrapResult, bootstrap
from kronk.security.config import SecurityConfig, SecurityMode
from kronk.security.endpoints import Access, Route
from kronk.security.keys import KeyStore
from kronk.security.policy import PolicyEngine
from kronk.security.ratelimit import RateLimiter, open_rate_store
from kronk.security.tokens import TokenClaims, VerifiedToken, verify_token

log = logging.getLogger(__name__)

Clock = Callable[[], float]

_AUTHENTICATION_MESSAGES: dict[str, str] = {
    "signature_invalid": "token signature is invalid",
    "claim_missing": "token lacks a required claim (iss, sub, iat, exp)",
    "token_expired": "token has expired",
    "token_not_yet_valid": "token is not valid yet (iat or nbf is in the future)",
    "issuer_mismatch": "token was issued by another issuer",
}
_AUTHORIZATION_MESSAGES: dict[str, str] = {
    "admin_required": "this route needs an admin token",
    "endpoint_not_granted": "the token has no grant for endpoint {endpoint!r}",
    "access_denied": "the token may not call this route",
}


@dataclass(eq=False)
class SecurityRuntime:
    """Opened once per server (`open`), closed at shutdown (`close`)."""

    config: SecurityConfig
    keys: KeyStore
    policy: PolicyEngine | None
    limiter: RateLimiter | None
    _: KW_ONLY
    clock: Clock = time.time
    bootstrapped: BootstrapResult | None = None

    @classmethod
    def open(cls, config: SecurityConfig, *, clock: Clock = time.time) -> SecurityRuntime:
        """Bootstrap keys (security on), compile policies, open the rate store (full mode)."""
        keys = KeyStore(config.keys_path)
        if config.mode is SecurityMode.OFF:
            return cls(config, keys, None, None, clock=clock)
        boot = bootstrap(keys, config, now=clock())
        policy = PolicyEngine(config.policy_dir)
        limiter: RateLimiter | None = None
        try:
            if config.mode is SecurityMode.FULL:
                limiter = RateLimiter(open_rate_store(config.rate_store_url, clock=clock))
        except BaseException:
            policy.close()
            raise
        return cls(config, keys, policy, limiter, clock=clock, bootstrapped=boot)

    def close(self) -> None:
        if self.policy is not None:
            self.policy.close()
        if self.limiter is not None:
            self.limiter.store.close()

    def facts(self, verified: VerifiedToken, route: Route, access: Access, now: float) -> dict[str, Any]:
        """The input document of the Rego policies."""
        return {
            "signature_valid": True,
            "now": int(now),
            "leeway": self.config.leeway_seconds,
            "issuer": self.config.issuer,
            "mode": self.config.mode.value,
            "token": {"header": dict(verified.header), "claims": dict(verified.payload)},
            "route": {
                "path": route.path,
                "kind": route.kind.value,
                "access": access.value,
                "endpoint": route.endpoint.value if route.endpoint else None,
            },
        }

    def tool_denial(self, token: str, route: Route, access: Access, tool: dict[str, Any]) -> str | None:
        """The policies asked about one server tool call (`input.tool` = {name, source, server});
        None when allowed, else the first reason. Nothing is counted against a grant."""
        if self.policy is None:
            return None
        verified = verify_token(token, self.keys, max_bytes=self.config.max_token_bytes)
        result = self.policy.evaluate({**self.facts(verified, route, access, self.clock()), "tool": dict(tool)})
        if not result.authentication.allow:
            return result.authentication.reason or "policy_denied"
        if not result.authorization.allow:
            return result.authorization.reason or "policy_denied"
        return None

    def admit(self, token: str, route: Route, access: Access) -> TokenClaims:
        """Authenticate, authorize and count one call; raise a SecurityError to refuse it."""
        if self.policy is None:
            raise AuthenticationError("security is off; nothing to check", code="security_off")
        verified = verify_token(token, self.keys, max_bytes=self.config.max_token_bytes)
        now = self.clock()
        result = self.policy.evaluate(self.facts(verified, route, access, now))
        if not result.authentication.allow:
            code = result.authentication.reason or "policy_denied"
            message = _AUTHENTICATION_MESSAGES.get(code, f"token rejected by the authentication policy ({code})")
            raise AuthenticationError(message, code=code)
        if not result.authorization.allow:
            code = result.authorization.reason or "policy_denied"
            template = _AUTHORIZATION_MESSAGES.get(code, "the authorization policy denied this call ({code})")
            endpoint = route.endpoint.value if route.endpoint else None
            raise PermissionDeniedError(template.format(endpoint=endpoint, code=code), code=code)
        claims = verified.claims
        if access is Access.GRANT and route.endpoint is not None and not claims.admin and self.limiter is not None:
            grant = claims.endpoints.get(route.endpoint.value)
            if grant is not None:
                self.limiter.check(verified.counter_id, route.endpoint.value, grant, now)
        return claims
