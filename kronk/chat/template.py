"""Render a model's own Jinja chat template, the way Hugging Face does.

The template text comes from GGUF metadata (`tokenizer.chat_template`), a per-request
override, or `CHATML_TEMPLATE` when the model has none. It runs in Jinja's immutable
sandbox (a template is untrusted input) with HF's settings and helpers:
`trim_blocks`/`lstrip_blocks`, the `loopcontrols` extension, `raise_exception`,
`strftime_now`, and a `tojson` filter with HF semantics (non-ASCII kept, `indent`,
`separators`, `sort_keys`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from typing import Any

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.sandbox

from kronk.chat.messages import normalize_messages
from kronk.errors import InvalidRequestError

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Used when a model carries no template: ChatML is the most widely trained format."""

_THINKING_MARKERS = ("<think>", "[THINK]", "<|START_THINKING|>", "enable_thinking", "reasoning_content")
_PROBE_ARG = "kronk_probe_argument"
_MAX_OUTPUT = 4_000_000
"""Characters one render may produce; a per-request template must not exhaust memory."""
_MAX_RANGE_TOTAL = 200_000
"""`range()` elements one render may iterate; nested loops must not spin forever."""
_BUDGET_KEY = "_kronk_render_budget"


class _Budget:
    """Work one render may still do (a fresh one per render, so no shared state)."""

    def __init__(self) -> None:
        self.range_left = _MAX_RANGE_TOTAL

    def spend_range(self, n: int) -> None:
        self.range_left -= n
        if self.range_left < 0:
            raise jinja2.exceptions.SecurityError("the template loops too much")


@jinja2.pass_context
def _range(context: jinja2.runtime.Context, *args: int) -> range:
    budget = context.get(_BUDGET_KEY)
    result = range(*args)
    if isinstance(budget, _Budget):
        budget.spend_range(len(result))
    return result


class _Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """HF's sandbox, plus limits on `*` and `**` so a template cannot allocate gigabytes."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise jinja2.exceptions.SecurityError("exponent too large in the template")
        if operator == "*":
            for seq_, times in ((left, right), (right, left)):
                if isinstance(seq_, (str, list, tuple)) and isinstance(times, int) and len(seq_) * times > _MAX_OUTPUT:
                    raise jinja2.exceptions.SecurityError("the template builds too large a value")
        return super().call_binop(context, operator, left, right)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """HF's `tojson`: plain `json.dumps` (Jinja's own escapes HTML characters)."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise_exception(message: str) -> None:
    """Templates call this to refuse a conversation (e.g. roles that do not alternate)."""
    raise InvalidRequestError(f"chat template refused the messages: {message}", param="messages")


class ChatTemplate:
    """A compiled chat template plus what it can do (tools, thinking).

    `clock` gives `strftime_now` its time (tests pin it).
    """

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        if not isinstance(source, str) or not source.strip():
            raise InvalidRequestError("chat template is empty", param="template")
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self._clock = clock
        env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = self._strftime_now
        env.globals["range"] = _range
        try:
            parsed = env.parse(source)
            self._template = env.from_string(parsed)
        except jinja2.TemplateError as exc:
            raise InvalidRequestError(f"chat template does not compile: {exc}", param="template") from None
        self._variables = jinja2.meta.find_undeclared_variables(parsed)

    def _strftime_now(self, fmt: str) -> str:
        return self._clock().strftime(fmt)

    @property
    def supports_tools(self) -> bool:
        """The template renders a `tools` list itself."""
        return "tools" in self._variables

    @property
    def supports_thinking(self) -> bool:
        """The template knows a thinking block or an `enable_thinking` switch."""
        return any(marker in self.source for marker in _THINKING_MARKERS)

    @cached_property
    def supports_system_role(self) -> bool:
        """A system message is rendered (some templates refuse or drop it)."""
        probe = "kronk-system-probe"
        try:
            text = self._render_raw([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}], None, True, {})
        except (InvalidRequestError, jinja2.TemplateError, TypeError, ValueError):
            return False
        return probe in text

    @cached_property
    def supports_late_system(self) -> bool:
        """A system message after the conversation began is rendered where it stands.

        Anthropic's mid-conversation system messages (which Claude Code sends) and
        OpenAI clients put them there; many templates raise or drop them, and then
        `render` folds them into a user turn instead.
        """
        probe = "kronk-late-system-probe"
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "next"}, {"role": "system", "content": probe}]
        try:
            text = self._render_raw(messages, None, True, {})
        except (InvalidRequestError, jinja2.TemplateError, TypeError, ValueError):
            return False
        return probe in text

    @cached_property
    def wants_object_arguments(self) -> bool:
        """Tool-call `arguments` must be a dict (the template uses `tojson`/`items()`), not a JSON string.

        Probed like llama.cpp does: render a past tool call both ways and see which
        one shows the argument as JSON.
        """
        for as_object in (True, False):
            args: Any = {_PROBE_ARG: 1} if as_object else json.dumps({_PROBE_ARG: 1})
            messages: list[dict[str, Any]] = [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "probe0001", "type": "function", "function": {"name": "probe", "arguments": args}}
                    ],
                },
                {"role": "tool", "tool_call_id": "probe0001", "name": "probe", "content": "ok"},
            ]
            try:
                text = self._render_raw(messages, None, False, {})
            except (InvalidRequestError, jinja2.TemplateError, TypeError, ValueError, AttributeError):
                continue
            if f'"{_PROBE_ARG}"' in text:
                return as_object
        return True

    def render(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> str:
        """The prompt text for `messages` (OpenAI-shaped; normalised first).

        Extra keyword arguments (`enable_thinking`, `chat_template_kwargs` entries)
        become template variables. A template's `raise_exception` and any rendering
        failure raise `InvalidRequestError`.
        """
        normalized = normalize_messages(messages, object_arguments=self.wants_object_arguments)
        rendered = normalized.messages
        if not self.supports_late_system:
            rendered = fold_late_system(rendered)
        return self._render_raw(rendered, tools, add_generation_prompt, kwargs)

    def _render_raw(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        add_generation_prompt: bool,
        extra: dict[str, Any],
    ) -> str:
        context: dict[str, Any] = {
            **extra,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if tools:
            context["tools"] = tools
        context[_BUDGET_KEY] = _Budget()
        try:
            return self._render_limited(context)
        except InvalidRequestError:
            raise
        except jinja2.exceptions.SecurityError as exc:
            raise InvalidRequestError(f"chat template did something unsafe: {exc}", param="template") from None
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            raise InvalidRequestError(f"chat template failed on these messages: {exc}", param="messages") from None
        except (RecursionError, MemoryError, OverflowError) as exc:
            raise InvalidRequestError(f"chat template exhausted its resources: {exc!r}", param="template") from None

    def _render_limited(self, context: dict[str, Any]) -> str:
        parts: list[str] = []
        size = 0
        for chunk in self._template.generate(context):
            size += len(chunk)
            if size > _MAX_OUTPUT:
                raise jinja2.exceptions.SecurityError("the template renders too much text")
            parts.append(chunk)
        return "".join(parts)


def fold_late_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """System messages after the first other message, as user text (for templates that refuse them there).

    The text joins the user message before it, else the user message after it, else
    becomes a user message of its own, so user turns never repeat. Leading system
    messages stay. Content is already text (normalised).
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    began = False
    for msg in messages:
        if msg["role"] == "system" and began:
            if out and out[-1]["role"] == "user" and not pending:
                out[-1] = {**out[-1], "content": f"{out[-1]['content'] or ''}\n\n{msg['content']}"}
            else:
                pending.append(msg["content"] or "")
            continue
        began = began or msg["role"] != "system"
        if pending and msg["role"] == "user":
            msg = {**msg, "content": "\n\n".join([*pending, msg["content"] or ""])}
        elif pending:
            out.append({"role": "user", "content": "\n\n".join(pending)})
        pending = []
        out.append(msg)
    if pending:
        out.append({"role": "user", "content": "\n\n".join(pending)})
    return out
