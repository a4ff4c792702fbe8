"""The OpenAI-side request bodies as WireModels: chat, completions, embeddings, rerank, tokenize.

One declaration per field: its type, bounds and choices validate the request and are
what /openapi.json publishes. Checks across fields are model validators; checks that
need the server's settings (max_tokens_limit, max_inputs) are in kronk.server.openai.protocol.
The shared pieces (`Sampling`, `Message`, `Tool`, `ResponseFormat`) are meant for the
other APIs' bodies too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from kronk.engine.types import Speculation
from kronk.wire import FieldError, Int, WireModel, by_json_type, explained, pattern, tagged

MAX_TOP_LOGPROBS = 20
MAX_STOP = 16
MAX_N = 16
MAX_DRY_BREAKERS = 64
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Penalty = Annotated[float, Field(ge=-2.0, le=2.0)]
TokenId = Annotated[Int, Field(ge=0)]
NonEmpty = Annotated[str, Field(min_length=1)]
Strings = by_json_type("a string or an array of strings", string=str,
                       array=Annotated[list[str], Field(max_length=MAX_STOP)])
"""`stop`: one string or up to MAX_STOP; empty strings are dropped."""


def _logit_bias(value: Any) -> dict[int, float]:
    """OpenAI's `{"<token id>": bias}` (bias in -100..100, false bans); llama.cpp's `[[id, bias], ...]` too."""
    pairs: list[tuple[object, object]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [(p[0], p[1]) for p in value]
    else:
        raise ValueError("must be an object mapping token ids to biases")
    out: dict[int, float] = {}
    for key, bias in pairs:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise ValueError(f"keys must be token ids (integers), got {key!r}")
        try:
            token = int(key)
        except ValueError:
            raise ValueError(f"keys must be token ids (integers), got {key!r}") from None
        if token < 0:
            raise ValueError(f"token id {token} is negative")
        if bias is False:
            out[token] = float("-inf")
            continue
        if isinstance(bias, bool) or not isinstance(bias, (int, float)):
            raise ValueError(f"bias for token {token} must be a number")
        if not -100 <= bias <= 100:
            raise ValueError(f"bias for token {token} must be between -100 and 100")
        out[token] = float(bias)
    return out


LogitBias = Annotated[dict[int, float], PlainValidator(_logit_bias), WithJsonSchema({
    "type": "object", "description": "token id (as a string) -> bias in -100..100, or false to ban the token",
    "propertyNames": {"pattern": "^[0-9]{1,9}$"},
    "additionalProperties": {"oneOf": [{"type": "number", "minimum": -100, "maximum": 100}, {"const": False}]},
})]


class Sampling(WireModel):
    """llama.cpp's sampler options; each set field overrides the model's default (the rest keep theirs)."""

    temperature: NonNegative | None = None
    top_p: Unit | None = None
    top_k: Annotated[Int, Field(ge=0)] | None = None
    min_p: Unit | None = None
    typical_p: Unit | None = None
    dynatemp_range: NonNegative | None = None
    dynatemp_exponent: NonNegative | None = None
    top_n_sigma: Annotated[float, Field(ge=-1.0)] | None = None
    xtc_probability: Unit | None = None
    xtc_threshold: Unit | None = None
    repeat_penalty: NonNegative | None = None
    repeat_last_n: Annotated[Int, Field(ge=-1)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    dry_multiplier: NonNegative | None = None
    dry_base: NonNegative | None = None
    dry_allowed_length: Annotated[Int, Field(ge=0)] | None = None
    dry_penalty_last_n: Annotated[Int, Field(ge=-1)] | None = None
    mirostat: Annotated[Int, Field(ge=0, le=2)] | None = None
    mirostat_tau: NonNegative | None = None
    mirostat_eta: NonNegative | None = None
    seed: Int | None = None
    """A negative seed means a random one."""
    logit_bias: LogitBias | None = None
    dry_sequence_breakers: by_json_type(  # type: ignore[valid-type]
        "a string or an array of strings", string=str,
        array=Annotated[list[str], Field(max_length=MAX_DRY_BREAKERS)]) | None = None
    grammar: str | None = None
    """GBNF grammar constraining the output."""


SAMPLING_FIELDS: tuple[str, ...] = tuple(Sampling.model_fields)


# --- messages -----------------------------------------------------------------


class TextPart(WireModel):
    type: Literal["text", "input_text"]
    text: str


class ImageURL(WireModel):
    url: NonEmpty
    """An http(s) URL is refused: only data: URIs are read (the server fetches nothing)."""
    detail: str | None = None


class ImagePart(WireModel):
    type: Literal["image_url", "input_image"]
    image_url: Annotated[by_json_type("an object with a url", string=NonEmpty, object=ImageURL),
                         explained("must be an object with a url (or a data: URI)")]


class Audio(WireModel):
    data: NonEmpty
    """Base64 audio."""
    format: str = "wav"


class AudioPart(WireModel):
    type: Literal["input_audio"]
    input_audio: Audio


ContentPart = tagged("type", TextPart, ImagePart, AudioPart)
Content = by_json_type("a string or an array of content parts", string=str, array=list[ContentPart])


class OnlyTextPart(WireModel):
    type: Literal["text", "input_text", "output_text"]
    text: str


TextContent = by_json_type("a string or an array of text parts", string=str, array=list[OnlyTextPart])


class FunctionCall(WireModel):
    name: NonEmpty
    arguments: by_json_type("a JSON string", string=str, object=dict[str, Any],  # type: ignore[valid-type]
                            array=list[Any]) = ""
    """JSON text; an object is accepted and serialized."""


class ToolCall(WireModel):
    id: str
    type: str | None = None
    function: FunctionCall


class SystemMessage(WireModel):
    role: Literal["system", "developer"]
    content: TextContent
    name: str | None = None


class UserMessage(WireModel):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(WireModel):
    """Needs content, tool_calls or reasoning (an earlier turn's thinking)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
        {"required": ["tool_calls"], "properties": {"tool_calls": {"type": "array", "minItems": 1}}},
        {"required": ["reasoning_content"], "properties": {"reasoning_content": {"type": "string", "minLength": 1}}},
        {"required": ["reasoning"], "properties": {"reasoning": {"type": "string", "minLength": 1}}}]})
    role: Literal["assistant"]
    content: Content | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    """Another name of reasoning_content."""

    @model_validator(mode="after")
    def _something(self) -> AssistantMessage:
        if self.content is None and not self.tool_calls and not (self.reasoning_content or self.reasoning):
            raise FieldError("content", "an assistant message needs content or tool_calls")
        return self


class ToolMessage(WireModel):
    role: Literal["tool"]
    content: TextContent
    tool_call_id: str
    name: str | None = None


Message = tagged("role", SystemMessage, UserMessage, AssistantMessage, ToolMessage)
Messages = Annotated[list[Message], Field(min_length=1)]


# --- tools and structured output ------------------------------------------------------


class FunctionDef(WireModel):
    name: Annotated[str, pattern(TOOL_NAME_PATTERN, "must be 1-128 letters, digits, '_', '-', '.' or ':'")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments; absent or empty: an object with any properties."""
    strict: bool | None = None


class Tool(WireModel):
    type: Literal["function"]
    function: FunctionDef


def unique_tool_names(tools: list[Tool]) -> list[Tool]:
    """Each function name once: a model could not tell two same-named tools apart."""
    names = [t.function.name for t in tools]
    if len(set(names)) != len(names):
        raise ValueError("function names must be unique")
    return tools


Tools = Annotated[list[Tool], AfterValidator(unique_tool_names)]
"""A request's function tools (chat completions, tokenize), names unique."""


class NamedFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = by_json_type("'none', 'auto', 'required' or a named function", string=Literal["none", "auto", "required"],
                          object=NamedToolChoice)


def check_tool_choice(choice: str | NamedToolChoice | None, tools: list[Tool] | None) -> None:
    if choice == "required" and not tools:
        raise FieldError("tool_choice", "'required' needs at least one tool in tools")
    if isinstance(choice, NamedToolChoice):
        name = choice.function.name
        if name not in {t.function.name for t in tools or []}:
            raise FieldError("tool_choice", f"names function {name!r}, which is not in tools")


class JsonSchemaSpec(WireModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class TextFormat(WireModel):
    type: Literal["text"]


class JsonObjectFormat(WireModel):
    type: Literal["json_object"]
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    """llama.cpp: a schema here constrains the object."""


class JsonSchemaFormat(WireModel):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = tagged("type", TextFormat, JsonObjectFormat, JsonSchemaFormat)


# --- request bodies ------------------------------------------------------------------


class StreamOptions(WireModel):
    include_usage: bool = False


class KronkMcpServer(WireModel):
    """An MCP server for `kronk_tools.mcp`: a configured `server_label`, or one named by `server_url`."""

    server_label: str
    server_url: str | None = None
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | None = None


class KronkTools(WireModel):
    """Kronk's extension of chat completions: server-side tools the server runs (docs/tools.md)."""

    mcp: list[KronkMcpServer] = []
    builtin: list[Literal["web_fetch", "web_search"]] = []


class KronkSpeculation(WireModel):
    """Kronk's extension: this request's speculative decoding (docs/server.md); output is unchanged."""

    model_config = ConfigDict(extra="forbid")  # our own field: a misspelt key must not pass unnoticed

    type: Literal["off", "ngram", "draft"] = "ngram"
    draft_max: Annotated[Int, Field(ge=0, le=64)] | None = None
    """The most draft tokens per step (0: off; absent: the model's spec_draft_max)."""

    def engine(self) -> Speculation:
        return Speculation(self.type, self.draft_max)


class ChatCompletionRequest(Sampling):
    """POST /v1/chat/completions."""

    messages: Messages
    tools: Tools | None = None
    tool_choice: ToolChoice | None = None  # type: ignore[valid-type]
    response_format: ResponseFormat | None = None  # type: ignore[valid-type]
    json_schema: dict[str, Any] | None = None
    """llama.cpp: a JSON Schema the output must follow (like response_format json_schema)."""
    logprobs: bool = False
    top_logprobs: Annotated[Int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    n_probs: Annotated[Int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    """llama.cpp: like top_logprobs, and turns logprobs on."""
    chat_template_kwargs: dict[str, Any] | None = None
    enable_thinking: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    model: str | None = None
    """Absent or empty: the server's default model."""
    parallel_tool_calls: bool = True
    max_completion_tokens: Annotated[Int, Field(ge=1, json_schema_extra={"x-kronk-limit": "max_tokens"})] | None = None
    max_tokens: Annotated[Int, Field(ge=1, json_schema_extra={"x-kronk-limit": "max_tokens"})] | None = None
    stop: Strings | None = None  # type: ignore[valid-type]
    n: Annotated[Int, Field(ge=1, le=MAX_N)] = 1
    ignore_eos: bool = False
    chat_template: str | None = None
    """A Jinja chat template to use instead of the model's."""
    kronk_tools: KronkTools | None = None
    """Kronk extension: server-side tools run by the server between model turns (docs/tools.md)."""
    kronk_speculation: KronkSpeculation | None = None
    """Kronk extension: speculative decoding for this request (docs/server.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> ChatCompletionRequest:
        if self.kronk_tools is None or not isinstance(self.tool_choice, NamedToolChoice):
            check_tool_choice(self.tool_choice, self.tools)  # else it may name a server tool: the agent loop checks
        if self.grammar and (self.json_schema or (self.response_format is not None
                                                  and not isinstance(self.response_format, TextFormat))):
            raise FieldError("grammar", "cannot be combined with response_format")
        if self.top_logprobs and not self.logprobs:
            raise FieldError("top_logprobs", "requires logprobs to be true")
        return self


def _prompts(value: Any) -> list[str | list[int]]:
    """A string, a token list, or a non-empty array of either, as a list of prompts (none empty)."""
    if isinstance(value, str) or _is_tokens(value):
        prompts = [value]
    elif isinstance(value, list) and value and all(isinstance(x, str) or _is_tokens(x) for x in value):
        prompts = list(value)
    else:
        raise ValueError("must be a string, an array of token ids, or an array of those")
    for i, prompt in enumerate(prompts):
        if prompt == "":
            raise FieldError(i, "must not be empty") if isinstance(value, list) else ValueError("must not be empty")
    return prompts


def _is_tokens(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)


_TOKENS_SCHEMA = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
Prompts = Annotated[list[str | list[int]], PlainValidator(_prompts), WithJsonSchema({
    "oneOf": [{"type": "string", "minLength": 1}, _TOKENS_SCHEMA,
              {"type": "array", "minItems": 1, "items": {"oneOf": [{"type": "string", "minLength": 1}, _TOKENS_SCHEMA]}}],
    "description": "a string, token ids, or an array of those (several prompts)",
})]


class CompletionRequest(Sampling):
    """POST /v1/completions."""

    prompt: Prompts
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Annotated[Int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    """Legacy logprobs: how many alternatives per token (0: only the chosen one)."""
    suffix: str | None = None
    """Fill-in-the-middle: the text after the gap."""
    n: Annotated[Int, Field(ge=1, le=MAX_N)] = 1
    best_of: Annotated[Int, Field(ge=1, le=MAX_N)] | None = None
    """Only best_of == n is supported."""
    model: str | None = None
    echo: bool = False
    max_tokens: Annotated[Int, Field(ge=1, json_schema_extra={"x-kronk-limit": "max_tokens"})] = 16
    stop: Strings | None = None  # type: ignore[valid-type]
    ignore_eos: bool = False
    add_special: bool = True
    kronk_speculation: KronkSpeculation | None = None
    """Kronk extension: speculative decoding for this request (docs/server.md)."""

    @model_validator(mode="after")
    def _consistent(self) -> CompletionRequest:
        if self.stream and len(self.prompt) > 1:
            raise FieldError("prompt", "streaming takes a single prompt")
        if self.best_of is not None and self.best_of != self.n:
            raise FieldError("best_of", "is not supported (only best_of == n)")
        return self


def _embedding_inputs(value: Any) -> list[str] | list[list[int]]:
    if isinstance(value, str) or _is_tokens(value):
        inputs: list[Any] = [value]
    elif isinstance(value, list) and value:
        inputs = value
    else:
        raise ValueError("must be a string, an array of strings, or token arrays")
    if all(isinstance(x, str) for x in inputs):
        for i, text in enumerate(inputs):
            if not text:
                raise FieldError(i, "must not be empty") if isinstance(value, list) else ValueError("must not be empty")
        return list(inputs)
    if all(_is_tokens(x) for x in inputs):
        return [list(x) for x in inputs]
    raise ValueError("must be all strings or all token arrays")


EmbeddingInputs = Annotated[list[str] | list[list[int]], PlainValidator(_embedding_inputs), WithJsonSchema({
    "oneOf": [{"type": "string", "minLength": 1}, _TOKENS_SCHEMA,
              {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
              {"type": "array", "minItems": 1, "items": _TOKENS_SCHEMA}],
    "description": "a string, token ids, or an array of strings or of token arrays",
})]


class EmbeddingRequest(WireModel):
    """POST /v1/embeddings."""

    encoding_format: Literal["float", "base64"] = "float"
    input: EmbeddingInputs
    model: str | None = None
    normalize: bool = True
    truncate: bool = True
    """Cut inputs longer than the context instead of failing."""
    dimensions: Annotated[Int, Field(ge=1)] | None = None
    """Matryoshka truncation: the first N dimensions, renormalized."""


class RerankDocument(WireModel):
    text: str


class RerankRequest(WireModel):
    """POST /v1/rerank."""

    query: NonEmpty
    documents: Annotated[list[by_json_type("a string or an object with text", string=str,  # type: ignore[valid-type]
                                           object=RerankDocument)], Field(min_length=1)]
    top_n: Annotated[Int, Field(ge=1)] | None = None
    model: str | None = None
    return_documents: bool = True


class TokenizeRequest(WireModel):
    """POST /v1/tokenize: `input` (or llama.cpp's `content`, or `prompt`) text, or chat `messages`."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
        for name in ("messages", "input", "content", "prompt")]})

    model: str | None = None
    with_pieces: bool = False
    messages: Messages | None = None
    """Count the prompt the chat template makes of these (with `tools`)."""
    tools: Tools | None = None
    input: str | None = None
    content: str | None = None
    prompt: str | None = None
    add_special: bool = True
    parse_special: bool = True

    @model_validator(mode="after")
    def _something(self) -> TokenizeRequest:
        if self.messages is None and self.text is None:
            raise FieldError("input", "is required")
        return self

    @property
    def text(self) -> str | None:
        return next((t for t in (self.input, self.content, self.prompt) if t is not None), None)


class DetokenizeRequest(WireModel):
    """POST /v1/detokenize."""

    model: str | None = None
    tokens: list[TokenId]
