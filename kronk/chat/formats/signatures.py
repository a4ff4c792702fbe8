"""Tools as one compact line each, for prompts that describe tools in plain text.

Indented JSON Schema costs a small model its whole context: Open WebUI's 36 built-in
tools take ~7,600 SmolLM2 tokens that way (~2,900 as signature lines). A signature line keeps what a model needs
to call a tool (name, what it does, argument names, types, which are optional, short
argument notes) and drops what it does not (titles, `additionalProperties`, numeric
bounds, `$schema`, defaults repeated in prose):

    search_web(query: string, count?: integer = 5) - Search the web. Args: query: the search terms

Only the prompt is compacted: the grammar is still built from the exact schemas, so
the output validates against them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kronk.chat.formats.base import ToolSpec

DESCRIPTION_LIMIT = 160
"""Characters of a tool's description kept (cut at a sentence end where possible)."""
ARG_NOTE_LIMIT = 80
"""Characters of an argument's description kept."""
_MAX_DEPTH = 3
"""Nested objects deeper than this are written as `object`."""
_DEFAULT_LIMIT = 24
"""Longer defaults are not shown."""

_DEFAULTS_PROSE = re.compile(r"\s*\(?\b(?:defaults? (?:to|is)|by default)\b[^.;)]*[.;)]?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_FILLER = frozenset({"the", "a", "an", "of", "to", "for", "this", "id", "ids"})


def tool_line(tool: ToolSpec) -> str:
    """`name(args) - description Args: notes`, on one line."""
    params = tool.parameters if isinstance(tool.parameters, dict) else {}
    refs = _Refs(params)
    line = f"{tool.name}({_fields(params, refs, 1)})"
    description = brief(tool.description, DESCRIPTION_LIMIT)
    if description:
        line += f" - {description}"
    notes = _arg_notes(params)
    if notes:
        line += " Args: " + "; ".join(notes)
    return line


def brief(text: str, limit: int, *, sentences: int | None = None) -> str:
    """`text` on one line: whole sentences of its first paragraph (at most `sentences`)
    while they fit `limit` characters; a first sentence longer than that is cut at a word.

    Docstring-made descriptions often go on with `Args:`/`Returns:` sections after a
    blank line; the signature already says that.
    """
    if not isinstance(text, str):
        return ""
    paragraph = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    parts = _SENTENCE_END.split(" ".join(paragraph.split()))
    kept = ""
    for sentence in parts[:sentences]:
        longer = f"{kept} {sentence}".strip()
        if len(longer) > limit:
            break
        kept = longer
    if kept or not parts[0]:
        return kept
    cut = parts[0][:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut).rstrip(",;:") + "…"


# --- argument lists and types -------------------------------------------------------------


class _Refs:
    """Resolves local `$ref`s (`#/$defs/...`, `#/definitions/...`) against the root schema."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node: Any = self.root
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def _fields(schema: dict[str, Any], refs: _Refs, depth: int) -> str:
    """`a: string, b?: integer = 5` for an object schema's properties."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return ""
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return ", ".join(_field(name, prop, name in needed, refs, depth) for name, prop in props.items())


def _field(name: str, prop: Any, required: bool, refs: _Refs, depth: int) -> str:
    kinds = _type(prop, refs, depth)
    default = prop.get("default") if isinstance(prop, dict) else None
    parts = _alternatives(kinds)
    if not required and default is None and len(parts) > 1:
        # Optional[X] = None in pydantic's words: leaving the argument out says null.
        kinds = "|".join(k for k in parts if k != "null") or "null"
    text = f"{name}{'' if required else '?'}: {kinds}"
    shown = _default(prop)
    return f"{text} = {shown}" if shown is not None else text


def _default(prop: Any) -> str | None:
    if not isinstance(prop, dict) or "default" not in prop:
        return None
    value = prop["default"]
    if value is None or isinstance(value, (list, dict)):
        return None
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _DEFAULT_LIMIT else None


def _type(schema: Any, refs: _Refs, depth: int) -> str:
    """A TypeScript-like type: `string`, `integer[]`, `"a"|"b"`, `{k: string}`.

    `depth`: how many objects (or `$ref` hops, which may loop) lie around this schema.
    """
    if schema is True or schema == {}:
        return "any"
    if not isinstance(schema, dict):
        return "never" if schema is False else "any"
    if "$ref" in schema:
        target = refs.resolve(schema["$ref"])
        return _type(target, refs, depth + 1) if isinstance(target, dict) and depth < _MAX_DEPTH else "object"
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _union([json.dumps(v, ensure_ascii=False) for v in schema["enum"]])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _union([_type(s, refs, depth) for s in schema[key]])
    if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
        return _type(schema["allOf"][0], refs, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        return _union([_type({**schema, "type": k}, refs, depth) for k in kind if isinstance(k, str)]) or "any"
    if kind == "array" or (kind is None and "items" in schema):
        items = schema.get("items")
        inner = _type(items, refs, depth) if isinstance(items, dict) else "any"
        return f"({inner})[]" if len(_alternatives(inner)) > 1 else f"{inner}[]"
    if kind == "object" or (kind is None and "properties" in schema):
        if depth < _MAX_DEPTH and isinstance(schema.get("properties"), dict) and schema["properties"]:
            return "{" + _fields(schema, refs, depth + 1) + "}"
        return "object"
    if kind == "string":
        fmt = schema.get("format")
        return f"string<{fmt}>" if isinstance(fmt, str) and fmt else "string"
    if kind in ("integer", "number", "boolean", "null"):
        return kind
    return "any"


def _union(kinds: list[str]) -> str:
    seen: list[str] = []
    for kind in kinds:
        for part in _alternatives(kind):
            if part not in seen:
                seen.append(part)
    return "|".join(seen)


def _alternatives(kind: str) -> list[str]:
    """`kind` split at its top-level `|` (not inside quotes, braces or parentheses)."""
    parts, depth, quoted, escaped, start = [], 0, False, False, 0
    for i, ch in enumerate(kind):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(kind[start:i])
            start = i + 1
    parts.append(kind[start:])
    return [p for p in parts if p]


# --- argument notes ------------------------------------------------------------------------


def _arg_notes(params: dict[str, Any]) -> list[str]:
    """`name: description` for each top-level argument whose description says something."""
    props = params.get("properties")
    if not isinstance(props, dict):
        return []
    notes = []
    for name, prop in props.items():
        if not isinstance(prop, dict):
            continue
        text = prop.get("description")
        if not isinstance(text, str):
            continue
        if _default(prop) is not None:
            text = _DEFAULTS_PROSE.sub("", text)
        text = brief(text, ARG_NOTE_LIMIT, sentences=1).rstrip(".")
        if text and not _says_nothing(name, text):
            notes.append(f"{name}: {text}")
    return notes


def _says_nothing(name: str, text: str) -> bool:
    """True for notes like "The query." on `query`: only the argument's own name."""
    words = {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w} - _FILLER
    own = {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}
    return words <= own
