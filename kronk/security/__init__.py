"""Security: RS256 tokens with rotating keys, Rego policies (regorus), per-token rate limits.

The server wires it with `setup_security(app, SecurityConfig.from_env())` and
`add_security_routes(app)`; the CLI (`kronk security`) works on the same key files.
Names are imported lazily so `kronk --help` and the CLI never load aiohttp or regorus early.
"""

from __future__ import annotations

from kronk.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "SecurityConfig": "kronk.security.config",
    "SecurityMode": "kronk.security.config",
    "Endpoint": "kronk.security.endpoints",
    "KeyStore": "kronk.security.keys",
    "PolicyEngine": "kronk.security.policy",
    "RateLimiter": "kronk.security.ratelimit",
    "open_rate_store": "kronk.security.ratelimit",
    "SecurityRuntime": "kronk.security.runtime",
    "Grant": "kronk.security.tokens",
    "TokenClaims": "kronk.security.tokens",
    "Window": "kronk.security.tokens",
    "issue_token": "kronk.security.tokens",
    "parse_grants": "kronk.security.tokens",
    "verify_token": "kronk.security.tokens",
    "CLAIMS_KEY": "kronk.security.middleware",
    "SECURITY_STATE": "kronk.security.middleware",
    "SecurityState": "kronk.security.middleware",
    "create_security_middleware": "kronk.security.middleware",
    "security_context": "kronk.security.middleware",
    "setup_security": "kronk.security.middleware",
    "add_security_routes": "kronk.security.routes",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
