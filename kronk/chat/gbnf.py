"""Building blocks for GBNF text, the grammar language of llama.cpp.

Grammars are assembled from named rules in a `GrammarBuilder`, which deduplicates
identical rule bodies so that, say, ten string properties share one `string` rule.
Literal and character-class escaping lives here so no other module hand-escapes.

Limits of llama.cpp's parser that shape what we emit:
- a repetition `x{m,n}` expands into n rules; n above 2000 is silently unbounded and
  nested repetitions multiply, so callers clamp bounds with `MAX_REPEAT`;
- left recursion is rejected; every rule here is right-recursive or uses `*`;
- an unbounded rule lets a weak model loop until max_tokens, so whitespace and number
  digits are bounded.
"""

from __future__ import annotations

import re

MAX_REPEAT = 1000
"""Largest bound we write into `{m,n}`; above it a bound is clamped (never exceeded)."""

_NAME_CLEAN = re.compile(r"[^A-Za-z0-9-]+")


def literal(text: str) -> str:
    """`text` as a GBNF string literal (`""` for the empty string)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _class_char(code: int) -> str:
    ch = chr(code)
    if ch.isalnum() and code < 0x80:
        return ch
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def char_class(ranges: list[tuple[int, int]], *, negate: bool = False) -> str:
    """A `[...]` class over inclusive code-point ranges; every symbol is escaped."""
    if not ranges:
        raise ValueError("empty character class")
    parts = []
    for lo, hi in ranges:
        parts.append(_class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}")
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def chars(text: str, *, negate: bool = False) -> str:
    """A class of the given characters, e.g. `chars('+-')`."""
    return char_class([(ord(c), ord(c)) for c in sorted(set(text))], negate=negate)


def repeat(expr: str, lo: int, hi: int | None) -> str:
    """`expr` repeated lo..hi times (hi None: unbounded), as compact GBNF."""
    if hi is not None and hi < lo:
        raise ValueError("repeat bounds reversed")
    atom = expr if _is_atom(expr) else f"({expr})"
    if hi is None:
        return {0: f"{atom}*", 1: f"{atom}+"}.get(lo, f"{atom}{{{lo},}}")
    if hi == 0:
        return '""'
    if lo == hi == 1:
        return expr
    if (lo, hi) == (0, 1):
        return f"{atom}?"
    if lo == hi:
        return f"{atom}{{{lo}}}"
    return f"{atom}{{{lo},{hi}}}"


def _is_atom(expr: str) -> bool:
    """True when `expr` is one symbol, so a quantifier may follow it directly."""
    if re.fullmatch(r"[A-Za-z0-9-]+", expr):
        return True
    if expr.startswith('"') and expr.endswith('"') and _single_token(expr, '"', '"'):
        return True
    if expr.startswith("[") and expr.endswith("]") and _single_token(expr, "[", "]"):
        return True
    if expr.startswith("(") and expr.endswith(")"):
        depth = 0
        in_lit = in_cls = False
        i = 0
        while i < len(expr):
            c = expr[i]
            if c == "\\":
                i += 2
                continue
            if in_lit:
                in_lit = c != '"'
            elif in_cls:
                in_cls = c != "]"
            elif c == '"':
                in_lit = True
            elif c == "[":
                in_cls = True
            elif c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0 and i != len(expr) - 1:
                    return False
            i += 1
        return True
    return False


def _single_token(expr: str, open_: str, close: str) -> bool:
    i = 1
    while i < len(expr) - 1:
        if expr[i] == "\\":
            i += 2
            continue
        if expr[i] == close:
            return False
        i += 1
    return i == len(expr) - 1


def alt(options: list[str]) -> str:
    """Alternatives, deduplicated, in order; one option stays bare."""
    seen: list[str] = []
    for option in options:
        if option not in seen:
            seen.append(option)
    if not seen:
        raise ValueError("no alternatives")
    return seen[0] if len(seen) == 1 else " | ".join(seen)


def group(expr: str) -> str:
    """`expr` wrapped so it can be sequenced with others."""
    return expr if _is_atom(expr) or " | " not in expr else f"({expr})"


def seq(*parts: str) -> str:
    """Parts in sequence; alternations get parentheses."""
    kept = [group(p) for p in parts if p and p != '""']
    return " ".join(kept) if kept else '""'


class GrammarBuilder:
    """Named GBNF rules; identical bodies share one name."""

    def __init__(self) -> None:
        self._rules: dict[str, str] = {}
        self._by_body: dict[str, str] = {}

    def _fresh(self, hint: str) -> str:
        base = _NAME_CLEAN.sub("-", hint).strip("-").lower() or "r"
        name, n = base, 1
        while name in self._rules:
            n += 1
            name = f"{base}-{n}"
        return name

    def add(self, hint: str, body: str) -> str:
        """Define a rule (or reuse one with the same body); returns its name."""
        if body in self._by_body:
            return self._by_body[body]
        name = self._fresh(hint)
        self._rules[name] = body
        self._by_body[body] = name
        return name

    def reserve(self, hint: str) -> str:
        """A name to reference before its body is known (recursive rules)."""
        name = self._fresh(hint)
        self._rules[name] = ""
        return name

    def define(self, name: str, body: str) -> None:
        """Give a reserved name its body."""
        self._rules[name] = body

    def add_fixed(self, name: str, body: str) -> None:
        """Define a rule under an exact name that other rules reference literally."""
        if name in self._rules:
            raise ValueError(f"rule {name!r} already defined")
        self._rules[name] = body
        self._by_body.setdefault(body, name)

    def has(self, name: str) -> bool:
        return name in self._rules

    def render(self, root_body: str) -> str:
        """The whole grammar with `root ::= root_body` first."""
        lines = [f"root ::= {root_body}"]
        for name, body in self._rules.items():
            if not body:
                raise ValueError(f"rule {name!r} reserved but never defined")
            lines.append(f"{name} ::= {body}")
        return "\n".join(lines) + "\n"


# --- shared JSON primitives ----------------------------------------------------

WS = "ws"
"""Whitespace between JSON tokens: nothing, one space, or a newline plus indentation."""

GAP = "[ \\t\\r\\n]{0,4}"
"""Whitespace after a tool-call marker. A lazy grammar is switched on mid-token, and
the rest of that token is fed to it unchecked: it must be tolerated, or llama.cpp aborts."""


def json_primitives(b: GrammarBuilder) -> None:
    """Add the JSON building blocks every grammar here relies on (idempotent)."""
    if b.has(WS):
        return
    for name, body in _PRIMITIVES:
        b.add_fixed(name, body)


_PRIMITIVES: list[tuple[str, str]] = [
    ("ws", '| " " | "\\n" [ \\t]{0,20}'),
    # Positive ranges: no quote, backslash, control or DEL, and no surrogates or values past
    # U+10FFFF, which a model emitting raw UTF-8 bytes could otherwise spell.
    ("json-char", '[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E\\x80-\\uD7FF\\uE000-\\U0010FFFF] | "\\\\" (["\\\\/bfnrt] | "u" json-bmp-hex)'),
    # \u escapes of UTF-16 surrogates are left out: alone they are not text, and a
    # pair would count as two characters against maxLength while being one.
    ("json-bmp-hex", "[0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}"),
    ("string", '"\\"" json-char* "\\""'),
    ("json-int-part", '"0" | [1-9] [0-9]{0,15}'),
    ("json-frac", '"." [0-9]{1,16}'),
    ("json-exp", '[eE] [-+]? [0-9]{1,3}'),
    ("number", '"-"? json-int-part json-frac? json-exp?'),
    ("integer", '"-"? json-int-part'),
    ("boolean", '"true" | "false"'),
    ("null", '"null"'),
    ("value", "object | array | string | number | boolean | null"),
    ("object", '"{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"'),
    ("array", '"[" ws ( value ws ( "," ws value ws )* )? "]"'),
]


def until_literal(b: GrammarBuilder, stop: str, hint: str) -> str:
    """A rule for any text that ends with its first occurrence of `stop` (stop included).

    Built from the KMP automaton of `stop`: state k means "the last k characters are
    the start of `stop`". Every alternative begins with a different character class,
    so llama.cpp never keeps more than one stack alive for it.
    """
    if not stop:
        raise ValueError("empty stop text")
    n = len(stop)
    fail = [0] * n
    k = 0
    for i in range(1, n):
        while k and stop[i] != stop[k]:
            k = fail[k - 1]
        if stop[i] == stop[k]:
            k += 1
        fail[i] = k

    def step(state: int, ch: str) -> int:
        while state and stop[state] != ch:
            state = fail[state - 1]
        return state + 1 if stop[state] == ch else 0

    names = [b.reserve(f"{hint}-{i}") for i in range(n)]
    alphabet = sorted(set(stop))
    for state in range(n):
        targets: dict[int, list[str]] = {}
        for ch in alphabet:
            target = step(state, ch)
            if target:
                targets.setdefault(target, []).append(ch)
        options = []
        for target, chs in sorted(targets.items()):
            cls = chars("".join(chs))
            options.append(cls if target == n else f"{cls} {names[target]}")
        leading = "".join(ch for chs in targets.values() for ch in chs)
        options.append(f"{chars(leading, negate=True)} {names[0]}")
        b.define(names[state], " | ".join(options))
    return names[0]
