"""Thinking blocks: which tags a model uses and whether the prompt already opened one.

Reasoning models wrap their thinking in tags (`<think>...</think>` for Qwen3 and
DeepSeek-R1, `[THINK]...[/THINK]` for Magistral, ...). Some templates open the block
in the generation prompt (DeepSeek-R1 ends the prompt with `<think>\\n`), so the
output starts inside the reasoning; Qwen3 with `enable_thinking=false` renders an
empty, closed block, so the output holds no reasoning at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class ReasoningTags:
    open: str
    close: str


THINK = ReasoningTags("<think>", "</think>")
_KNOWN = (
    ReasoningTags("<seed:think>", "</seed:think>"),
    ReasoningTags("[THINK]", "[/THINK]"),
    ReasoningTags("<|START_THINKING|>", "<|END_THINKING|>"),
    THINK,
)


class PromptThinking(Enum):
    """What the rendered prompt did to the thinking block."""

    NONE = "none"
    OPENED = "opened"
    CLOSED = "closed"


def reasoning_tags(template_source: str) -> ReasoningTags:
    """The tags a template uses; `<think>` when it names none (the common default)."""
    for tags in _KNOWN:
        if tags.open in template_source:
            return tags
    return THINK


def prompt_thinking(prompt: str, tags: ReasoningTags) -> PromptThinking:
    """Whether the prompt ends inside an opened thinking block or after a closed one."""
    tail = prompt.rstrip()
    if tail.endswith(tags.open):
        return PromptThinking.OPENED
    if tail.endswith(tags.close):
        return PromptThinking.CLOSED
    return PromptThinking.NONE
