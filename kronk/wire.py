"""Request models: one pydantic declaration per request type gives validation, typed access and the schema.

Conventions (read these before adding a model):

- Subclass `WireModel`. Unknown fields are kept (`extra="allow"`): clients send
  llama.cpp extensions and vendor fields we do not use; they must not fail a request.
  Numbers are strict: `"1"` is not an integer and `true` is not a number, but an
  integer is a fine float. Use `Int` (not `int`) where a JSON integer is expected:
  it also takes an integral float (`3.0`, which Python's json.dumps writes for 3.0).
  NaN and infinities are refused.
- `null` means absent, as the API always treated it: declare optional fields as
  `X | None = None`. A required field given `null` reads "is required".
- Declare fields in the order the old parser read them: the first failing field is
  the one reported.
- Where a field takes several JSON shapes (a string or an array, ...), use
  `by_json_type(...)`; where an array holds objects told apart by a field (content
  parts by `type`), use `tagged(...)`. Both pick the branch from the value itself, so
  an error names the real place (`messages[1].content[0].text`) and the schema is a
  plain `oneOf`. Avoid bare `A | B` unions of non-null types: their errors list every branch.
- Constraints (`ge`, `le`, `min_length`, `pattern`, `Literal`) go in the annotation
  (`Annotated[Int, Field(ge=1)]`) so the OpenAPI document shows them; a bound the
  server's settings decide is marked `json_schema_extra={"x-kronk-limit": "max_tokens"}`
  and the document fills in the configured value. For a readable pattern error use
  `pattern(regex, message)`. Prefer these to validators: they run in pydantic's Rust
  core; `explained(...)` and model validators run Python on every value. Checks that
  need several fields go in a `model_validator(mode="after")` raising
  `FieldError(field, message)`; checks that need server settings (limits) stay in the
  route's code after `parse`. Conditions the schema can state across fields ("one of
  these is required") go in `model_config = ConfigDict(json_schema_extra={"anyOf": ...})`
  too, or schemathesis generates bodies the server refuses.
- Model class names are the schema names in /openapi.json: keep them unique across
  the server (the document refuses two models with one name).
- A field whose JSON name clashes with pydantic (`schema`, `json`) uses an alias:
  `schema_: dict[str, Any] | None = Field(None, alias="schema")`. Error paths use the JSON name.
- `parse(Model, data)` validates; the first error becomes
  `InvalidRequestError("<path>: <what is wrong>", param="<path>")`, the path written
  like `messages[1].role`.
- A route declares its operation once with `@operation(Operation(...))`: request
  model, response model (for the document only; encoders still build plain dicts),
  whether it streams, and the error classes it can raise. kronk.server.openapi builds
  `/openapi.json` from these declarations and the live router, and derives each
  documented status from the error classes' `http_status` (kronk.errors); 400/413 for
  a body, 401/403/429 under security and 500 are added for every route that can answer
  them. tests/server/test_openapi_fuzz.py (schemathesis) holds the server to the document.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, Union

from aiohttp import web
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    Tag,
    ValidationError,
    WrapValidator,
)
from pydantic.json_schema import DEFAULT_REF_TEMPLATE, GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError, core_schema

from kronk import errors as E

ApiStyle = Literal["openai", "anthropic"]
M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound=Callable[..., Any])

_OFFLOAD_PARSE_BYTES = 256 * 1024
"""Bodies larger than this are parsed in a worker thread, off the event loop."""

_TAG = "~"
"""Prefix of the union tags we put in error locations (stripped from the reported path)."""


_CONSTRAINTS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum",
                "multiple_of": "multipleOf"}


def _fix_constraints(node: Any) -> None:
    """pydantic writes `ge`/`le` for bounds on a validator-wrapped type (`Int`); JSON Schema says minimum/maximum."""
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            for name, keyword in _CONSTRAINTS.items():
                if name in node:
                    node[keyword] = node.pop(name)
        for value in node.values():
            _fix_constraints(value)
    elif isinstance(node, list):
        for value in node:
            _fix_constraints(value)


class WireSchema(GenerateJsonSchema):
    """pydantic's JSON Schema generator, with standard bound keywords and no title on every field."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        out = super().generate(schema, mode)
        _fix_constraints(out)
        return out

    def generate_definitions(self, inputs: Any) -> Any:
        mapping, definitions = super().generate_definitions(inputs)
        _fix_constraints(mapping)
        _fix_constraints(definitions)
        return mapping, definitions


class WireModel(BaseModel):
    """Base of every request model (see the module docstring for the conventions)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False, populate_by_name=False,
                              validate_default=False, use_attribute_docstrings=True)

    @classmethod
    def model_json_schema(cls, by_alias: bool = True, ref_template: str = DEFAULT_REF_TEMPLATE,  # noqa: D102
                          schema_generator: type[GenerateJsonSchema] = WireSchema,
                          mode: JsonSchemaMode = "validation", **kwargs: Any) -> dict[str, Any]:
        return super().model_json_schema(by_alias=by_alias, ref_template=ref_template,
                                         schema_generator=schema_generator, mode=mode, **kwargs)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[BaseModel], handler: GetCoreSchemaHandler) -> CoreSchema:
        """The model's schema; where an optional field's default is not null, a null there means that default.

        Only such models get the (Python) step that drops those nulls, so the others cost nothing extra.
        """
        schema = handler(source)
        names = frozenset(info.alias or name for name, info in cls.__pydantic_fields__.items()
                          if not info.is_required() and info.default is not None)
        if not names:
            return schema

        def drop_nulls(data: Any) -> Any:
            if isinstance(data, dict) and any(data.get(name, 0) is None for name in names):
                return {k: v for k, v in data.items() if v is not None or k not in names}
            return data

        return core_schema.no_info_before_validator_function(drop_nulls, schema)


class DocModel(BaseModel):
    """Base of response models: they exist for the OpenAPI document (and tests), not for encoding."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class FieldError(ValueError):
    """Raised in a model validator: `field` (relative to the model) is what the error names."""

    def __init__(self, field: str | int, message: str) -> None:
        self.field = field
        super().__init__(message)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Int = Annotated[int, BeforeValidator(_integral)]
"""A JSON integer; `3.0` counts as 3 (never `"3"` nor `true`)."""


def json_type(value: object) -> str:
    """The JSON name of a Python value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__)


def _kind_of(value: object, kinds: frozenset[str]) -> str | None:
    kind = json_type(value)
    if kind == "integer" and kind not in kinds and "number" in kinds:
        kind = "number"
    return _TAG + kind if kind in kinds else None


def by_json_type(expected: str, **branches: Any) -> Any:
    """A field that takes several JSON shapes, picked by the value's JSON type.

    `by_json_type("a string or an array of strings", string=str, array=list[str])`;
    keys are JSON type names (string, array, object, integer, number, boolean). A value
    of another type fails with "must be <expected>".
    """
    kinds = frozenset(branches)
    members = tuple(Annotated[tp, Tag(_TAG + kind)] for kind, tp in branches.items())
    return Annotated[Union[members],  # noqa: UP007 (a runtime-built union)
                     Discriminator(lambda v: _kind_of(v, kinds), custom_error_type="expected",
                                   custom_error_message=f"must be {expected}")]


def tagged(field_name: str, *variants: type[BaseModel]) -> Any:
    """Objects told apart by `field_name` (a Literal field in each variant), e.g. content parts by `type`.

    An unknown or missing tag is reported at `<path>.<field_name>` with the allowed values.
    """
    values: dict[str, type[BaseModel]] = {}
    for variant in variants:
        annotation = variant.model_fields[field_name].annotation
        for value in getattr(annotation, "__args__", ()):
            values[value] = variant
    members = tuple(Annotated[variant, Tag(_TAG + variant.__name__)] for variant in dict.fromkeys(variants))
    allowed = ", ".join(repr(v) for v in values)

    def pick(value: Any) -> str | None:
        tag = value.get(field_name) if isinstance(value, dict) else getattr(value, field_name, None)
        variant = values.get(tag) if isinstance(tag, str) else None
        return None if variant is None else _TAG + variant.__name__

    return Annotated[Union[members],  # noqa: UP007
                     Discriminator(pick, custom_error_type=f"tag:{field_name}",
                                   custom_error_message=f"must be one of {allowed}")]


_PATTERN_MESSAGES: dict[str, str] = {}


def pattern(regex: str, message: str) -> Any:
    """`Field(pattern=regex)` whose mismatch reads "<path>: <message>" (nothing runs in Python on valid input)."""
    _PATTERN_MESSAGES[regex] = message
    return Field(pattern=regex)


def explained(message: str) -> WrapValidator:
    """Replace any error of the annotated value by "<path>: <message>" (keeps its schema).

    It runs Python on every value: for a plain string pattern, `pattern(regex, message)` is free.
    """

    def wrap(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("explained", message.replace("{", "{{").replace("}", "}}")) from None

    return WrapValidator(wrap)


# --- errors ---------------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "a boolean", "bool_parsing": "a boolean",
    "string_type": "a string", "list_type": "an array", "dict_type": "a JSON object",
    "model_type": "a JSON object", "model_attributes_type": "a JSON object", "literal_error": None,
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(_TAG) or part == "[key]":
            continue
        else:
            out += f".{part}" if out else part
    return out


def _message(error: ErrorDetails) -> tuple[tuple[int | str, ...], str]:
    """(location, message) of one pydantic error in the API's words."""
    kind, loc, value = error["type"], tuple(error["loc"]), error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return loc, "is required"
    if kind == "extra_forbidden":
        return loc, "is not a known field"
    if kind in _TYPE_WORDS and kind != "literal_error":
        if value is None:
            return loc, "is required"
        return loc, f"must be {_TYPE_WORDS[kind]}, got {json_type(value)}"
    if kind == "literal_error":
        return loc, f"must be one of {ctx.get('expected')}, got {value!r}"
    if kind.startswith("tag:"):
        name = kind[4:]
        if not isinstance(value, dict):
            return loc, f"must be a JSON object, got {json_type(value)}"
        if value.get(name) is None:
            return (*loc, name), "is required"
        return (*loc, name), f"{error['msg']}, got {value.get(name)!r}"
    if kind == "expected" and value is None:
        return loc, "is required"
    if kind == "finite_number":
        return loc, "must be a finite number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), None)
        return loc, f"must be {sign} {bound}, got {value}"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length", 1)
        if least == 1:
            return loc, "must not be empty"
        unit = "characters" if kind == "string_too_short" else "entries"
        return loc, f"must have at least {least} {unit}"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "entries"
        return loc, f"at most {ctx.get('max_length')} {unit} are allowed"
    if kind == "string_pattern_mismatch":
        regex = str(ctx.get("pattern"))
        return loc, _PATTERN_MESSAGES.get(regex, f"must match {regex}")
    if kind == "value_error":
        cause = ctx.get("error")
        if isinstance(cause, FieldError):
            return (*loc, cause.field), str(cause)
        return loc, str(cause) if cause is not None else error["msg"]
    return loc, error["msg"]


def invalid_request(exc: ValidationError) -> E.InvalidRequestError:
    """The first validation error as the API's 400: "<path>: <message>", param=<path>."""
    loc, message = _message(exc.errors(include_url=False)[0])
    path = _path(loc)
    return E.InvalidRequestError(f"{path}: {message}" if path else message, param=path or None)


def parse(model: type[M], data: object) -> M:
    """Validate a decoded JSON body as `model`; a bad body raises InvalidRequestError naming the field."""
    if not isinstance(data, dict):
        raise E.InvalidRequestError(f"request body must be a JSON object, got {json_type(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc) from None


async def read_json(request: web.Request, max_size: int | None = None, *, empty: Any = None) -> Any:
    """The request body parsed as JSON, for `parse`; 413 above `max_size`, 400 for bad JSON.

    `max_size` defaults to the app's `client_max_size` (what aiohttp itself enforces).
    An empty body is a 400 unless `empty` is given (routes whose body is optional pass `{}`).
    """
    limit = request.client_max_size if max_size is None else max_size
    if request.content_length is not None and request.content_length > limit:
        raise E.RequestTooLargeError(f"request body is {request.content_length} bytes; the limit is {limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise E.RequestTooLargeError(f"request body is larger than the limit of {limit} bytes") from None
    if len(raw) > limit:
        raise E.RequestTooLargeError(f"request body is {len(raw)} bytes; the limit is {limit}")
    if not raw.strip():
        if empty is not None:
            return empty
        raise E.InvalidRequestError("request body is empty; expected a JSON object")
    try:
        if len(raw) > _OFFLOAD_PARSE_BYTES:
            return await asyncio.to_thread(json.loads, raw)
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise E.InvalidRequestError(f"request body is not valid JSON: {exc}") from None


def extras(model: BaseModel) -> dict[str, Any]:
    """The fields a client sent that the model does not declare."""
    return dict(model.__pydantic_extra__ or {})


# --- error bodies -------------------------------------------------------------------


class OpenAIError(DocModel):
    message: str
    type: str
    """invalid_request_error, authentication_error, permission_error, rate_limit_error, server_busy, server_error"""
    param: str | None
    """The offending field's path, e.g. messages[1].role."""
    code: str | None
    """The error class's stable code (kronk.errors), e.g. invalid_value, model_not_found."""


class OpenAIErrorBody(DocModel):
    """Every error of the OpenAI-shaped routes (inference, management, security)."""

    error: OpenAIError


class AnthropicError(DocModel):
    type: str
    message: str


class AnthropicErrorBody(DocModel):
    """Every error of /v1/messages."""

    type: Literal["error"]
    error: AnthropicError


# --- operations -------------------------------------------------------------------

Schema = type[BaseModel] | Mapping[str, Any]
"""A response body: a model (a $ref into components/schemas) or a literal JSON Schema."""

BODY_ERRORS: tuple[type[E.KronkError], ...] = (E.InvalidRequestError, E.RequestTooLargeError)
"""What any route that reads a JSON body can answer: bad JSON or fields (400), too large (413)."""

MODEL_ERRORS: tuple[type[E.KronkError], ...] = (
    E.ModelNotFoundError, E.BusyError, E.ModelLoadError, E.LibraryNotFoundError, E.ShuttingDownError)
"""What any route that runs a model can answer besides body errors: 404, 429, 503."""


@dataclass(frozen=True, slots=True)
class Extra:
    """A documented answer that is not an error class (e.g. readiness' 503 body)."""

    description: str
    schema: Schema
    media: str = "application/json"


@dataclass(frozen=True, slots=True)
class Operation:
    """Everything /openapi.json says about one route: declared once, beside the handler."""

    summary: str
    tag: str
    request: Schema | None = None
    """The JSON body's model (the one `parse` validates with); None for routes without a body."""
    response: Schema | None = None
    """The success body (JSON unless `media` says otherwise); None: streamed only, or no body."""
    status: int = 200
    media: str = "application/json"
    stream: bool = False
    """The route can answer text/event-stream (with `"stream": true`, or always when `response` is None)."""
    errors: tuple[type[E.KronkError], ...] = ()
    """Error classes the route can raise; each one's http_status is documented with the error schema."""
    error_style: ApiStyle = "openai"
    body_required: bool = True
    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters (strings): name -> description."""
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """JSON Schemas of path parameters that are not any string (e.g. a pattern); name -> schema."""
    also: Mapping[int, Extra] = field(default_factory=dict)
    """Other answers than the success and the errors."""
    description: str | None = None


_OPERATION_ATTR = "__kronk_operation__"


def operation(op: Operation) -> Callable[[H], H]:
    """Attach `op` to a route handler (read back by `declared`)."""

    def attach(handler: H) -> H:
        setattr(handler, _OPERATION_ATTR, op)
        return handler

    return attach


def declared(handler: object) -> Operation | None:
    """The operation a handler declared, through wrappers that copy `__dict__` (functools.wraps)."""
    op = getattr(handler, _OPERATION_ATTR, None)
    return op if isinstance(op, Operation) else None
