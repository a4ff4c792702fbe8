"""Responses tools → the SDK's function tools, and the model's calls back → the client's tool names.

What each tool type becomes:

- `function`: a function tool.
- `namespace` (Codex groups MCP servers' and its own tools this way): each member
  (function or custom) is offered on its own under a flat name, `<namespace>__<name>`
  (Codex's own flattening: `mcp__github__` + `create_issue` → `mcp__github__create_issue`);
  members of the default namespace `functions` keep their bare name. Calls go back as
  items with the member's `name` and its `namespace`, as the Responses API returns them.
- `custom` (free-form input, optionally a lark/regex grammar): a function with one
  string argument `input`; the grammar is shown in its description (the output is
  not constrained by it). Calls go back as `custom_tool_call` items with that input.
- `local_shell`: a function `local_shell(command, workdir, timeout_ms, env)`; calls
  go back as `local_shell_call` items with an `exec` action.
- `mcp` and `web_search*`: server tools Kronk runs itself (kronk.server.openai.responses_agent);
  the catalog keeps them aside (`servers`, `web_search`) for the agent loop. `require_approval`
  other than `never` is refused (approvals are not supported), as is `connector_id`. A
  `web_search*` tool runs only when the server has a search backend (else it is skipped, as
  Codex sends one with every request).
- Everything else (file_search, computer*, image_generation, code_interpreter,
  tool_search, shell, apply_patch, types not known yet) runs on OpenAI's side. Kronk does
  not run them: they are skipped — one warning per type per process, named in the
  X-Kronk-Tools-Ignored header — and the request goes on. Only a tool_choice that
  requires a skipped tool is refused.

Names the model sees are made to fit the chat layer (1-64 of A-Z a-z 0-9 _ . -); a
longer or odd name gets a short hash, and the catalog maps it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from kronk.errors import CapabilityError, InvalidRequestError
from kronk.server.openai import responses_schema as s

log = logging.getLogger("kronk.server.openai")

DEFAULT_NAMESPACE = "functions"
"""Codex's namespace for top-level tools: a member of it is called like a top-level tool."""
LOCAL_SHELL = "local_shell"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 64
_warned: set[str] = set()
"""Skipped tool types already warned about (clients send the same tools with every request)."""
_MAX_WARNED = 256

Kind = Literal["function", "custom", "local_shell"]

_SHELL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The program and its arguments, e.g. [\"bash\", \"-lc\", \"ls -la\"]."},
        "workdir": {"type": "string", "description": "The directory to run it in."},
        "timeout_ms": {"type": "integer", "description": "Stop it after this many milliseconds."},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "Extra environment variables."},
    },
    "required": ["command"],
}
_SHELL_DESCRIPTION = "Run a command on the user's machine and get its output."
_INPUT_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's raw input (plain text, not JSON)."}},
    "required": ["input"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class ClientTool:
    """One tool the model may call: how the client named it and how the model sees it."""

    kind: Kind
    name: str
    namespace: str | None
    model_name: str
    function: dict[str, Any] = field(compare=False)
    """The SDK's OpenAI function tool."""


def _ns_key(namespace: str | None) -> str | None:
    return None if not namespace or namespace == DEFAULT_NAMESPACE else namespace


@dataclass(slots=True)
class ToolCatalog:
    """The request's tools as the model sees them, and the way back to the client's names."""

    tools: list[ClientTool] = field(default_factory=list)
    servers: list[tuple[s.McpTool, str]] = field(default_factory=list)
    """The `mcp` tools (and their paths, for errors): server tools the agent loop runs."""
    web_search: bool = False
    """A `web_search*` tool was given: the web_search / web_fetch built-ins are offered."""
    search_backend: bool = False
    """The server has a web_search backend; without one `web_search*` tools are skipped as before."""
    default_servers: tuple[str, ...] = ()
    """MCP servers the model's config turns on (a tool_choice may name their tools)."""
    default_tools: bool = False
    """The model's config turns on server tools (so `required` may be met by one)."""
    ignored: list[str] = field(default_factory=list)
    """Skipped tools (their type): the X-Kronk-Tools-Ignored header."""
    _by_model: dict[str, ClientTool] = field(default_factory=dict)
    _by_client: dict[tuple[str | None, str], ClientTool] = field(default_factory=dict)

    def add(self, definitions: list[Any], where: str) -> None:
        """Add `tools` entries (parsed by responses_schema); `where` is their path, for errors."""
        for i, tool in enumerate(definitions):
            if isinstance(tool, s.FunctionTool):
                self._offer("function", tool.name, None, tool.description, tool.parameters, f"{where}[{i}]")
            elif isinstance(tool, s.CustomTool):
                self._offer("custom", tool.name, None, _custom_description(tool), _INPUT_PARAMETERS, f"{where}[{i}]")
            elif isinstance(tool, s.NamespaceTool):
                self._namespace(tool, f"{where}[{i}]")
            elif isinstance(tool, s.LocalShellTool):
                self._offer("local_shell", LOCAL_SHELL, None, _SHELL_DESCRIPTION, _SHELL_PARAMETERS, f"{where}[{i}]")
            elif isinstance(tool, s.McpTool):
                self._server(tool, f"{where}[{i}]")
            elif isinstance(tool, s.WebSearchTool) and self.search_backend:
                self.web_search = True
            else:
                self._skip(tool)

    @property
    def server_tools(self) -> bool:
        """The request turns on tools Kronk runs (the agent loop answers it)."""
        return bool(self.servers) or self.web_search

    def has_server(self, label: str | None) -> bool:
        return label in self.default_servers or any(tool.server_label == label for tool, _ in self.servers)

    def _server(self, tool: s.McpTool, where: str) -> None:
        if tool.connector_id:
            raise CapabilityError(f"{where}.connector_id: OpenAI's connectors run on OpenAI's side; give a "
                                  "server_url or a configured server_label", param=f"{where}.connector_id")
        approval = tool.require_approval
        always = approval.always if isinstance(approval, s.McpApprovalFilter) else None
        if approval == "always" or (always is not None and (always.tool_names or always.read_only)):
            raise InvalidRequestError(f"{where}.require_approval: approvals are not supported (Kronk runs the "
                                      "calls itself); send \"never\"", param=f"{where}.require_approval")
        if any(label == tool.server_label for label in (t.server_label for t, _ in self.servers)):
            raise InvalidRequestError(f"{where}.server_label: {tool.server_label!r} is given twice",
                                      param=f"{where}.server_label")
        self.servers.append((tool, where))

    def _namespace(self, tool: s.NamespaceTool, where: str) -> None:
        note = tool.description.strip()
        for j, member in enumerate(tool.tools):
            description = member.description or ""
            if note:
                description = f"{description}\n\n({tool.name}: {note})".strip()
            if isinstance(member, s.CustomTool):
                description = _custom_description(member, description)
                self._offer("custom", member.name, tool.name, description, _INPUT_PARAMETERS, f"{where}.tools[{j}]")
            else:
                self._offer("function", member.name, tool.name, description, member.parameters, f"{where}.tools[{j}]")

    def _offer(self, kind: Kind, name: str, namespace: str | None, description: str | None,
               parameters: dict[str, Any] | None, where: str) -> None:
        key = (_ns_key(namespace), name)
        if key in self._by_client:
            shown = f"{namespace}.{name}" if key[0] else name
            raise InvalidRequestError(f"{where}.name: tool {shown!r} is defined twice", param=f"{where}.name")
        model_name = self._model_name(kind, name, namespace)
        function: dict[str, Any] = {"name": model_name,
                                    "parameters": parameters or {"type": "object", "properties": {}}}
        if description:
            function["description"] = description
        tool = ClientTool(kind, name, namespace, model_name, {"type": "function", "function": function})
        self.tools.append(tool)
        self._by_model[model_name] = tool
        self._by_client[key] = tool

    def _model_name(self, kind: Kind, name: str, namespace: str | None) -> str:
        flat = flat_name(name, namespace)
        if len(flat) <= _MAX_NAME and flat not in self._by_model:
            return flat
        digest = hashlib.sha1(f"{kind}:{namespace}:{name}".encode()).hexdigest()[:8]
        return f"{flat[:_MAX_NAME - 9]}_{digest}"

    def _skip(self, tool: s.HostedTool | s.WebSearchTool) -> None:
        label = tool.type
        self.ignored.append(label)
        if tool.type not in _warned and len(_warned) < _MAX_WARNED:
            _warned.add(tool.type)
            log.warning("responses: skipping %s tools: they run on OpenAI's side, which Kronk does not do "
                        "(the X-Kronk-Tools-Ignored header names them)", tool.type)
        else:
            log.debug("responses: skipping tool %s", label)

    def by_model_name(self, name: str) -> ClientTool | None:
        return self._by_model.get(name)

    def find(self, name: str, namespace: str | None = None, kind: Kind | None = None) -> ClientTool | None:
        """The tool the client calls `name` (in `namespace`); also found by the name the model sees."""
        tool = self._by_client.get((_ns_key(namespace), name))
        if tool is None and namespace is None:
            tool = self._by_model.get(name)
        return tool if tool is not None and (kind is None or tool.kind == kind) else None

    def model_name(self, name: str, namespace: str | None, kind: Kind) -> str:
        """What the model calls a tool in history: its offered name, or the flat name of a tool no longer offered."""
        tool = self.find(name, namespace, kind) or self.find(name, namespace)
        return tool.model_name if tool is not None else flat_name(name, namespace)

    def chat_tools(self, allowed: set[str] | None = None) -> list[dict[str, Any]] | None:
        tools = [t.function for t in self.tools if allowed is None or t.model_name in allowed]
        return tools or None


def flat_name(name: str, namespace: str | None) -> str:
    """`namespace__name` as Codex flattens it (the default namespace adds nothing), made model-safe."""
    flat = name if _ns_key(namespace) is None else f"{str(namespace).rstrip('_')}__{name.lstrip('_')}"
    return _UNSAFE.sub("_", flat) or "_"


def _custom_description(tool: s.CustomTool, description: str | None = None) -> str:
    text = (description if description is not None else tool.description) or ""
    fmt = tool.format
    if fmt is not None and fmt.type == "grammar" and fmt.definition:
        syntax = fmt.syntax or "grammar"
        text += f"\n\nThe input must follow this {syntax} grammar:\n{fmt.definition}"
    text += "\n\nPut the tool's raw input, as plain text, in the `input` argument."
    return text.strip()


# --- tool_choice ---------------------------------------------------------------------


@dataclass(slots=True)
class ChoicePlan:
    tool_choice: str | dict[str, Any] = "auto"
    """The SDK's tool_choice."""
    allowed: set[str] | None = None
    """Model names offered (allowed_tools); None: all."""


def plan_choice(choice: Any, catalog: ToolCatalog, max_tool_calls: int | None) -> ChoicePlan:
    """The SDK's tool_choice; refuses only a choice that requires a skipped or unknown tool."""
    plan = _choice(choice, catalog)
    if max_tool_calls == 0:
        plan.tool_choice = "none"
    return plan


def _choice(choice: Any, catalog: ToolCatalog) -> ChoicePlan:
    if choice is None or choice in ("auto", "none"):
        return ChoicePlan(choice or "auto")
    if choice == "required":
        if not (catalog.server_tools or catalog.default_tools):
            _need_some(catalog.tools, catalog, "tool_choice", "'required'")
        return ChoicePlan("required")
    if isinstance(choice, (s.FunctionToolChoice, s.CustomToolChoice)):
        kind: Kind = "function" if isinstance(choice, s.FunctionToolChoice) else "custom"
        tool = catalog.find(choice.name, choice.namespace, kind)
        if tool is None:
            raise InvalidRequestError(f"tool_choice: names {choice.type} tool {choice.name!r}, which is not in tools",
                                      param="tool_choice")
        return ChoicePlan(_named(tool))
    if isinstance(choice, s.AllowedToolsChoice):
        allowed = _allowed(choice, catalog)
        offered = [t for t in catalog.tools if t.model_name in allowed]
        if not offered:
            if choice.mode == "required":
                _need_some(offered, catalog, "tool_choice.tools", "allowed_tools with mode 'required'")
            return ChoicePlan("none", allowed)
        return ChoicePlan(choice.mode, allowed)
    if choice.type == "mcp" and catalog.has_server(choice.server_label):
        # A named MCP tool: the agent loop checks the name once the server's tools are listed.
        return ChoicePlan({"type": "function", "function": {"name": choice.name}} if choice.name else "required")
    if choice.type.startswith("web_search") and catalog.web_search:
        return ChoicePlan("required")
    if choice.type == LOCAL_SHELL:
        tool = catalog.find(LOCAL_SHELL, None, "local_shell")
        if tool is None:
            raise InvalidRequestError("tool_choice: names local_shell, which is not in tools", param="tool_choice")
        return ChoicePlan(_named(tool))
    raise CapabilityError(f"tool_choice: requires the {choice.type} tool, which runs on OpenAI's side; Kronk does "
                          "not run it (it is skipped from tools)", param="tool_choice")


def _named(tool: ClientTool) -> dict[str, Any]:
    return {"type": "function", "function": {"name": tool.model_name}}


def _need_some(tools: list[ClientTool], catalog: ToolCatalog, param: str, what: str) -> None:
    if tools:
        return
    if catalog.ignored:
        raise CapabilityError(f"{param}: {what} needs a tool Kronk can run; {', '.join(catalog.ignored)} run on "
                              "OpenAI's side and are skipped", param=param)
    raise InvalidRequestError(f"{param}: {what} needs at least one tool in tools", param=param)


def _allowed(choice: s.AllowedToolsChoice, catalog: ToolCatalog) -> set[str]:
    names: set[str] = set()
    for i, entry in enumerate(choice.tools):
        if entry.type == "namespace" and entry.name:
            members = [t for t in catalog.tools if _ns_key(t.namespace) == _ns_key(entry.name)]
            names.update(t.model_name for t in members)
            if members:
                continue
        elif entry.type in ("function", "custom") and entry.name:
            tool = catalog.find(entry.name, entry.namespace, entry.type)  # type: ignore[arg-type]
            if tool is not None:
                names.add(tool.model_name)
                continue
        elif entry.type == LOCAL_SHELL:
            tool = catalog.find(LOCAL_SHELL, None, "local_shell")
            if tool is not None:
                names.add(tool.model_name)
                continue
        else:
            continue  # a hosted tool: skipped like its definition
        raise InvalidRequestError(f"tool_choice.tools[{i}]: names {entry.type} {entry.name or ''!r}, which is not "
                                  "in tools", param=f"tool_choice.tools[{i}]")
    return names


# --- the model's calls back into the client's items ------------------------------------------


def custom_input(arguments: str) -> str:
    """The free-form input of a custom tool call from the function arguments the model wrote."""
    try:
        value = json.loads(arguments)
    except ValueError:
        partial = partial_input(arguments)
        return arguments if partial is None else partial
    if isinstance(value, dict):
        if isinstance(value.get("input"), str):
            return str(value["input"])
        strings = [v for v in value.values() if isinstance(v, str)]
        if len(value) == 1 and strings:
            return strings[0]
    return arguments


_INPUT_START = re.compile(r'^\s*\{\s*"input"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def partial_input(arguments: str) -> str | None:
    """The `input` string of arguments still being written (`{"input": "ab`), as far as it is certain.

    An escape cut in half is left for the next piece, so the result only ever grows
    as arguments grow: the stream sends its new end as a custom_tool_call_input delta.
    """
    start = _INPUT_START.match(arguments)
    if start is None:
        return None
    out: list[str] = []
    i, end = start.end(), len(arguments)
    while i < end:
        char = arguments[i]
        if char == '"':
            break
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= end:
            break
        code = arguments[i + 1]
        if code == "u":
            if i + 6 > end:
                break
            unit = _code_unit(arguments, i + 2)
            if unit is None:
                return None
            if 0xD800 <= unit < 0xDC00:  # a surrogate pair: wait for, and join, its second half
                if i + 12 > end:
                    break
                low = _code_unit(arguments, i + 8)
                if low is None:
                    return None
                out.append(chr(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)))
                i += 12
                continue
            out.append(chr(unit))
            i += 6
            continue
        if code not in _ESCAPES:
            return None
        out.append(_ESCAPES[code])
        i += 2
    return "".join(out)


def _code_unit(text: str, at: int) -> int | None:
    """The UTF-16 code unit of a `\\uXXXX` escape whose four hex digits start at `at`; None if they are not hex."""
    try:
        return int(text[at:at + 4], 16)
    except ValueError:
        return None


def shell_action(arguments: str) -> dict[str, Any] | None:
    """The local_shell_call `exec` action, or None when the arguments are not a usable command."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    command = value.get("command")
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return None
    env = value.get("env")
    timeout = value.get("timeout_ms")
    workdir = value.get("workdir") or value.get("working_directory")
    return {
        "type": "exec",
        "command": command,
        "timeout_ms": timeout if isinstance(timeout, int) and not isinstance(timeout, bool) else None,
        "working_directory": workdir if isinstance(workdir, str) else None,
        "env": {k: v for k, v in env.items() if isinstance(v, str)} if isinstance(env, dict) else {},
        "user": None,
    }


def shell_arguments(action: s.LocalShellAction) -> str:
    """A past local_shell_call's action as the arguments of the local_shell function."""
    args: dict[str, Any] = {"command": action.command}
    if action.working_directory:
        args["workdir"] = action.working_directory
    if action.timeout_ms is not None:
        args["timeout_ms"] = action.timeout_ms
    if action.env:
        args["env"] = action.env
    return json.dumps(args, ensure_ascii=False)
