"""JSON Schema → GBNF, so constrained output always parses and validates.

Our own converter (not a port of llama.cpp's script). The rule of thumb: the grammar
may allow *fewer* documents than the schema (e.g. no extra object keys unless
`additionalProperties` asks for them, bounded number digits) but never one that fails
validation. A keyword we cannot honour raises `GrammarError` naming it; annotations
(`title`, `description`, `default`, ...) and unknown keywords are ignored, as
validators ignore them.

Supported: type (and type lists), enum, const, properties, required,
additionalProperties (false / true / schema), minProperties / maxProperties (when
implied by `required`), items, prefixItems (and draft-7 tuple `items`), minItems,
maxItems, anyOf, oneOf (as anyOf), allOf (merged), $ref to `#...` JSON pointers
(recursion allowed), minLength, maxLength, pattern (see `regex_gbnf`), format
(date, time, date-time, uuid, email, ipv4), minimum / maximum / exclusiveMinimum /
exclusiveMaximum (integers; whole-number bounds for numbers). OpenAPI's `nullable`
is ignored: JSON Schema validators do not accept null for it.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import unquote

from kronk.chat import gbnf
from kronk.chat.gbnf import GrammarBuilder, alt, literal, repeat, seq
from kronk.chat.gbnf_values import STRING_FORMATS, integer_range, number_range
from kronk.chat.regex_gbnf import complement, pattern_to_gbnf
from kronk.errors import GrammarError

_ANNOTATIONS = frozenset(
    {
        "title", "description", "default", "examples", "$comment", "$schema", "$id", "$anchor",
        "readOnly", "writeOnly", "deprecated", "contentMediaType", "contentEncoding", "strict",
        "$defs", "definitions", "discriminator", "xml", "externalDocs", "example", "nullable",
    }
)
_UNSUPPORTED = {
    "not": "'not'",
    "if": "'if'/'then'/'else'",
    "then": "'if'/'then'/'else'",
    "else": "'if'/'then'/'else'",
    "dependentRequired": "'dependentRequired'",
    "dependentSchemas": "'dependentSchemas'",
    "dependencies": "'dependencies'",
    "contains": "'contains'",
    "minContains": "'minContains'",
    "maxContains": "'maxContains'",
    "propertyNames": "'propertyNames'",
    "$dynamicRef": "'$dynamicRef'",
    "$recursiveRef": "'$recursiveRef'",
}
_TYPES = ("string", "number", "integer", "boolean", "null", "object", "array")
_OBJECT_KEYS = ("properties", "required", "additionalProperties", "minProperties", "maxProperties")
_ARRAY_KEYS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
_STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")

_Q = literal('"')


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise GrammarError(f"value {value!r} is not JSON")


def _type_allows(types: set[str] | None, value: Any) -> bool:
    if types is None:
        return True
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


class SchemaConverter:
    """Turns one JSON Schema document into GBNF rules inside a shared builder.

    `prefix` keeps rule names of several schemas (one per tool) apart; `param`
    names the request field in errors.
    """

    def __init__(self, root: Any, builder: GrammarBuilder, *, prefix: str = "", param: str | None = None) -> None:
        self.root = root
        self.b = builder
        self.prefix = prefix
        self.param = param
        self._refs: dict[str, str] = {}
        self._resolving: set[str] = set()
        gbnf.json_primitives(builder)

    # errors and names
    def _error(self, path: str, problem: str) -> GrammarError:
        return GrammarError(f"JSON schema {path or '#'}: {problem}", param=self.param)

    def _hint(self, path: str) -> str:
        tail = [p for p in path.split("/") if p and p not in ("#", "properties", "items", "$defs", "definitions")]
        name = "-".join(tail[-2:]) if tail else "value"
        return f"{self.prefix}-{name}" if self.prefix else name

    def convert(self) -> str:
        """The GBNF expression (usually a rule name) for the root schema."""
        return self.visit(self.root, "#")

    # dispatch
    def visit(self, schema: Any, path: str) -> str:
        if schema is True or schema == {}:
            return "value"
        if schema is False:
            raise self._error(path, "the schema `false` matches nothing")
        if not isinstance(schema, dict):
            raise self._error(path, "a schema must be an object or a boolean")
        for key in schema:
            if key in _UNSUPPORTED:
                raise self._error(path, f"the keyword {_UNSUPPORTED[key]} is not supported")
        if "$ref" in schema:
            siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
            if not siblings:
                return self._ref(schema["$ref"], path)
            return self.visit({"allOf": [{"$ref": schema["$ref"]}, siblings]}, path)
        if "allOf" in schema:
            return self.visit(self._merge_all(schema, path), path)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._any_of(schema, key, path)
        types = self._types(schema, path)
        if "const" in schema or "enum" in schema:
            return self._enum(schema, types, path)
        if types is None:
            types = self._infer_types(schema)
        if types is None:
            return "value"
        kinds = [t for t in _TYPES if t in types and not (t == "integer" and "number" in types)]
        options = [self._typed(schema, t, path) for t in kinds]
        expr = alt(options)
        return expr if len(options) == 1 else self.b.add(self._hint(path), expr)

    def _types(self, schema: dict[str, Any], path: str) -> set[str] | None:
        raw = schema.get("type")
        if raw is None:
            return None
        listed = raw if isinstance(raw, list) else [raw]
        if not listed or any(t not in _TYPES for t in listed):
            raise self._error(path, f"unknown type {raw!r}")
        return set(listed)

    @staticmethod
    def _infer_types(schema: dict[str, Any]) -> set[str] | None:
        found: set[str] = set()
        for keys, kind in ((_OBJECT_KEYS, "object"), (_ARRAY_KEYS, "array"), (_STRING_KEYS, "string"), (_NUMBER_KEYS, "number")):
            if any(k in schema for k in keys):
                found.add(kind)
        return found or None

    def _typed(self, schema: dict[str, Any], kind: str, path: str) -> str:
        if kind == "string":
            return self._string(schema, path)
        if kind in ("number", "integer"):
            return self._number(schema, path, integer=kind == "integer")
        if kind == "boolean":
            return "boolean"
        if kind == "null":
            return "null"
        if kind == "object":
            return self._object(schema, path)
        return self._array(schema, path)

    # $ref
    def _resolve(self, ref: Any, path: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise self._error(path, f"only local references ('#/...') are supported, not {ref!r}")
        node = self.root
        pointer = ref[1:]
        if pointer and not pointer.startswith("/"):
            raise self._error(path, f"anchor references like {ref!r} are not supported")
        for raw in pointer.split("/")[1:] if pointer else []:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self._error(path, f"reference {ref!r} points nowhere")
        return node

    def _ref(self, ref: Any, path: str) -> str:
        target = self._resolve(ref, path)
        key = str(ref)
        if key in self._refs:
            if key in self._resolving:
                raise self._error(path, f"reference {ref!r} refers to itself without an object or array in between")
            return self._refs[key]
        name = self.b.reserve(self._hint(key))
        self._refs[key] = name
        self._resolving.add(key)
        try:
            body = self.visit(target, key)
        finally:
            self._resolving.discard(key)
        self.b.define(name, body)
        return name

    def _nested(self, schema: Any, path: str) -> str:
        """Visit a schema below an object or array: a reference cycle is fine there."""
        saved = self._resolving
        self._resolving = set()
        try:
            return self.visit(schema, path)
        finally:
            self._resolving = saved

    # combinators
    def _any_of(self, schema: dict[str, Any], key: str, path: str) -> str:
        branches = schema[key]
        if not isinstance(branches, list) or not branches:
            raise self._error(path, f"'{key}' must be a non-empty list")
        base = {k: v for k, v in schema.items() if k != key and k not in _ANNOTATIONS}
        options = []
        conflicts: list[GrammarError] = []
        for i, branch in enumerate(branches):
            sub = f"{path}/{key}/{i}"
            if not base:
                options.append(self.visit(branch, sub))
                continue
            try:
                merged = self._merge([base, branch], sub)
            except GrammarError as exc:  # this branch contradicts its siblings: it can never match
                conflicts.append(exc)
                continue
            options.append(self.visit(merged, sub))
        if not options:
            raise conflicts[0]
        return self.b.add(self._hint(path), alt(options))

    def _merge_all(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            raise self._error(path, "'allOf' must be a non-empty list")
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return self._merge([rest, *parts], path)

    def _flatten(self, schema: Any, path: str, depth: int = 0) -> list[dict[str, Any]]:
        if depth > 32:
            raise self._error(path, "allOf/$ref nesting is too deep to merge")
        if schema is True:
            return []
        if schema is False or not isinstance(schema, dict):
            raise self._error(path, "allOf contains a schema that matches nothing or is not an object")
        out: list[dict[str, Any]] = []
        own = {k: v for k, v in schema.items() if k not in ("allOf", "$ref")}
        if "$ref" in schema:
            out += self._flatten(self._resolve(schema["$ref"], path), path, depth + 1)
        for part in schema.get("allOf", []):
            out += self._flatten(part, path, depth + 1)
        out.append(own)
        return out

    def _merge(self, schemas: list[Any], path: str) -> dict[str, Any]:
        """One schema that every instance of all `schemas` satisfies (allOf)."""
        flat: list[dict[str, Any]] = []
        for s in schemas:
            flat += self._flatten(s, path)
        merged: dict[str, Any] = {}
        closed: list[set[str]] = []
        for part in flat:
            for key in part:
                if key in _UNSUPPORTED:
                    raise self._error(path, f"the keyword {_UNSUPPORTED[key]} is not supported")
            if part.get("additionalProperties") is False:
                closed.append(set(part.get("properties", {})))
            for key, value in part.items():
                if key in _ANNOTATIONS:
                    continue
                if key not in merged:
                    merged[key] = value
                    continue
                merged[key] = self._merge_key(key, merged[key], value, path)
        if closed:
            allowed = set.intersection(*closed)
            merged["properties"] = {k: v for k, v in merged.get("properties", {}).items() if k in allowed}
            missing = [r for r in merged.get("required", []) if r not in allowed]
            if missing:
                raise self._error(path, f"allOf requires {missing} but another part forbids extra properties")
            merged["additionalProperties"] = False
        return merged

    def _merge_key(self, key: str, a: Any, b: Any, path: str) -> Any:
        if a == b:
            return a
        if key == "type":
            sa = set(a if isinstance(a, list) else [a])
            sb = set(b if isinstance(b, list) else [b])
            both = sa & sb
            if ("number" in sa and "integer" in sb) or ("integer" in sa and "number" in sb):
                both.add("integer")
            if not both:
                raise self._error(path, f"allOf types {a!r} and {b!r} have nothing in common")
            return sorted(both)
        if key == "properties":
            out = dict(a)
            for name, sub in b.items():
                out[name] = {"allOf": [out[name], sub]} if name in out else sub
            return out
        if key == "required":
            return list(dict.fromkeys([*a, *b]))
        if key in ("minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"):
            return max(a, b)
        if key in ("maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"):
            return min(a, b)
        if key == "enum":
            keep = [v for v in a if any(_dumps(v) == _dumps(w) for w in b)]
            if not keep:
                raise self._error(path, "allOf enums have no value in common")
            return keep
        if key in ("items", "additionalProperties") and isinstance(a, (dict, bool)) and isinstance(b, (dict, bool)):
            if a is False or b is False:
                return False
            if a is True:
                return b
            if b is True:
                return a
            return {"allOf": [a, b]}
        raise self._error(path, f"allOf gives '{key}' two different values; merging them is not supported")

    def _enum(self, schema: dict[str, Any], types: set[str] | None, path: str) -> str:
        if "const" in schema:
            values = [schema["const"]]
            if "enum" in schema and not any(_dumps(v) == _dumps(schema["const"]) for v in schema["enum"]):
                raise self._error(path, "'const' is not one of 'enum'")
        else:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise self._error(path, "'enum' must be a non-empty list")
        kept = [v for v in values if _type_allows(types, v)]
        if not kept:
            raise self._error(path, "no enum/const value has the schema's type")
        for v in kept:
            self._check_enum_value(schema, v, path)
        return self.b.add(self._hint(path), alt([literal(_dumps(v)) for v in kept]))

    def _check_enum_value(self, schema: dict[str, Any], value: Any, path: str) -> None:
        """Enum values must also satisfy sibling keywords; we check the simple ones."""
        if isinstance(value, str):
            if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", math.inf):
                raise self._error(path, f"enum value {value!r} breaks minLength/maxLength")

    # strings
    def _length_bounds(self, schema: dict[str, Any], lo_key: str, hi_key: str, path: str) -> tuple[int, int | None]:
        lo = schema.get(lo_key, 0)
        hi = schema.get(hi_key)
        for name, v in ((lo_key, lo), (hi_key, hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise self._error(path, f"'{name}' must be a non-negative integer")
        if hi is not None and hi < lo:
            raise self._error(path, f"'{hi_key}' {hi} is below '{lo_key}' {lo}")
        if lo > gbnf.MAX_REPEAT:
            raise self._error(path, f"'{lo_key}' {lo} is larger than a grammar can count ({gbnf.MAX_REPEAT})")
        if hi is not None and hi > gbnf.MAX_REPEAT:
            hi = gbnf.MAX_REPEAT
        return lo, hi

    def _string(self, schema: dict[str, Any], path: str) -> str:
        lo, hi = self._length_bounds(schema, "minLength", "maxLength", path)
        fmt = schema.get("format")
        known_format = fmt in STRING_FORMATS
        if "pattern" in schema:
            if known_format or lo or hi is not None:
                raise self._error(path, "'pattern' together with 'format' or a length limit is not supported")
            try:
                body = pattern_to_gbnf(schema["pattern"], self.b)
            except GrammarError as exc:
                raise self._error(path, str(exc)) from None
            return self.b.add(self._hint(path) + "-pattern", seq(_Q, body, _Q))
        if known_format:
            if lo or hi is not None:
                raise self._error(path, f"format '{fmt}' together with a length limit is not supported")
            return self.b.add(f"{fmt}-string", seq(_Q, f"({STRING_FORMATS[str(fmt)]})", _Q))
        if lo == 0 and hi is None:
            return "string"
        return self.b.add(f"string-{lo}-{hi if hi is not None else 'n'}", seq(_Q, repeat("json-char", lo, hi), _Q))

    # numbers
    def _number(self, schema: dict[str, Any], path: str, *, integer: bool) -> str:
        multiple = schema.get("multipleOf")
        if multiple is not None and not (integer and multiple == 1):
            raise self._error(path, "'multipleOf' is not supported")
        lo, lo_ex = schema.get("minimum"), False
        hi, hi_ex = schema.get("maximum"), False
        ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_lo is True:  # draft-4 boolean form
            lo_ex = True
        elif ex_lo is not None and ex_lo is not False:
            if lo is None or ex_lo >= lo:
                lo, lo_ex = ex_lo, True
        if ex_hi is True:
            hi_ex = True
        elif ex_hi is not None and ex_hi is not False:
            if hi is None or ex_hi <= hi:
                hi, hi_ex = ex_hi, True
        for name, v in (("minimum", lo), ("maximum", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise self._error(path, f"'{name}' must be a finite number")
        if lo is None and hi is None:
            return "integer" if integer else "number"
        try:
            if integer:
                ilo = None if lo is None else (math.floor(lo) + 1 if lo_ex else math.ceil(lo))
                ihi = None if hi is None else (math.ceil(hi) - 1 if hi_ex else math.floor(hi))
                body = integer_range(ilo, ihi)
            else:
                body = number_range(lo, lo_ex, hi, hi_ex)
        except GrammarError as exc:
            raise self._error(path, str(exc)) from None
        kind = "int" if integer else "num"
        return self.b.add(f"{kind}-{lo}-{hi}".replace(".", "_"), body)

    # objects
    def _object(self, schema: dict[str, Any], path: str) -> str:
        props = schema.get("properties", {})
        if not isinstance(props, dict):
            raise self._error(path, "'properties' must be an object")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise self._error(path, "'required' must be a list of names")
        extra = schema.get("additionalProperties")
        if extra is not None and not isinstance(extra, (bool, dict)):
            raise self._error(path, "'additionalProperties' must be a boolean or a schema")
        extras_allowed = extra is True or isinstance(extra, dict)
        if schema.get("patternProperties") and extras_allowed:
            raise self._error(path, "'patternProperties' with extra properties allowed is not supported")
        props = dict(props)
        for name in required:
            if name not in props:
                if extra is False:
                    raise self._error(path, f"required property {name!r} is forbidden by additionalProperties")
                props[name] = extra if isinstance(extra, dict) else True
        req = set(required)
        min_p, max_p = schema.get("minProperties", 0), schema.get("maxProperties")
        if min_p > len(req):
            raise self._error(path, "'minProperties' above the number of required properties is not supported")
        if max_p is not None:
            if max_p < len(req):
                raise self._error(path, "'maxProperties' is below the number of required properties")
            if extras_allowed or max_p < len(props):
                raise self._error(path, "'maxProperties' below the number of possible properties is not supported")

        members: list[tuple[str, bool]] = []
        for name, sub in props.items():
            value = self._nested(sub, f"{path}/properties/{name}")
            key = literal(_dumps(name))
            members.append((seq(key, "ws", literal(":"), "ws", value, "ws"), name in req))
        extra_member = None
        if extras_allowed:
            value = "value" if extra is True else self._nested(extra, f"{path}/additionalProperties")
            key_rule = self._key_excluding(list(props), path)
            extra_member = seq(key_rule, "ws", literal(":"), "ws", value, "ws")
        body = self._members(members, extra_member, path)
        return self.b.add(self._hint(path) + "-obj", seq(literal("{"), "ws", body, literal("}")))

    def _members(self, members: list[tuple[str, bool]], extra: str | None, path: str) -> str:
        """Object members in declared order; optional ones may be skipped, commas stay right."""
        comma = seq(literal(","), "ws")
        rest_tail = repeat(seq(comma, extra), 0, None) if extra else ""
        rests: list[str] = [rest_tail]  # rests[j]: members j.. after something was written
        for member, required in reversed(members):
            part = seq(comma, member)
            rests.insert(0, seq(part if required else repeat(part, 0, 1), rests[0]))
        firsts: list[str] = []
        for i, (member, required) in enumerate(members):
            firsts.append(seq(member, rests[i + 1]))
            if required:
                break
        else:
            if extra:
                firsts.append(seq(extra, rest_tail))
            firsts.append('""')
        if len(firsts) == 1:
            return firsts[0]
        return self.b.add(self._hint(path) + "-members", alt(firsts))

    def _key_excluding(self, names: list[str], path: str) -> str:
        """A JSON string key that is none of `names` (so extras never shadow declared keys)."""
        if not names:
            return "string"
        trie: dict[str, Any] = {}
        for name in names:
            node = trie
            for ch in name:
                node = node.setdefault(ch, {})
            node[""] = {}
        hint = self._hint(path) + "-extra-key"

        def build(node: dict[str, Any]) -> str:
            options: list[str] = []
            if "" not in node:
                options.append(_Q)
            children = [c for c in node if c]
            excluded = [(ord(c), ord(c)) for c in children] + [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]
            options.append(seq(gbnf.char_class(complement(excluded)), "json-char*", _Q))
            for ch in sorted(children):
                if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
                    continue  # a key spelled with escapes is not worth excluding exactly
                options.append(seq(literal(ch), build(node[ch])))
            return self.b.add(hint, alt(options))

        return seq(_Q, build(trie))

    # arrays
    def _array(self, schema: dict[str, Any], path: str) -> str:
        prefix = schema.get("prefixItems", [])
        items = schema.get("items")
        if isinstance(items, list):  # draft-7 tuple form
            prefix, items = items, schema.get("additionalItems")
        if items is None and "unevaluatedItems" in schema:
            items = schema["unevaluatedItems"]
        if not isinstance(prefix, list):
            raise self._error(path, "'prefixItems' must be a list")
        lo, hi = self._length_bounds(schema, "minItems", "maxItems", path)
        k = len(prefix)
        if items is False:
            hi = k if hi is None else min(hi, k)
        elif items is None and k:
            hi = max(lo, k) if hi is None else min(hi, max(lo, k))
        if hi is not None and lo > hi:
            raise self._error(path, "minItems cannot be met with these items")
        if schema.get("uniqueItems") is True and (hi is None or hi > 1):
            raise self._error(path, "'uniqueItems' is not supported (unless maxItems <= 1)")
        elems = [self._nested(p, f"{path}/prefixItems/{i}") for i, p in enumerate(prefix)]
        if items is None or items is True or items is False:
            item = "value"  # with `items: false` hi == k, so it is never used
        else:
            item = self._nested(items, f"{path}/items")
        if hi == 0:
            return self.b.add("empty-array", seq(literal("["), "ws", literal("]")))
        comma = seq(literal(","), "ws")

        def tail(i: int) -> str:
            """Elements i.. (1-based) when i-1 were written already."""
            if hi is not None and i > hi:
                return ""
            if i <= k:
                part = seq(comma, elems[i - 1], "ws", tail(i + 1))
                return part if i <= lo else repeat(part, 0, 1)
            done = i - 1
            need = max(0, lo - done)
            more = None if hi is None else hi - done - need
            unit = seq(comma, item, "ws")
            return seq(repeat(unit, need, need) if need else "", repeat(unit, 0, more) if more != 0 else "")

        first = elems[0] if k else item
        body = seq(first, "ws", tail(2))
        if lo == 0:
            body = repeat(body, 0, 1)
        return self.b.add(self._hint(path) + "-arr", seq(literal("["), "ws", body, literal("]")))


def schema_to_gbnf(schema: Any, *, param: str | None = "response_format") -> str:
    """A complete grammar whose root is one JSON document valid against `schema`."""
    builder = GrammarBuilder()
    root = SchemaConverter(schema, builder, param=param).convert()
    return builder.render(root)


def json_object_gbnf() -> str:
    """JSON mode: any JSON object."""
    builder = GrammarBuilder()
    gbnf.json_primitives(builder)
    return builder.render("object")
