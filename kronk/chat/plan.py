"""`prepare_chat`: the one entry point the SDK calls for a chat request.

It validates the chat-specific fields (tools, tool_choice, response_format,
chat_template_kwargs), renders the prompt with the model's template, and decides
the grammar and how to parse the output. It touches no native code: counting tokens,
to fit the tools into the context, is a callable the SDK passes in a `ContextBudget`,
so it is easy to test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kronk.chat.fit import ContextBudget, fit_tools
from kronk.chat.formats import GenericFormat, ToolFormat, ToolSpec, detect_tool_format
from kronk.chat.formats.generic import system_prompt
from kronk.chat.gbnf import GrammarBuilder, json_primitives
from kronk.chat.grammars import ReasoningSetup, response_grammar, tool_grammar
from kronk.chat.json_schema import SchemaConverter
from kronk.chat.messages import normalize_messages
from kronk.chat.output import ChatOutputParser
from kronk.chat.reasoning import (
    PromptThinking,
    ReasoningTags,
    prompt_thinking,
    reasoning_tags,
)
from kronk.chat.request import ChatRequest
from kronk.chat.template import CHATML_TEMPLATE, ChatTemplate
from kronk.engine.types import SamplingParams
from kronk.errors import InvalidRequestError

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_RESERVED_KWARGS = frozenset({"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"})


@dataclass(slots=True)
class ChatPlan:
    """Everything the engine needs to run one chat request and read its output."""

    prompt: str
    grammar: str | None = None
    grammar_lazy_patterns: list[str] = field(default_factory=list)
    """llama.cpp trigger regexes; non-empty means the grammar is lazy."""
    grammar_trigger_tokens: list[int] = field(default_factory=list)
    """Always empty: the patterns match special tokens' text too."""
    extra_stop: list[str] = field(default_factory=list)
    tool_format: ToolFormat | None = None
    """The format tool calls are parsed in; None when the request has no usable tools."""
    tools: list[ToolSpec] = field(default_factory=list)
    reasoning: bool = False
    """The output may hold a thinking block (split into reasoning_content)."""
    starts_in_reasoning: bool = False
    """The prompt opened the thinking block: output starts inside it."""
    reasoning_tags: ReasoningTags | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    """Image/audio parts in prompt order (each left a media marker in `prompt`)."""
    tools_dropped: list[str] = field(default_factory=list)
    """Tools of the request left out because they did not fit the context (see `fit`)."""

    def new_parser(self, choice: int = 0) -> ChatOutputParser:
        """A fresh output parser; one per generated choice."""
        return ChatOutputParser(
            tool_format=self.tool_format,
            tools=self.tools,
            reasoning=self.reasoning_tags if self.reasoning else None,
            starts_in_reasoning=self.starts_in_reasoning,
            choice=choice,
        )

    def sampling(self, base: SamplingParams) -> SamplingParams:
        """`base` with this plan's grammar settings (a copy; `base` is untouched)."""
        return replace(
            base,
            grammar=self.grammar,
            grammar_lazy_patterns=list(self.grammar_lazy_patterns),
            grammar_trigger_tokens=list(self.grammar_trigger_tokens),
        )


def prepare_chat(
    request: ChatRequest,
    *,
    template_source: str | ChatTemplate | None,
    bos_token: str = "",
    eos_token: str = "",
    media_marker: str | None = None,
    clock: Callable[[], datetime] = datetime.now,
    budget: ContextBudget | None = None,
) -> ChatPlan:
    """Render and plan a chat request.

    template_source: the model's template text, or an already compiled
    `ChatTemplate` (the SDK may keep one per model); None uses ChatML. A per-request
    `request.template` wins over both. media_marker: see `normalize_messages`.
    budget: the context the prompt must fit; tools that do not fit are dropped or
    refused (see `kronk.chat.fit`). None: no check (the engine still refuses a prompt
    longer than its context).
    """
    template = _template(request, template_source, bos_token, eos_token, clock)
    specs = validate_tools(request.tools)
    mode, named = resolve_tool_choice(request.tool_choice, specs)
    if not isinstance(request.parallel_tool_calls, bool):
        raise InvalidRequestError("parallel_tool_calls must be a boolean", param="parallel_tool_calls")
    kwargs = _template_kwargs(request)
    raw_grammar = request.sampling.grammar
    builder = GrammarBuilder()
    response = _response_rule(request.response_format, builder)
    tools_on = bool(specs) and mode != "none"
    if raw_grammar is not None:
        if not isinstance(raw_grammar, str) or not raw_grammar.strip():
            raise InvalidRequestError("grammar must be non-empty GBNF text", param="grammar")
        if response is not None:
            raise InvalidRequestError("use either grammar or response_format, not both", param="response_format")
        if tools_on:
            raise InvalidRequestError("a grammar cannot be combined with tools", param="grammar")

    fmt: ToolFormat = detect_tool_format(template.source, supports_tools=True) if template.supports_tools else GenericFormat()
    normalized = normalize_messages(
        request.messages, object_arguments=template.wants_object_arguments, media_marker=media_marker
    )
    messages = normalized.messages
    if not template.supports_tools:
        messages = _history_as_text(messages)

    def render(kept: list[ToolSpec]) -> str:
        on = bool(kept) and mode != "none"
        rendered = messages
        if on and isinstance(fmt, GenericFormat):
            instructions = system_prompt(
                kept, allow_response=mode == "auto", parallel=request.parallel_tool_calls, structured=response is not None
            )
            rendered = _with_instructions(messages, instructions, system_role=template.supports_system_role)
        return template.render(
            rendered,
            tools=[t.to_openai() for t in kept] if on and template.supports_tools else None,
            add_generation_prompt=True,
            **kwargs,
        )

    dropped: list[str] = []
    if tools_on and budget is not None:
        fitted = fit_tools(specs, mode=mode, named=named, render=render, budget=budget)
        specs, prompt, dropped = fitted.tools, fitted.prompt, fitted.dropped
        tools_on = bool(specs)
    else:
        prompt = render(specs if tools_on else [])

    tags = reasoning_tags(template.source)
    state = prompt_thinking(prompt, tags)
    if state is PromptThinking.OPENED:
        reasoning, opened = True, True
    elif state is PromptThinking.CLOSED:
        reasoning, opened = False, False
    else:
        # Asking a model whose template knows no thinking to think changes nothing: allowing
        # a block it was never trained to close would let one stray tag swallow the answer.
        wanted = kwargs.get("enable_thinking")
        reasoning, opened = template.supports_thinking and wanted is not False, False
    setup = ReasoningSetup(tags, opened) if reasoning else None

    plan = ChatPlan(
        prompt=prompt,
        tools_dropped=dropped,
        media=normalized.media,
        reasoning=reasoning,
        starts_in_reasoning=opened,
        reasoning_tags=tags,
    )
    if template.source == CHATML_TEMPLATE:
        # The model has no template of its own, so it may not know <|im_end|> as an
        # end-of-generation token: stop on the text.
        plan.extra_stop.append("<|im_end|>")
    if raw_grammar is not None:
        plan.grammar = raw_grammar
    elif tools_on:
        grammar_tools = [t for t in specs if t.name == named] if mode == "named" else specs
        built = tool_grammar(
            fmt,
            grammar_tools,
            mode=mode,
            parallel=request.parallel_tool_calls,
            reasoning=setup,
            response=response,
            builder=builder,
        )
        plan.grammar, plan.grammar_lazy_patterns = built.grammar, built.lazy_patterns
    elif response is not None:
        plan.grammar = response_grammar(response, builder, setup).grammar
    if tools_on:
        plan.tool_format = fmt
        plan.tools = specs
    return plan


# --- validation -------------------------------------------------------------------


def validate_tools(tools: Any) -> list[ToolSpec]:
    """OpenAI function tools → `ToolSpec`s; anything malformed names `tools`."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise InvalidRequestError("tools must be a list", param="tools")
    specs: list[ToolSpec] = []
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequestError(f"{where} must be {{'type': 'function', 'function': {{...}}}}", param="tools")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequestError(f"{where}.function must be an object", param="tools")
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequestError(
                f"{where}.function.name must be 1-64 letters, digits, '_', '.' or '-'", param="tools"
            )
        if name in seen:
            raise InvalidRequestError(f"tool {name!r} is defined twice", param="tools")
        seen.add(name)
        description = function.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequestError(f"{where}.function.description must be a string", param="tools")
        parameters = function.get("parameters")
        if parameters is None:
            parameters = {"type": "object", "properties": {}}
        if not isinstance(parameters, dict):
            raise InvalidRequestError(f"{where}.function.parameters must be a JSON Schema object", param="tools")
        specs.append(ToolSpec(name=name, description=description, parameters=copy.deepcopy(parameters)))
    return specs


def resolve_tool_choice(choice: Any, specs: list[ToolSpec]) -> tuple[str, str | None]:
    """("none" | "auto" | "required" | "named", the named tool or None)."""
    if choice is None:
        choice = "auto"
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequestError("tool_choice must be 'none', 'auto', 'required' or a function", param="tool_choice")
        if choice == "required" and not specs:
            raise InvalidRequestError("tool_choice 'required' needs tools", param="tool_choice")
        return choice, None
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not any(t.name == name for t in specs):
            raise InvalidRequestError(f"tool_choice names an unknown function {name!r}", param="tool_choice")
        return "named", name
    raise InvalidRequestError("tool_choice must be 'none', 'auto', 'required' or a function", param="tool_choice")


def _response_rule(response_format: Any, builder: GrammarBuilder) -> str | None:
    """The grammar rule for `response_format` inside `builder` (None: free text)."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise InvalidRequestError("response_format must be an object", param="response_format")
    kind = response_format.get("type")
    json_primitives(builder)
    if kind == "text":
        return None
    if kind == "json_object":
        schema = response_format.get("schema")
        if schema is None:
            return "object"
        return SchemaConverter(schema, builder, param="response_format").convert()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise InvalidRequestError("response_format.json_schema.schema is required", param="response_format")
        schema = spec["schema"]
        if not isinstance(schema, (dict, bool)):
            raise InvalidRequestError("response_format.json_schema.schema must be an object", param="response_format")
        return SchemaConverter(schema, builder, param="response_format").convert()
    raise InvalidRequestError(
        "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format"
    )


def _template_kwargs(request: ChatRequest) -> dict[str, Any]:
    extra = request.chat_template_kwargs or {}
    if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
        raise InvalidRequestError("chat_template_kwargs must be an object", param="chat_template_kwargs")
    clash = _RESERVED_KWARGS.intersection(extra)
    if clash:
        raise InvalidRequestError(
            f"chat_template_kwargs may not set {sorted(clash)}", param="chat_template_kwargs"
        )
    kwargs = dict(extra)
    if request.enable_thinking is not None:
        if not isinstance(request.enable_thinking, bool):
            raise InvalidRequestError("enable_thinking must be a boolean", param="enable_thinking")
        kwargs["enable_thinking"] = request.enable_thinking
    return kwargs


def _template(
    request: ChatRequest,
    source: str | ChatTemplate | None,
    bos_token: str,
    eos_token: str,
    clock: Callable[[], datetime],
) -> ChatTemplate:
    if request.template is not None:
        if not isinstance(request.template, str):
            raise InvalidRequestError("template must be a string", param="template")
        return ChatTemplate(request.template, bos_token=bos_token, eos_token=eos_token, clock=clock)
    if isinstance(source, ChatTemplate):
        return source
    return ChatTemplate(source or CHATML_TEMPLATE, bos_token=bos_token, eos_token=eos_token, clock=clock)


# --- message rewriting for templates without tool support --------------------------


def _history_as_text(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Past tool calls and results as plain text, in the generic format's own JSON."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.get("tool_calls"):
            calls = [
                {"name": c["function"]["name"], "arguments": _as_object(c["function"].get("arguments"))}
                for c in msg["tool_calls"]
            ]
            text = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            content = msg.get("content") or ""
            out.append({**{k: v for k, v in msg.items() if k != "tool_calls"}, "content": f"{content}\n{text}" if content else text})
        elif msg.get("role") == "tool":
            result = {"tool_response": {"name": msg.get("name", ""), "content": msg.get("content", "")}}
            if msg.get("tool_call_id"):
                result["tool_response"]["tool_call_id"] = msg["tool_call_id"]
            out.append({"role": "user", "content": json.dumps(result, ensure_ascii=False)})
        else:
            out.append(msg)
    return out


def _as_object(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return json.loads(args)
        except ValueError:
            return args
    return args


def _with_instructions(messages: list[dict[str, Any]], text: str, *, system_role: bool) -> list[dict[str, Any]]:
    """Put `text` into the first system message (or a new one; or the first user message)."""
    out = list(messages)
    if system_role:
        if out and out[0].get("role") == "system":
            out[0] = {**out[0], "content": f"{out[0].get('content') or ''}\n\n{text}".lstrip()}
        else:
            out.insert(0, {"role": "system", "content": text})
        return out
    for i, msg in enumerate(out):
        if msg.get("role") == "user":
            out[i] = {**msg, "content": f"{text}\n\n{msg.get('content') or ''}"}
            return out
    out.insert(0, {"role": "user", "content": text})
    return out
