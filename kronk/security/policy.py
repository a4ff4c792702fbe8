"""Rego policies, evaluated in process by regorus.

regorus cannot verify RS256 itself (it has no `io.jwt.*` builtins), so Python checks
the signature and hands the verified claims plus facts to two policies that decide:
`authentication.rego` (is the token acceptable) and `authorization.rego` (may it call
this route). Policies are compiled once. A regorus engine may only be touched by the
thread that made it, so each `PolicyEngine` owns one worker thread that builds, uses
and drops its engine; `evaluate` can be called from any thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regorus

from kronk.errors import ConfigError

AUTHENTICATION_FILE = "authentication.rego"
AUTHORIZATION_FILE = "authorization.rego"
AUTHENTICATION_RULE = "data.kronk.authentication.decision"
AUTHORIZATION_RULE = "data.kronk.authorization.decision"
MAX_POLICY_BYTES = 1024 * 1024


def default_policy_dir() -> Path:
    """The policies shipped in the package."""
    return Path(__file__).with_name("policies")


def load_policy_sources(directory: Path) -> dict[str, str]:
    """Every `*.rego` file of a folder, which must hold both Kronk policy files."""
    if not directory.is_dir():
        raise ConfigError(f"policy folder {directory} does not exist")
    sources: dict[str, str] = {}
    for path in sorted(directory.glob("*.rego")):
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise ConfigError(f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes")
        sources[path.name] = path.read_text(encoding="utf-8")
    missing = [name for name in (AUTHENTICATION_FILE, AUTHORIZATION_FILE) if name not in sources]
    if missing:
        raise ConfigError(f"policy folder {directory} lacks {', '.join(missing)}")
    return sources


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str | None:
        return self.reasons[0] if self.reasons else None


@dataclass(frozen=True, slots=True)
class PolicyResult:
    authentication: Decision
    authorization: Decision


def _decision(rule: str, value: Any) -> Decision:
    if not isinstance(value, Mapping) or not isinstance(value.get("allow"), bool):
        raise ConfigError(f"policy rule {rule} must be an object with a boolean 'allow', got {value!r}")
    reasons = value.get("reasons", [])
    if not isinstance(reasons, (list, tuple)) or not all(isinstance(r, str) for r in reasons):
        raise ConfigError(f"policy rule {rule}: 'reasons' must be a list of strings")
    return Decision(value["allow"], tuple(reasons))


_PROBE_INPUT: dict[str, Any] = {
    "signature_valid": True,
    "now": 0,
    "leeway": 0,
    "issuer": "probe",
    "mode": "full",
    "token": {"header": {"alg": "RS256", "kid": "probe"}, "claims": {}},
    "route": {"path": "/", "kind": "other", "access": "admin", "endpoint": None},
}


class PolicyEngine:
    """The two compiled policies, safe to evaluate from any thread."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_policy_dir()
        sources = load_policy_sources(self.directory)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kronk-policy")
        self._worker: threading.Thread | None = None
        self._engine: regorus.Engine | None = None
        self._closed = False
        try:
            self._executor.submit(self._build, sources).result()
        except BaseException:
            self.close()
            raise

    def _build(self, sources: Mapping[str, str]) -> None:
        self._worker = threading.current_thread()
        failure: str | None = None
        try:
            self._engine = self._compile(sources)
            self._evaluate(_PROBE_INPUT)  # a policy without a decision rule fails now, not per request
        except Exception as exc:  # noqa: BLE001 - re-raised below as one ConfigError
            failure = str(exc) if isinstance(exc, ConfigError) else f"policy engine failed: {_first_line(exc)}"
            self._engine = None  # dropped here, on its own thread (the traceback is gone with `exc`)
        if failure is not None:
            raise ConfigError(failure)

    def _compile(self, sources: Mapping[str, str]) -> regorus.Engine:
        engine = regorus.Engine()
        for name, text in sources.items():
            try:
                engine.add_policy(name, text)
            except RuntimeError as exc:
                raise ConfigError(f"policy {self.directory / name} does not compile: {_first_line(exc)}") from None
        return engine

    def _evaluate(self, facts: Mapping[str, Any]) -> PolicyResult:
        # The engine is only reached through `self`: a local reference kept alive by a
        # traceback would be dropped on whichever thread handles the error.
        if self._engine is None:
            raise ConfigError("the policy engine is closed")
        self._engine.set_input_json(json.dumps(facts))
        values: list[Any] = []
        failure: str | None = None
        for rule in (AUTHENTICATION_RULE, AUTHORIZATION_RULE):
            try:
                values.append(self._engine.eval_rule(rule))
            except RuntimeError as exc:
                failure = f"policy rule {rule} failed: {_first_line(exc)}"
                break
        if failure is not None:
            raise ConfigError(failure)
        return PolicyResult(_decision(AUTHENTICATION_RULE, values[0]), _decision(AUTHORIZATION_RULE, values[1]))

    def evaluate(self, facts: Mapping[str, Any]) -> PolicyResult:
        """Both decisions for one request's facts (see authentication.rego for the input)."""
        if self._closed:
            raise ConfigError("the policy engine is closed")
        if threading.current_thread() is self._worker:
            return self._evaluate(facts)
        return self._executor.submit(self._evaluate, facts).result()

    def close(self) -> None:
        """Drop the engine on its own thread and stop the worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self._drop)
        self._executor.shutdown(wait=True)

    def _drop(self) -> None:
        self._engine = None

    def __enter__(self) -> PolicyEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    """regorus errors carry a Rust backtrace after the message; keep the message."""
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    message = []
    for line in lines:
        if line.startswith("Stack backtrace"):
            break
        message.append(line.strip())
    return " ".join(message) or type(exc).__name__
