"""Hand-written descriptions of the routes whose parsers have not moved onto WireModels yet.

/v1/responses still parses with `Body`; until its handler declares an `Operation`
(which then takes precedence), /openapi.json describes it from here. Delete an entry when its route declares itself; delete the module when empty.
"""

from __future__ import annotations

from typing import Any

from kronk import errors as E
from kronk.server.wire import MODEL_ERRORS, Operation

_OBJ: dict[str, Any] = {"type": "object"}
_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUM: dict[str, Any] = {"type": "number"}
_BOOL: dict[str, Any] = {"type": "boolean"}


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_RESPONSES_REQUEST = {"type": "object", "required": ["input"], "properties": {
    "model": _STR, "input": {"oneOf": [_STR, _arr(_OBJ)],
                             "description": "messages, function_call, function_call_output, reasoning"},
    "instructions": _STR, "tools": _arr(_OBJ), "tool_choice": {"oneOf": [_STR, _OBJ]},
    "text": {"type": "object", "properties": {"format": _OBJ}}, "reasoning": _OBJ,
    "max_output_tokens": {**_INT, "minimum": 1}, "stream": _BOOL, "temperature": {**_NUM, "minimum": 0},
    "top_p": {**_NUM, "minimum": 0, "maximum": 1}, "parallel_tool_calls": _BOOL, "metadata": _OBJ}}
_RESPONSE = {"type": "object", "properties": {
    "id": _STR, "object": {"const": "response"}, "created_at": _INT,
    "status": {"enum": ["completed", "incomplete", "in_progress"]}, "model": _STR, "output": _arr(_OBJ),
    "output_text": _STR, "incomplete_details": {"type": ["object", "null"]}, "usage": _OBJ}}
_ERRORS = (E.InvalidRequestError, E.RequestTooLargeError, *MODEL_ERRORS)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("post", "/v1/responses"): Operation(
        summary="Responses API (stateless)", tag="OpenAI", request=_RESPONSES_REQUEST, response=_RESPONSE,
        stream=True, errors=_ERRORS),
}
