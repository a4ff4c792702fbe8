"""System messages after the conversation began (Anthropic's mid-conversation system messages).

Templates that render them keep them where they stand; templates that refuse or drop
them get the text folded into a user turn, so the request renders instead of failing.
"""

from __future__ import annotations

from kronk.chat.template import CHATML_TEMPLATE, ChatTemplate, fold_late_system
from tests.chat.templates import GEMMA_LIKE, MISTRAL, QWEN3

CLAUDE_CODE_SHAPE = [
    {"role": "system", "content": "You are a coding agent."},
    {"role": "user", "content": "Say hello."},
    {"role": "system", "content": "MCP server instructions"},
]
"""What Claude Code 2.1 sends, translated: system prompt, user turn, then a system message."""


def test_templates_that_render_late_system_messages_keep_them() -> None:
    for source in (CHATML_TEMPLATE, QWEN3):
        template = ChatTemplate(source)
        assert template.supports_late_system
        prompt = template.render(CLAUDE_CODE_SHAPE)
        assert prompt.index("Say hello.") < prompt.index("<|im_start|>system\nMCP server instructions")


def test_templates_that_refuse_them_get_the_text_in_the_user_turn() -> None:
    template = ChatTemplate(MISTRAL)
    assert not template.supports_late_system
    prompt = template.render(CLAUDE_CODE_SHAPE)
    assert "[INST] You are a coding agent.\n\nSay hello.\n\nMCP server instructions[/INST]" in prompt
    gemma = ChatTemplate(GEMMA_LIKE)
    assert not gemma.supports_late_system
    prompt = gemma.render([
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "system", "content": "note"}, {"role": "user", "content": "c"}])
    assert "<start_of_turn>user\nnote\n\nc<end_of_turn>" in prompt


def test_fold_keeps_user_turns_single() -> None:
    assert fold_late_system([
        {"role": "system", "content": "s"}, {"role": "user", "content": "a"},
        {"role": "system", "content": "x"}, {"role": "system", "content": "y"},
        {"role": "assistant", "content": "b"}, {"role": "system", "content": "z"},
        {"role": "assistant", "content": "c"}, {"role": "tool", "content": "t"}, {"role": "system", "content": "w"},
    ]) == [
        {"role": "system", "content": "s"}, {"role": "user", "content": "a\n\nx\n\ny"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "z"},
        {"role": "assistant", "content": "c"}, {"role": "tool", "content": "t"}, {"role": "user", "content": "w"},
    ]
