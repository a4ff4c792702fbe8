"""The /v1/responses request body as WireModels, shaped as the OpenAI Responses API and Codex CLI send it.

Every tool type and input item type the API documents parses here; what Kronk cannot
run or read is dropped later (kronk.server.openai.responses_tools / responses_input)
and named in a response header, never refused for its type alone. So the unions of
tools, tool_choice objects and input items are *open*: a known `type` is validated
strictly, any other string `type` parses as an "other" entry that the route skips.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, Union

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from kronk.server.openai.bodies import (
    MAX_TOP_LOGPROBS,
    TOOL_NAME_PATTERN,
    Audio,
    NonEmpty,
    Sampling,
)
from kronk.wire import (
    DocModel,
    FieldError,
    Int,
    WireModel,
    by_json_type,
    pattern,
    tagged,
)

_TAG = "~"
"""kronk.wire's prefix for union tags: error paths leave such location parts out."""

ToolName = Annotated[str, pattern(TOOL_NAME_PATTERN, "must be 1-128 letters, digits, '_', '-', '.' or ':'")]


def _given(name: str) -> dict[str, Any]:
    """JSON Schema: `name` is present and not null (for "one of these is required" hints)."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def other_type(*variants: type[WireModel], what: str) -> Any:
    """The `type` of an "other" entry: any non-empty string but the known ones (so the schema's oneOf stays exclusive)."""
    known = sorted({v for variant in variants for v in getattr(variant.model_fields["type"].annotation, "__args__", ())})
    return Annotated[str, Field(min_length=1, description=f"any other {what} type",
                                json_schema_extra={"not": {"enum": known}})]


def open_union(field_name: str, other: type[WireModel], *variants: type[WireModel],
               untagged: Any = None) -> Any:
    """Objects told apart by a string `field_name`; an unknown value picks `other` instead of failing.

    `untagged(value)` may name a variant for an object without the field (a message without `type`).
    """
    known: dict[str, type[WireModel]] = {}
    for variant in variants:
        for value in getattr(variant.model_fields[field_name].annotation, "__args__", ()):
            known[value] = variant
    members = tuple(Annotated[v, Tag(_TAG + v.__name__)] for v in (*dict.fromkeys(variants), other))

    def pick(value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        tag = value.get(field_name)
        if tag is None and untagged is not None:
            chosen = untagged(value)
            return None if chosen is None else _TAG + chosen.__name__
        if not isinstance(tag, str) or not tag:
            return None
        return _TAG + known.get(tag, other).__name__

    return Annotated[Union[members],  # noqa: UP007 (a runtime-built union)
                     Discriminator(pick, custom_error_type=f"tag:{field_name}",
                                   custom_error_message=f"must be a non-empty string naming the {field_name}")]


# --- content parts ------------------------------------------------------------------


class ResponsesText(WireModel):
    type: Literal["input_text", "output_text", "text", "summary_text", "reasoning_text"]
    text: str


class ResponsesRefusal(WireModel):
    type: Literal["refusal"]
    refusal: str = ""


class ResponsesImage(WireModel):
    type: Literal["input_image"]
    image_url: str | None = None
    """A data: URI (the server fetches nothing)."""
    file_id: str | None = None
    """Files API ids are refused: Kronk has no Files API."""
    detail: str | None = None

    @model_validator(mode="after")
    def _url(self) -> ResponsesImage:
        if not self.image_url:
            if self.file_id:
                raise FieldError("file_id", "file ids are not supported (Kronk has no Files API); "
                                            "send the image as a data: URI in image_url")
            raise FieldError("image_url", "is required")
        return self


class ResponsesAudio(WireModel):
    type: Literal["input_audio"]
    input_audio: Audio


class ResponsesFile(WireModel):
    """Refused: Kronk reads no files (PDFs ...); send their text as input_text."""

    type: Literal["input_file"]

    @model_validator(mode="after")
    def _refuse(self) -> ResponsesFile:
        raise FieldError("type", "input_file parts are not supported; send the file's text as input_text")


Part = tagged("type", ResponsesText, ResponsesRefusal, ResponsesImage, ResponsesAudio, ResponsesFile)
MessageContent = by_json_type("a string or an array of content parts", string=str, array=list[Part])
ToolOutput = by_json_type("a string or an array of content parts", string=str, array=list[Part])


# --- input items --------------------------------------------------------------------


class MessageItem(WireModel):
    """A message; `type` may be left out. developer and system become the system role."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: MessageContent  # type: ignore[valid-type]


class FunctionCallItem(WireModel):
    type: Literal["function_call"]
    call_id: NonEmpty
    name: NonEmpty
    namespace: str | None = None
    """Set for a member of a `namespace` tool (Codex sends it back as it got it)."""
    arguments: by_json_type("a JSON string", string=str, object=dict[str, Any]) = ""  # type: ignore[valid-type]


class FunctionCallOutputItem(WireModel):
    model_config = ConfigDict(json_schema_extra={"anyOf": [_given("call_id"), _given("name")]})

    type: Literal["function_call_output", "custom_tool_call_output"]
    call_id: NonEmpty | None = None
    """The call answered. Codex also sends outputs of no call (its goal feature: `name` and
    `namespace` instead): those reach the model as a user message."""
    name: str | None = None
    namespace: str | None = None
    output: ToolOutput  # type: ignore[valid-type]
    """Text, or content parts; images in them follow the tool results as a user message."""

    @model_validator(mode="after")
    def _answers_something(self) -> FunctionCallOutputItem:
        if self.call_id is None and not self.name:
            raise FieldError("call_id", "is required")
        return self


class McpCallItem(WireModel):
    """A past MCP tool call (Kronk's or OpenAI's `mcp_call` output item): the call and its result
    go back into the conversation, so a stateless client can replay it."""

    type: Literal["mcp_call"]
    id: NonEmpty
    name: NonEmpty
    server_label: str | None = None
    arguments: str = ""
    output: str | None = None
    error: Any = None
    """A string, or an object whose `message` or text `content` says what went wrong."""


class CustomToolCallItem(WireModel):
    type: Literal["custom_tool_call"]
    call_id: NonEmpty
    name: NonEmpty
    namespace: str | None = None
    input: str = ""


class LocalShellAction(WireModel):
    type: Literal["exec"] = "exec"
    command: list[str]
    timeout_ms: Int | None = None
    working_directory: str | None = None
    env: dict[str, str] | None = None
    user: str | None = None


class _LocalShellIds(WireModel):
    """A local_shell call or output item names its call by `call_id` or by `id` (older calls, and the
    outputs as the API spells them): one of the two is required."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [_given("call_id"), _given("id")]})
    if TYPE_CHECKING:
        call_id: str | None
        id: str | None

    @model_validator(mode="after")
    def _some_id(self) -> Self:
        if not (self.call_id or self.id):
            raise FieldError("call_id", "is required")
        return self


class LocalShellCallItem(_LocalShellIds):
    type: Literal["local_shell_call"]
    call_id: str | None = None
    id: str | None = None
    """Older payloads carry the call's id here instead of call_id."""
    action: LocalShellAction


class LocalShellCallOutputItem(_LocalShellIds):
    type: Literal["local_shell_call_output"]
    call_id: str | None = None
    id: str | None = None
    """The local_shell_call's id (the API's spelling); call_id is accepted too."""
    output: ToolOutput  # type: ignore[valid-type]


class ReasoningItemText(WireModel):
    type: Literal["summary_text", "reasoning_text", "text"]
    text: str


class ReasoningItem(WireModel):
    """Earlier reasoning: its text (content, else summary, else Kronk's own encrypted_content) is replayed."""

    type: Literal["reasoning"]
    summary: list[ReasoningItemText] = Field(default_factory=list)
    content: list[ReasoningItemText] | None = None
    encrypted_content: str | None = None
    """Only Kronk's own (kronk.v1:...) can be read; OpenAI's are dropped."""


class ItemReference(WireModel):
    """Refused: it points at a stored item, and Kronk stores nothing."""

    type: Literal["item_reference"] = "item_reference"
    id: str

    @model_validator(mode="after")
    def _refuse(self) -> ItemReference:
        raise FieldError("id", "item references need stored responses, which Kronk does not keep; "
                               "send the item itself")


# --- tools -------------------------------------------------------------------------------


class FunctionTool(WireModel):
    type: Literal["function"]
    name: ToolName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """JSON Schema of the arguments; absent: an object with any properties."""
    strict: bool | None = None
    defer_loading: bool | None = None
    """Tool search is not run here: deferred functions are offered like the others."""


class CustomToolFormat(WireModel):
    type: str = "text"
    """`text` (free-form) or `grammar`."""
    syntax: str | None = None
    """For grammars: `lark` or `regex`. The grammar goes into the description; output is not constrained by it."""
    definition: str | None = None


class CustomTool(WireModel):
    """A free-form tool: offered as a function with one string argument, called back as custom_tool_call."""

    type: Literal["custom"]
    name: ToolName
    description: str | None = None
    format: CustomToolFormat | None = None
    defer_loading: bool | None = None


NamespaceMember = tagged("type", FunctionTool, CustomTool)


class NamespaceTool(WireModel):
    """A group of tools (Codex: MCP servers, collaboration tools): each member is offered on its own."""

    type: Literal["namespace"]
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: str = ""
    tools: list[NamespaceMember]  # type: ignore[valid-type]


class LocalShellTool(WireModel):
    """Offered as a `local_shell` function; calls come back as local_shell_call items."""

    type: Literal["local_shell"]


class McpToolFilter(WireModel):
    tool_names: list[str] | None = None
    read_only: bool | None = None
    """Tools annotated readOnlyHint: not looked at (approvals are not supported)."""


class McpApprovalFilter(WireModel):
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpTool(WireModel):
    """An MCP server whose tools Kronk runs between model turns (docs/tools.md): a server from the
    MCP config file named by its label, or one this request names by `server_url` (SSRF-checked)."""

    type: Literal["mcp"]
    server_label: Annotated[str, pattern(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                         "must be 1-64 letters, digits, '_', '.', '-' (starting with a letter or "
                                         "digit)")]
    server_url: str | None = None
    """Absent: the configured server of that label."""
    headers: dict[str, str] | None = None
    authorization: str | None = None
    """An OAuth access token, sent as `Authorization: Bearer ...`."""
    allowed_tools: by_json_type("an array of tool names or a filter object",  # type: ignore[valid-type]
                                array=list[str], object=McpToolFilter) | None = None
    require_approval: by_json_type("'always', 'never' or a filter object",  # type: ignore[valid-type]
                                   string=Literal["always", "never"], object=McpApprovalFilter) | None = None
    """Approvals are not supported: only `never` (or a `never` filter naming every tool offered)."""
    server_description: str | None = None
    connector_id: str | None = None
    """OpenAI's connectors: refused (they run on OpenAI's side)."""


class WebSearchTool(WireModel):
    """Web search run by Kronk: the web_search built-in (with a backend) and web_fetch as `open_page`."""

    type: Literal["web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"]
    search_context_size: str | None = None
    """Accepted; changes nothing."""


class HostedTool(WireModel):
    """A hosted tool Kronk does not run (file_search, image_generation, code_interpreter ...): skipped."""

    type: other_type(FunctionTool, CustomTool, NamespaceTool, LocalShellTool, McpTool,  # type: ignore[valid-type]
                     WebSearchTool, what="tool")
    name: str | None = None
    server_label: str | None = None


Tool = open_union("type", HostedTool, FunctionTool, CustomTool, NamespaceTool, LocalShellTool, McpTool, WebSearchTool)


class FunctionToolChoice(WireModel):
    type: Literal["function"]
    name: NonEmpty
    namespace: str | None = None


class CustomToolChoice(WireModel):
    type: Literal["custom"]
    name: NonEmpty
    namespace: str | None = None


class AllowedToolRef(WireModel):
    type: NonEmpty
    name: str | None = None
    namespace: str | None = None
    server_label: str | None = None


class AllowedToolsChoice(WireModel):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"] = "auto"
    tools: list[AllowedToolRef]


class HostedToolChoice(WireModel):
    """A hosted tool (file_search, web_search_preview, mcp, shell, apply_patch ...), or local_shell."""

    type: other_type(FunctionToolChoice, CustomToolChoice, AllowedToolsChoice, what="tool choice")  # type: ignore[valid-type]
    name: str | None = None
    server_label: str | None = None


ToolChoice = by_json_type(
    "'none', 'auto', 'required' or a tool choice object", string=Literal["none", "auto", "required"],
    object=open_union("type", HostedToolChoice, FunctionToolChoice, CustomToolChoice, AllowedToolsChoice))


def _untagged_item(value: dict[str, Any]) -> type[WireModel] | None:
    if "role" in value:
        return MessageItem
    return ItemReference if "id" in value else None


class AdditionalToolsItem(WireModel):
    """An input item that adds tools (newer Codex); its tools join `tools`."""

    type: Literal["additional_tools"]
    tools: list[Tool]  # type: ignore[valid-type]


class OtherInputItem(WireModel):
    """Any other item (web_search_call, mcp_call, compaction, ...): dropped, named in X-Kronk-Input-Ignored."""

    type: other_type(MessageItem, FunctionCallItem, FunctionCallOutputItem, CustomToolCallItem,  # type: ignore[valid-type]
                     LocalShellCallItem, LocalShellCallOutputItem, ReasoningItem, ItemReference, AdditionalToolsItem,
                     McpCallItem, what="input item")


InputItem = open_union("type", OtherInputItem, MessageItem, FunctionCallItem, FunctionCallOutputItem,
                              CustomToolCallItem, LocalShellCallItem, LocalShellCallOutputItem, ReasoningItem,
                              ItemReference, AdditionalToolsItem, McpCallItem, untagged=_untagged_item)


# --- options ---------------------------------------------------------------------------

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
Summary = Literal["auto", "concise", "detailed", "none"]


class ResponsesReasoning(WireModel):
    effort: Effort | None = None
    """`none` turns the model's thinking off, any other value on; the template sees low/medium/high."""
    summary: Summary | None = None
    """auto/concise/detailed: reasoning goes out as the summary (the full thinking, not a summary of it)."""
    generate_summary: Summary | None = None
    """Older name of summary."""


class ResponsesTextPlain(WireModel):
    type: Literal["text"]


class ResponsesJsonObject(WireModel):
    type: Literal["json_object"]


class ResponsesJsonSchema(WireModel):
    type: Literal["json_schema"]
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponsesTextConfig(WireModel):
    format: tagged("type", ResponsesTextPlain, ResponsesJsonObject, ResponsesJsonSchema) | None = None  # type: ignore[valid-type]
    verbosity: Literal["low", "medium", "high"] | None = None
    """Accepted and echoed; it does not change the output."""


class ResponsesRequest(Sampling):
    """POST /v1/responses (stateless: nothing is stored, `store` notwithstanding)."""

    model: str | None = None
    """Absent or empty: the server's default model."""
    input: by_json_type("a string or an array of input items",  # type: ignore[valid-type]
                        string=Annotated[str, Field(min_length=1)],
                        array=Annotated[list[InputItem], Field(min_length=1)])  # type: ignore[valid-type]
    instructions: str | None = None
    """The system prompt (placed before input's own system/developer messages)."""
    tools: list[Tool] | None = None  # type: ignore[valid-type]
    tool_choice: ToolChoice | None = None  # type: ignore[valid-type]
    parallel_tool_calls: bool = True
    max_tool_calls: Annotated[Int, Field(ge=0)] | None = None
    """0 turns tools off; 1 allows one call per response."""
    max_output_tokens: Annotated[Int, Field(ge=1, json_schema_extra={"x-kronk-limit": "max_tokens"})] | None = None
    """Above the server's max_tokens_limit it is lowered to that limit."""
    reasoning: ResponsesReasoning | None = None
    text: ResponsesTextConfig | None = None
    include: list[str] | None = None
    """`reasoning.encrypted_content` adds Kronk's (readable, not secret) encoding of the reasoning to
    reasoning items; `message.output_text.logprobs` turns logprobs on; others change nothing."""
    top_logprobs: Annotated[Int, Field(ge=0, le=MAX_TOP_LOGPROBS)] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    store: bool | None = None
    """Accepted; nothing is ever stored (the answer says store: false)."""
    background: bool | None = None
    previous_response_id: str | None = None
    """Refused: send the whole conversation in input."""
    conversation: by_json_type("a string or an object", string=str,  # type: ignore[valid-type]
                               object=dict[str, Any]) | None = None
    prompt: dict[str, Any] | None = None
    """Stored prompt templates: refused."""
    truncation: Literal["auto", "disabled"] | None = None
    """Accepted and echoed; a prompt longer than the context is an error either way."""
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    """Accepted; the prefix cache works without keys."""
    prompt_cache_retention: str | None = None
    safety_identifier: str | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    """Echoed in the answer."""
    chat_template_kwargs: dict[str, Any] | None = None
    """Extra variables for the chat template (a Kronk extension)."""

    @model_validator(mode="after")
    def _stateless(self) -> ResponsesRequest:
        if self.previous_response_id:
            raise FieldError("previous_response_id", "stored responses are not supported (Kronk is stateless); "
                                                     "send the whole conversation in input")
        if self.conversation:
            raise FieldError("conversation", "conversations are not supported (Kronk is stateless); "
                                             "send the whole conversation in input")
        if self.prompt:
            raise FieldError("prompt", "stored prompt templates are not supported; send instructions and input")
        if self.background:
            raise FieldError("background", "background responses are not supported (they need stored responses)")
        return self


# --- the answer, for the document --------------------------------------------------------


class ResponseUsage(DocModel):
    input_tokens: int
    input_tokens_details: dict[str, int]
    """cached_tokens: prompt tokens read from the prefix cache."""
    output_tokens: int
    output_tokens_details: dict[str, int]
    """reasoning_tokens."""
    total_tokens: int


class ResponseObject(DocModel):
    """The Response: output items (message, reasoning, function_call, custom_tool_call, local_shell_call)."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    model: str
    output: list[dict[str, Any]]
    output_text: str
    incomplete_details: dict[str, Any] | None
    error: dict[str, Any] | None
    usage: ResponseUsage | None
    store: bool
    """Always false."""
