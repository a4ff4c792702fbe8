"""kronk.wire and the document built from it: error paths and messages, strictness, null
handling, and /openapi.json listing every status each operation can answer (no llama.cpp needed)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import Field, model_validator

from kronk import errors as E
from kronk.server.app import create_app
from kronk.server.openai.bodies import ChatCompletionRequest, CompletionRequest, TokenizeRequest
from kronk.server.openai.chat import parse_chat
from kronk.server.openai.protocol import Limits
from kronk.server.openapi import build_document
from kronk.settings import ServerSettings
from kronk.wire import FieldError, Int, WireModel, by_json_type, extras, parse, pattern, tagged


class Text(WireModel):
    type: Literal["text"]
    text: str


class Image(WireModel):
    type: Literal["image"]
    url: Annotated[str, Field(min_length=1)]


class Item(WireModel):
    role: Literal["user", "assistant"]
    content: by_json_type("a string or parts", string=str, array=list[tagged("type", Text, Image)])  # type: ignore[valid-type]


class Sample(WireModel):
    items: Annotated[list[Item], Field(min_length=1)]
    n: Annotated[Int, Field(ge=1, le=4)] = 1
    temperature: Annotated[float, Field(ge=0)] | None = None
    flag: bool = False
    name: Annotated[str, pattern(r"^[a-z]+$", "must be lowercase letters")] | None = None

    @model_validator(mode="after")
    def _check(self) -> Sample:
        if self.n == 3 and self.flag:
            raise FieldError("flag", "cannot be set with n=3")
        return self


ITEMS = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(("body", "param", "message"), [
    ({}, "items", "items: is required"),
    ({"items": None}, "items", "items: is required"),
    ({"items": []}, "items", "items: must not be empty"),
    ({"items": "x"}, "items", "items: must be an array, got string"),
    ({"items": [{"content": "x"}]}, "items[0].role", "items[0].role: is required"),
    ({"items": [{"role": "bot", "content": "x"}]}, "items[0].role",
     "items[0].role: must be one of 'user' or 'assistant', got 'bot'"),
    ({"items": [{"role": "user", "content": 5}]}, "items[0].content",
     "items[0].content: must be a string or parts"),
    ({"items": [{"role": "user", "content": [{"type": "video"}]}]}, "items[0].content[0].type",
     "items[0].content[0].type: must be one of 'text', 'image', got 'video'"),
    ({"items": [{"role": "user", "content": [{"type": {"x": 1}}]}]}, "items[0].content[0].type", None),
    ({"items": [{"role": "user", "content": [7]}]}, "items[0].content[0]",
     "items[0].content[0]: must be a JSON object, got integer"),
    ({"items": [{"role": "user", "content": [{"type": "image", "url": ""}]}]}, "items[0].content[0].url",
     "items[0].content[0].url: must not be empty"),
    ({"items": ITEMS, "n": "2"}, "n", "n: must be an integer, got string"),
    ({"items": ITEMS, "n": True}, "n", "n: must be an integer, got boolean"),
    ({"items": ITEMS, "n": 9}, "n", "n: must be <= 4, got 9"),
    ({"items": ITEMS, "temperature": "hot"}, "temperature", "temperature: must be a number, got string"),
    ({"items": ITEMS, "temperature": float("nan")}, "temperature", "temperature: must be a finite number"),
    ({"items": ITEMS, "flag": 1}, "flag", "flag: must be a boolean, got integer"),
    ({"items": ITEMS, "n": 3, "flag": True}, "flag", "flag: cannot be set with n=3"),
    ({"items": ITEMS, "name": "Bob"}, "name", "name: must be lowercase letters"),
])
def test_errors_name_the_field_in_the_message_and_param(body: dict[str, Any], param: str,
                                                        message: str | None) -> None:
    with pytest.raises(E.InvalidRequestError) as info:
        parse(Sample, body)
    assert info.value.param == param
    assert str(info.value).startswith(f"{param}: ")
    if message is not None:
        assert str(info.value) == message


def test_non_object_bodies() -> None:
    with pytest.raises(E.InvalidRequestError, match="request body must be a JSON object, got array") as info:
        parse(Sample, [1])
    assert info.value.param is None


def test_numbers_nulls_and_unknown_fields() -> None:
    sample = parse(Sample, {"items": ITEMS, "n": 2.0, "temperature": 1, "flag": None, "vendor_x": {"a": 1}})
    assert sample.n == 2 and isinstance(sample.n, int)
    assert sample.temperature == 1.0
    assert sample.flag is False  # null means the default
    assert extras(sample) == {"vendor_x": {"a": 1}}
    assert parse(Sample, {"items": ITEMS, "n": None}).n == 1


def test_chat_body_keeps_the_old_parsers_shapes() -> None:
    call = parse_chat({
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                     {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}]},
                     {"role": "tool", "tool_call_id": "c1", "content": "done"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "seed": -1, "temperature": 0, "logit_bias": {"5": False}, "stop": ["", "x"], "n_probs": 2,
        "response_format": {"type": "json_object", "schema": {"type": "object"}},
    }, Limits())
    request = call.request
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]
    assert request.tools == [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {}}}}]
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.response_format == {"type": "json_schema", "json_schema": {"name": "response",
                                                                              "schema": {"type": "object"}}}
    assert request.sampling.logit_bias == {5: float("-inf")} and request.sampling.seed is None
    assert call.explicit == {"temperature", "logit_bias"}
    assert request.stop == ["x"] and request.logprobs and request.top_logprobs == 2


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 40000}, "max_tokens"),
    ({"messages": [{"role": "user", "content": [{"type": "file"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "a b"}}]},
     "tools[0].function.name"),
])
def test_chat_limits_and_refusals(body: dict[str, Any], param: str) -> None:
    with pytest.raises(E.InvalidRequestError) as info:
        parse_chat(body, Limits(max_tokens=32768))
    assert info.value.param == param


def _document(**overrides: Any) -> dict[str, Any]:
    return build_document(create_app(ServerSettings(model="none.gguf", preload=False, **overrides)))


def test_document_lists_every_status_with_the_error_schema() -> None:
    doc = _document(max_tokens_limit=777)
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]) == {"200", "400", "404", "413", "429", "500", "502", "503", "504"}
    for status, answer in chat["responses"].items():
        if status != "200":
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OpenAIErrorBody"}
    assert "context_length_exceeded" in chat["responses"]["400"]["description"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"}
    tokens = doc["paths"]["/v1/security/tokens"]["post"]
    assert {"201", "400", "413", "500"} <= set(tokens["responses"])
    max_tokens = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["max_tokens"]
    assert {"type": "integer", "minimum": 1, "maximum": 777} in max_tokens["anyOf"]
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            assert "500" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(operation["responses"]), (method, path)


def test_document_adds_security_answers_where_security_guards_the_route() -> None:
    doc = _document(security="full")
    chat = doc["paths"]["/v1/chat/completions"]["post"]
    assert {"401", "403", "429"} <= set(chat["responses"]) and chat["security"] == [{"bearer": []}]
    models = doc["paths"]["/v1/models"]["get"]
    assert {"401", "403"} <= set(models["responses"]) and "429" not in models["responses"]
    assert "401" not in doc["paths"]["/v1/liveness"]["get"]["responses"]
    off = _document()
    assert "401" not in off["paths"]["/v1/chat/completions"]["post"]["responses"]


def test_request_schemas_accept_what_the_models_accept() -> None:
    """The published schema is the model's: a valid body validates against both."""
    doc = _document()
    schemas = doc["components"]["schemas"]
    registry_root = {"components": {"schemas": schemas}}
    cases = [
        (ChatCompletionRequest, {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                                 "stop": "x", "logit_bias": {"12": -5}, "tools": [
                                     {"type": "function", "function": {"name": "f", "parameters": {}}}]}),
        (CompletionRequest, {"prompt": [[1, 2], "x"], "max_tokens": 3}),
        (TokenizeRequest, {"messages": [{"role": "assistant", "reasoning_content": "hm"}]}),
    ]
    for model, body in cases:
        parse(model, body)
        schema = {**schemas[model.__name__], **registry_root}
        jsonschema.validate(body, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({}, {**schemas["TokenizeRequest"], **registry_root})
