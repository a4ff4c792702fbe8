"""The chat layer: templates, tool calling, reasoning and structured output.

    from kronk.chat import prepare_chat
    plan = prepare_chat(request, template_source=model_template, bos_token="<s>", eos_token="</s>")
    sampling = plan.sampling(request.sampling)     # grammar + lazy triggers set
    parser = plan.new_parser()                     # per choice
    events = parser.feed(piece) ... parser.finish()

Pure Python: no native calls happen here (token counting, for fitting tools into
the context, is a callable the caller passes in a `ContextBudget`).
"""

from kronk.chat.fit import DEFAULT_REPLY_ROOM, ContextBudget
from kronk.chat.formats import ToolFormat, ToolSpec, detect_tool_format
from kronk.chat.json_schema import json_object_gbnf, schema_to_gbnf
from kronk.chat.messages import NormalizedMessages, normalize_messages
from kronk.chat.output import ChatOutputParser
from kronk.chat.plan import ChatPlan, prepare_chat, resolve_tool_choice, validate_tools
from kronk.chat.reasoning import ReasoningTags
from kronk.chat.template import CHATML_TEMPLATE, ChatTemplate

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_REPLY_ROOM",
    "ChatOutputParser",
    "ChatPlan",
    "ChatTemplate",
    "ContextBudget",
    "NormalizedMessages",
    "ReasoningTags",
    "ToolFormat",
    "ToolSpec",
    "detect_tool_format",
    "json_object_gbnf",
    "normalize_messages",
    "prepare_chat",
    "resolve_tool_choice",
    "schema_to_gbnf",
    "validate_tools",
]
