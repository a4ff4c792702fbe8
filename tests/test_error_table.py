"""One declaration per error: every KronkError class has its own status and code, and every edge agrees."""

from __future__ import annotations

import importlib
import json
import pkgutil

import pytest

import kronk
from kronk import errors as E
from kronk.cli.client import error_from_body
from kronk.http_errors import error_response


def _all_error_classes() -> list[type[E.KronkError]]:
    for module in pkgutil.walk_packages(kronk.__path__, "kronk."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
    found, pending = [], [E.KronkError]
    while pending:
        cls = pending.pop()
        if cls not in found:  # a class with two error parents is reached twice
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


CLASSES = _all_error_classes()


def test_every_error_class_declares_its_own_unique_code_and_a_valid_status() -> None:
    codes: dict[str, type] = {}
    for cls in CLASSES:
        assert "error_code" in vars(cls), f"{cls.__module__}.{cls.__name__} declares no error_code of its own"
        assert cls.error_code not in codes, f"{cls.__name__} and {codes[cls.error_code].__name__} share a code"
        codes[cls.error_code] = cls
        assert 400 <= cls.http_status <= 599, cls
        assert cls.openai_type and cls.anthropic_type


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_the_cli_reads_back_the_type_the_server_answered(cls: type[E.KronkError]) -> None:
    original = cls.from_wire("something went wrong", "field")
    assert type(original) is cls
    for style in ("openai", "anthropic"):
        response = error_response(original, style)  # type: ignore[arg-type]
        assert response.status == cls.http_status
    response = error_response(original, "openai")
    body = json.loads(response.text)
    assert body["error"]["code"] in (cls.error_code, getattr(original, "code", None))
    rebuilt = error_from_body(response.status, body)
    assert type(rebuilt) is cls
    assert str(rebuilt) == str(original)


def test_security_reasons_stay_in_the_code_and_status_picks_the_type() -> None:
    response = error_response(E.AuthenticationError("expired", code="token_expired"), "openai")
    body = json.loads(response.text)
    assert response.status == 401 and body["error"]["code"] == "token_expired"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert isinstance(error_from_body(401, body), E.AuthenticationError)
