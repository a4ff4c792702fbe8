"""`pattern` → GBNF agrees with Python's `re.search` on the JSON-encoded string."""

from __future__ import annotations

import json
import re

import pytest

from kronk.chat.gbnf import GrammarBuilder, json_primitives
from kronk.chat.regex_gbnf import pattern_to_gbnf
from kronk.errors import GrammarError
from tests.chat.gbnf_match import accepts

CANDIDATES = [
    "", "a", "ab", "abc", "abcabc", "A1", "x-12", "AB-123", "a.b", "a\nb", "tab\there", 'q"uote', "back\\slash",
    "2024-01-31", "hello world", "ééé", "___", "-", "]", "a]b", "{", "{2}", "aaaa", "aaaaa", "1234567", "Zz9",
]

PATTERNS = [
    "^abc$", "abc", "^a", "c$", "^[a-c]+$", "^[^a-c]*$", "^\\d{3,5}$", "^\\w+$", "^\\s*$", "^(ab|abc)+$",
    "^a.b$", "^x-\\d+$", "^[A-Z]{2}-\\d{3}$", '"', "\\\\", "^.{2}$", "^\\d{4}-\\d{2}-\\d{2}$", "^[\\]a]+$",
    "^a{2,3}$", "^a{4,}$", "^(?:a|b)?c$", "^[\\w-]+$", "^\\D+$", "^[^\\d\\s]+$", "^\\{2\\}$", "^é+$",
    "^\\u00e9+$", "^[a-]+$", "\t", "^a*?b$", "^(?P<x>a)b$",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_matches_like_python(pattern: str) -> None:
    b = GrammarBuilder()
    json_primitives(b)
    grammar = b.render(f'"\\"" ({pattern_to_gbnf(pattern, b)}) "\\""')
    for text in CANDIDATES:
        expected = re.search(pattern, text) is not None
        got = accepts(grammar, json.dumps(text, ensure_ascii=False))
        if text.isascii():
            assert got == expected, (pattern, text)
        else:  # \w \d \s are ASCII here but Unicode in Python: the grammar may allow less, never more
            assert expected or not got, (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "what"),
    [
        ("a(?=b)", "lookaround"),
        ("(?i)abc", "lookaround or inline flags"),
        ("(a)\\1", "\\1"),
        ("\\bword", "\\b"),
        ("\\p{L}", "\\p"),
        ("a|^b", "anchors"),
        ("a^b", "inside the pattern"),
        ("[abc", "unterminated"),
        ("(ab", "unterminated"),
        ("ab)", "unbalanced"),
        ("a**", "repeated quantifier"),
        ("*a", "nothing to repeat"),
        ("[z-a]", "reversed"),
        ("^{2}", "quantified anchor"),
        ("(a{100}){100}", "too large"),
        ("a{5000}", "too large"),
    ],
)
def test_unsupported_patterns(pattern: str, what: str) -> None:
    with pytest.raises(GrammarError) as err:
        b = GrammarBuilder()
        pattern_to_gbnf(pattern, b)
    assert what in str(err.value)
