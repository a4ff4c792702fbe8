"""The Rego policies, evaluated by regorus: shipped decisions, operator overrides, failures."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from kronk.errors import ConfigError
from kronk.security.policy import PolicyEngine, default_policy_dir


def facts(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "kronk",
        "sub": "alice",
        "iat": 1000,
        "exp": 5000,
        "admin": False,
        "endpoints": {"chat-completions": {"limit": 5, "window": "day"}},
    }
    claims.update(changes.pop("claims", {}))
    base: dict[str, Any] = {
        "signature_valid": True,
        "now": 2000,
        "leeway": 30,
        "issuer": "kronk",
        "mode": "full",
        "token": {"header": {"alg": "RS256", "kid": "k"}, "claims": claims},
        "route": {
            "path": "/v1/chat/completions",
            "kind": "inference",
            "access": "grant",
            "endpoint": "chat-completions",
        },
    }
    base.update(changes)
    return base


@pytest.fixture(scope="module")
def engine() -> Any:
    with PolicyEngine() as policy:
        yield policy


def test_valid_token_with_grant_is_allowed(engine: PolicyEngine) -> None:
    result = engine.evaluate(facts())
    assert result.authentication.allow and result.authorization.allow


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signature_valid": False}, "signature_invalid"),
        ({"now": 5030}, "token_expired"),
        ({"claims": {"iat": 2031}}, "token_not_yet_valid"),
        ({"claims": {"nbf": 2100}}, "token_not_yet_valid"),
        ({"claims": {"iss": "evil"}}, "issuer_mismatch"),
        ({"claims": {"sub": None}}, "claim_missing"),
    ],
)
def test_authentication_rejections(engine: PolicyEngine, changes: dict[str, Any], reason: str) -> None:
    result = engine.evaluate(facts(**changes))
    assert not result.authentication.allow
    assert reason in result.authentication.reasons


def test_leeway_tolerates_small_skew(engine: PolicyEngine) -> None:
    assert engine.evaluate(facts(now=5029)).authentication.allow
    assert engine.evaluate(facts(claims={"iat": 2030})).authentication.allow


@pytest.mark.parametrize(
    ("route", "admin", "allowed", "reason"),
    [
        ({"access": "grant", "endpoint": "embeddings"}, False, False, "endpoint_not_granted"),
        ({"access": "grant", "endpoint": "embeddings"}, True, True, None),
        ({"access": "admin", "endpoint": None}, False, False, "admin_required"),
        ({"access": "admin", "endpoint": None}, True, True, None),
        ({"access": "authenticated", "endpoint": None}, False, True, None),
    ],
)
def test_authorization(
    engine: PolicyEngine, route: dict[str, Any], admin: bool, allowed: bool, reason: str | None
) -> None:
    decision = engine.evaluate(
        facts(route={"path": "/x", "kind": "other", **route}, claims={"admin": admin})
    ).authorization
    assert decision.allow is allowed
    assert decision.reason == reason


def test_evaluate_from_many_threads(engine: PolicyEngine) -> None:
    """A regorus engine is bound to its thread; PolicyEngine must hide that."""
    results: list[bool] = []

    def work() -> None:
        for _ in range(20):
            results.append(engine.evaluate(facts()).authorization.allow)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 80


def _copy_defaults(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), folder)
    return folder


OPERATOR_AUTHORIZATION = """
package kronk.authorization

import rego.v1

# An operator's own rule set: admins everywhere, nobody named mallory anywhere.
blocked if input.token.claims.sub == "mallory"

default allow := false

allow if {
	not blocked
	input.token.claims.admin == true
}

allow if {
	not blocked
	input.route.access == "grant"
	is_object(input.token.claims.endpoints[input.route.endpoint])
}

reasons contains "blocked_subject" if blocked

decision := {"allow": allow, "reasons": sort(reasons)}
"""


def test_operator_policy_replaces_the_shipped_one(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    (folder / "authorization.rego").write_text(OPERATOR_AUTHORIZATION)
    with PolicyEngine(folder) as policy:
        assert policy.evaluate(facts()).authorization.allow
        denied = policy.evaluate(facts(claims={"sub": "mallory"})).authorization
        assert not denied.allow and denied.reasons == ("blocked_subject",)


def test_policy_failing_at_evaluation_is_a_config_error(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    text = (folder / "authorization.rego").read_text()
    # two values for one complete rule: regorus reports a conflict when it is evaluated
    (folder / "authorization.rego").write_text(text + '\nallow := false if input.token.claims.sub == "mallory"\n')
    with PolicyEngine(folder) as policy, pytest.raises(ConfigError, match="failed"):
        policy.evaluate(facts(claims={"sub": "mallory"}))


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    (folder / "authentication.rego").unlink()
    with pytest.raises(ConfigError, match="lacks authentication.rego"):
        PolicyEngine(folder)
    with pytest.raises(ConfigError, match="does not exist"):
        PolicyEngine(tmp_path / "nowhere")


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    (folder / "authorization.rego").write_text("package kronk.authorization\nallow if {{{\n")
    with pytest.raises(ConfigError, match="authorization.rego does not compile") as caught:
        PolicyEngine(folder)
    assert "Stack backtrace" not in str(caught.value)


def test_policy_without_decision_fails_at_load(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    (folder / "authorization.rego").write_text("package kronk.authorization\nimport rego.v1\nallow := true\n")
    with pytest.raises(ConfigError, match="authorization.decision"):
        PolicyEngine(folder)


def test_decision_of_wrong_shape_fails_at_load(tmp_path: Path) -> None:
    folder = _copy_defaults(tmp_path)
    (folder / "authorization.rego").write_text('package kronk.authorization\nimport rego.v1\ndecision := "yes"\n')
    with pytest.raises(ConfigError, match="boolean 'allow'"):
        PolicyEngine(folder)


def test_closed_engine_refuses(tmp_path: Path) -> None:
    policy = PolicyEngine()
    policy.close()
    policy.close()
    with pytest.raises(ConfigError, match="closed"):
        policy.evaluate(facts())
