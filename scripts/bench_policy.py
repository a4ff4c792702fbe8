#!/usr/bin/env python3
"""What the Rego policies cost per request: one `PolicyEngine.evaluate` (authentication
and authorization, evaluated by regorus in the engine's worker thread) for a few typical
requests, in microseconds.

Each case is evaluated `--rounds` times after a warm-up, in `--batches` batches; the
table shows the median and the fastest batch's time per call. The RS256 signature check
that the middleware does before the policies is not included.

    python scripts/bench_policy.py [--rounds 2000] [--batches 5] [--policies DIR]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from kronk.security.policy import PolicyEngine


def facts(**changes: Any) -> dict[str, Any]:
    """The facts the middleware hands the policies for a valid token calling chat completions."""
    claims = {"iss": "kronk", "sub": "alice", "iat": 1000, "exp": 5000, "admin": False,
              "endpoints": {"chat-completions": {"limit": 5, "window": "day"}}}
    claims.update(changes.pop("claims", {}))
    base: dict[str, Any] = {
        "signature_valid": True, "now": 2000, "leeway": 30, "issuer": "kronk", "mode": "full",
        "token": {"header": {"alg": "RS256", "kid": "k"}, "claims": claims},
        "route": {"path": "/v1/chat/completions", "kind": "inference", "access": "grant",
                  "endpoint": "chat-completions"},
    }
    base.update(changes)
    return base


CASES: dict[str, dict[str, Any]] = {
    "allowed (grant)": facts(),
    "allowed (admin)": facts(claims={"admin": True}),
    "denied (no grant)": facts(claims={"endpoints": {}}),
    "denied (expired)": facts(now=9000),
}


def per_call_us(engine: PolicyEngine, case: dict[str, Any], rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        engine.evaluate(case)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="evaluations per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--policies", type=Path, default=None, help="a policy folder (default: the shipped one)")
    args = parser.parse_args()
    with PolicyEngine(args.policies) as engine:
        print(f"{'case':<20} {'median us':>10} {'best us':>10}")
        for name, case in CASES.items():
            result = engine.evaluate(case)  # warm-up, and a check that the case decides as named
            allowed = result.authentication.allow and result.authorization.allow
            if allowed != name.startswith("allowed"):
                raise SystemExit(f"{name}: the policies decided allow={allowed}")
            per_call_us(engine, case, max(1, args.rounds // 10))
            times = [per_call_us(engine, case, args.rounds) for _ in range(args.batches)]
            print(f"{name:<20} {statistics.median(times):>10.1f} {min(times):>10.1f}")


if __name__ == "__main__":
    main()
