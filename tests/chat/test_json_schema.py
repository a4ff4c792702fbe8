"""JSON Schema → GBNF: accepted and refused documents, llama.cpp's parser, clear errors."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from kronk.chat.gbnf import GrammarBuilder, json_primitives
from kronk.chat.json_schema import integer_range, json_object_gbnf, number_range, schema_to_gbnf
from kronk.errors import GrammarError
from tests.chat.gbnf_match import accepts

# name -> (schema, documents the grammar must accept, documents it must refuse)
SCHEMAS: dict[str, tuple[Any, list[str], list[str]]] = {
    "person": (
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 12},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "email": {"type": "string", "format": "email"},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        ['{"name": "Ann", "age": 31}', '{\n  "name": "Bob",\n  "age": 0,\n  "email": "b@x.org"\n}'],
        ['{"name": "", "age": 3}', '{"name": "Ann", "age": 151}', '{"age": 3}', '{"name": "A", "age": 3, "x": 1}'],
    ),
    "nested-arrays": (
        {
            "type": "object",
            "properties": {
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string", "maxLength": 8}, "qty": {"type": "integer", "minimum": 1}},
                        "required": ["sku", "qty"],
                    },
                }
            },
            "required": ["items"],
        },
        ['{"items": [{"sku": "a1", "qty": 2}]}', '{"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 9999}]}'],
        ['{"items": []}', '{"items": [{"sku": "a", "qty": 0}]}'],
    ),
    "enum-mixed": (
        {"enum": ["red", "green", 3, None, True, {"k": [1, 2]}]},
        ['"red"', "3", "null", "true", '{"k":[1,2]}'],
        ['"blue"', "4", "false"],
    ),
    "const": ({"const": "v1"}, ['"v1"'], ['"v2"']),
    "anyof-date-or-null": (
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        ['"2024-02-28"', '"1999-12-31"', "null"],
        ['"2024-02-30"', '"2024-13-01"', '"24-01-01"'],
    ),
    "recursive-list": (
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                    "required": ["v", "next"],
                    "additionalProperties": False,
                }
            },
            "$ref": "#/$defs/node",
        },
        ['{"v": 1, "next": {"v": 2, "next": null}}'],
        ['{"v": 1}', '{"v": 1, "next": {"v": "x", "next": null}}'],
    ),
    "allof-merge": (
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "integer", "exclusiveMinimum": -5, "maximum": -1}}, "required": ["b"]},
            ]
        },
        ['{"a": "x", "b": -4}', '{"a": "", "b": -1}'],
        ['{"a": "x", "b": -5}', '{"a": "x", "b": 0}', '{"a": "x"}'],
    ),
    "pattern": (
        {"type": "string", "pattern": "^[A-Z]{2}-\\d{3,4}(x|y)?$"},
        ['"AB-123"', '"ZZ-9999y"'],
        ['"AB-12"', '"ab-123"', '"AB-123z"'],
    ),
    "pattern-unanchored-escapes": (
        {"type": "string", "pattern": 'a"b\\\\c'},
        ['"a\\"b\\\\c"', '"xx a\\"b\\\\c yy"'],
        ['"a\\"bc"'],
    ),
    "extras-typed": (
        {"type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}, "additionalProperties": {"type": "integer"}},
        ['{"id": "123e4567-e89b-12d3-a456-426614174000", "n": 1, "idx": 2}', '{"z": 5}', "{}"],
        ['{"id": 5}', '{"n": "x"}', '{"id": "123e4567-e89b-12d3-a456-426614174000", "id": 3}'],
    ),
    "free-object": ({"type": "object", "additionalProperties": True}, ['{"a": [1, {"b": null}], "c": "d"}', "{}"], ["[]"]),
    "number-range": (
        {"type": "number", "minimum": -10, "exclusiveMaximum": 100},
        ["-10", "-9.5", "0", "0.25", "99.999", "42"],
        ["-10.5", "100", "100.0", "1e3", "-11"],
    ),
    "formats": (
        {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date-time"},
                "at": {"type": "string", "format": "time"},
                "ip": {"type": "string", "format": "ipv4"},
            },
            "required": ["when", "at", "ip"],
        },
        ['{"when": "2024-07-26T12:30:00Z", "at": "23:59:59.5+02:00", "ip": "192.168.0.255"}'],
        ['{"when": "2024-07-26 12:30:00", "at": "24:00:00Z", "ip": "1.2.3.4"}', '{"when": "2024-07-26T12:30:00Z", "at": "12:00:00Z", "ip": "256.1.1.1"}'],
    ),
    "type-list": ({"type": ["string", "integer", "null"], "maxLength": 3}, ['"abc"', "-7", "null"], ['"abcd"', "1.5", "true"]),
    "all-optional": (
        {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}, "c": {"type": "null"}}},
        ["{}", '{"b": true}', '{"a": 1, "c": null}', '{"a": 1, "b": false, "c": null}'],
        ['{"b": true, "a": 1}', '{,"a": 1}', '{"a": 1,}'],
    ),
    "tuple": (
        {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": False, "minItems": 1},
        ['["x"]', '["x", true]'],
        ["[]", '["x", true, 1]', "[true]"],
    ),
    "draft7-definitions-with-sibling": (
        {
            "definitions": {"pos": {"type": "integer", "minimum": 0}},
            "type": "object",
            "properties": {"n": {"$ref": "#/definitions/pos", "maximum": 9}},
            "required": ["n"],
        },
        ['{"n": 0}', '{"n": 9}'],
        ['{"n": 10}', '{"n": -1}'],
    ),
    "oneof-discriminated": (
        {
            "oneOf": [
                {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}}, "required": ["kind", "lives"]},
                {"type": "object", "properties": {"kind": {"const": "dog"}, "good": {"type": "boolean"}}, "required": ["kind", "good"]},
            ]
        },
        ['{"kind": "cat", "lives": 9}', '{"kind": "dog", "good": true}'],
        ['{"kind": "cat", "good": true}'],
    ),
    "any-value": ({}, ['{"a": 1}', "[1, 2]", '"s"', "1.5e10", "null"], ["{a}", "01"]),
    "nullable-is-not-json-schema": ({"type": "string", "maxLength": 2, "nullable": True}, ['"ab"'], ['"abc"', "null"]),
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_grammar_accepts_valid_and_refuses_invalid(name: str) -> None:
    schema, good, bad = SCHEMAS[name]
    grammar = schema_to_gbnf(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for doc in good:
        validator.validate(json.loads(doc))  # the test data itself is right
        assert accepts(grammar, doc), f"{name}: grammar refused valid {doc}"
    for doc in bad:
        assert not accepts(grammar, doc), f"{name}: grammar accepted invalid {doc}"


@pytest.mark.requires_libs
def test_every_grammar_compiles_in_llama_cpp(tiny_chat_model: Any) -> None:
    from kronk.llama import validate_grammar

    for schema, _, _ in SCHEMAS.values():
        validate_grammar(tiny_chat_model, schema_to_gbnf(schema))
    validate_grammar(tiny_chat_model, json_object_gbnf())


@pytest.mark.parametrize(
    ("lo", "hi"), [(0, 0), (0, 9), (3, 17), (17, 12345), (99, 100), (-20, 7), (-1005, -3), (None, 5), (-5, None), (120, None)]
)
def test_integer_ranges_are_exact(lo: int | None, hi: int | None) -> None:
    b = GrammarBuilder()
    json_primitives(b)
    grammar = b.render(integer_range(lo, hi))
    edges = [b for b in (lo, hi, 0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 12345) if b is not None]
    window = sorted({n + d for e in edges for n in (e, -e) for d in range(-12, 13)})
    for n in window:
        inside = (lo is None or n >= lo) and (hi is None or n <= hi)
        assert accepts(grammar, str(n)) == inside, n
    assert not accepts(grammar, "007")
    assert not accepts(grammar, "-0")


@pytest.mark.parametrize(("lo", "lo_ex", "hi", "hi_ex"), [(0, True, 1, False), (-2, False, 2, True), (5, True, None, False), (None, False, -3, True)])
def test_number_ranges(lo: float | None, lo_ex: bool, hi: float | None, hi_ex: bool) -> None:
    b = GrammarBuilder()
    json_primitives(b)
    grammar = b.render(number_range(lo, lo_ex, hi, hi_ex))
    samples = ["-4", "-3.5", "-3", "-2.75", "-2", "-0.5", "0", "0.0", "0.000001", "0.5", "1", "1.0", "1.01", "2", "1.999", "5", "5.0", "5.001", "70"]
    for text in samples:
        x = float(text)
        inside = (lo is None or (x > lo if lo_ex else x >= lo)) and (hi is None or (x < hi if hi_ex else x <= hi))
        assert accepts(grammar, text) == inside, text


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"not": {"type": "string"}}, "not"),
        ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "integer", "multipleOf": 3}, "multipleOf"),
        ({"$ref": "https://example.com/s.json"}, "local references"),
        ({"type": "string", "pattern": "(?=a)b"}, "lookaround"),
        ({"type": "string", "pattern": "(a)\\1"}, "escape \\1"),
        ({"type": "object", "minProperties": 2}, "minProperties"),
        (False, "matches nothing"),
        ({"type": "number", "minimum": 0.5}, "whole-number"),
        ({"type": "string", "minLength": 5000}, "minLength"),
        ({"type": "strng"}, "unknown type"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "refers to itself"),
        ({"type": "object", "properties": {"x": {"contains": {}}}}, "contains"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "nothing in common"),
    ],
)
def test_unsupported_schemas_raise_grammar_error(schema: Any, keyword: str) -> None:
    with pytest.raises(GrammarError) as err:
        schema_to_gbnf(schema)
    assert keyword in str(err.value)
    assert err.value.param == "response_format"


def test_large_bounds_are_clamped_not_exceeded() -> None:
    grammar = schema_to_gbnf({"type": "string", "maxLength": 100000})
    assert "{0,1000}" in grammar
    assert re.search(r"\{\d{5,}", grammar) is None
