"""Fitting a request's tools into the context: which are kept, which dropped, or a 400.

A tool listing can outgrow a small model's context: Open WebUI sends its 36 built-in
tools with every chat. The prompt must also leave room for the reply, so a request may
use at most `ContextBudget.limit` prompt tokens. When the prompt with all its tools is
longer than that:

- tool_choice "auto": the chat is served with the tools that fit, the first ones in
  request order (deterministic, and clients list the important ones first), and the
  plan names the dropped ones so the server can say so. If even the conversation alone
  is too long, every tool goes and the engine judges the bare prompt.
- tool_choice "required": the client insists on its tool set, so a 400
  (`context_length_exceeded`, param "tools") says what does not fit.
- a named tool: only that tool can be called, so the others may go; the named tool
  itself must fit, or it is a 400 as above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kronk.chat.formats.base import ToolSpec
from kronk.errors import ContextOverflowError

DEFAULT_REPLY_ROOM = 1024
"""Tokens kept free for the reply when the request sets no max_tokens (a quarter of
the context at most): enough for a tool call or a few paragraphs."""


@dataclass(frozen=True, slots=True)
class ContextBudget:
    """The context a chat runs in and how to count a prompt's tokens (the SDK knows both)."""

    n_ctx: int
    """Tokens one sequence of the context holds."""
    reply_room: int
    """Tokens kept free for the reply."""
    count: Callable[[str], int]
    """Prompt text → its token count, as the engine will see it."""

    @classmethod
    def for_request(cls, n_ctx: int, max_tokens: int | None, count: Callable[[str], int]) -> ContextBudget:
        """Room for `max_tokens` (or `DEFAULT_REPLY_ROOM`), but never more than a quarter of
        the context: a client's max_tokens of 4096 must not push every tool out of 8192."""
        wanted = DEFAULT_REPLY_ROOM if max_tokens is None else max(0, max_tokens)
        return cls(n_ctx=n_ctx, reply_room=min(wanted, n_ctx // 4), count=count)

    @property
    def limit(self) -> int:
        """The most prompt tokens a request with tools may have."""
        return self.n_ctx - max(1, self.reply_room)


@dataclass(slots=True)
class FittedTools:
    tools: list[ToolSpec]
    """The tools kept, in request order."""
    prompt: str
    """The prompt rendered with exactly those tools."""
    dropped: list[str] = field(default_factory=list)
    """Names of the tools left out, in request order."""


def fit_tools(
    specs: list[ToolSpec],
    *,
    mode: str,
    named: str | None,
    render: Callable[[list[ToolSpec]], str],
    budget: ContextBudget,
) -> FittedTools:
    """The largest prefix of `specs` (plus the named tool) whose prompt fits `budget`.

    `render(tools)` is the prompt with those tools. The common case costs one render
    and one count; otherwise a binary search over how many tools to keep (token counts
    only grow with more tools).
    """
    prompt = render(specs)
    n_all = budget.count(prompt)
    if n_all <= budget.limit:
        return FittedTools(list(specs), prompt)
    if mode == "required":
        raise ContextOverflowError(
            f"the {len(specs)} tools do not fit the context: with them the prompt has {n_all} tokens, "
            f"but {_room(budget)}; send fewer or shorter tools, or use tool_choice 'auto' "
            "to have the tools that do not fit left out",
            param="tools",
        )
    optional = [t for t in specs if t.name != named]

    def subset(k: int) -> list[ToolSpec]:
        chosen = {t.name for t in optional[:k]}
        return [t for t in specs if t.name in chosen or t.name == named]

    prompts: dict[int, str] = {len(optional): prompt}

    def fits(k: int) -> bool:
        prompts[k] = render(subset(k))
        return budget.count(prompts[k]) <= budget.limit

    if not fits(0):
        if named is not None:
            raise ContextOverflowError(
                f"tool {named!r} does not fit the context: with only that tool the prompt has "
                f"{budget.count(prompts[0])} tokens, but {_room(budget)}",
                param="tools",
            )
        kept = 0
    else:
        kept, too_many = 0, len(optional)
        while too_many - kept > 1:
            middle = (kept + too_many) // 2
            if fits(middle):
                kept = middle
            else:
                too_many = middle
    tools = subset(kept)
    names = {t.name for t in tools}
    return FittedTools(tools, prompts[kept], [t.name for t in specs if t.name not in names])


def _room(budget: ContextBudget) -> str:
    return (
        f"the context holds {budget.n_ctx} tokens and {budget.reply_room} stay free for the reply "
        f"(at most {budget.limit} prompt tokens)"
    )
