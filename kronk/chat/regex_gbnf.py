"""JSON Schema `pattern` → GBNF for the inside of a JSON string.

A pattern constrains the *decoded* string, but the model writes the *encoded* JSON
text, so every character of the regex is mapped to its JSON spelling (`"` → `\\"`,
a newline → `\\n`, ...). Only a safe subset of regular expressions is supported:
literals, `.`, classes with ranges and `\\d \\w \\s`, groups, alternation, the
quantifiers `? * + {n} {n,} {n,m}`, and `^`/`$` at the ends. Anything else
(backreferences, lookaround, word boundaries, flags, Unicode properties) raises
`GrammarError` instead of producing a grammar that could let invalid text through.
Like JSON Schema, an unanchored pattern matches anywhere in the string.
"""

from __future__ import annotations

from dataclasses import dataclass

from kronk.chat import gbnf
from kronk.errors import GrammarError

MAX_CODE = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
Ranges = list[tuple[int, int]]

_DIGIT: Ranges = [(0x30, 0x39)]
_WORD: Ranges = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE: Ranges = [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0xFEFF, 0xFEFF)]
_ASCII: Ranges = [(0x00, 0x7F)]
_DOT: Ranges = [(0x00, 0x09), (0x0B, 0x0C), (0x0E, 0x2027), (0x202A, MAX_CODE)]
_MAX_EXPANSION = 1500
"""llama.cpp refuses nested repetitions whose expansion passes 2000 rules."""


def normalize(ranges: Ranges) -> Ranges:
    """Sorted, merged ranges without UTF-16 surrogates."""
    out: Ranges = []
    for lo, hi in sorted(ranges):
        for a, b in _cut_surrogates(lo, hi):
            if out and a <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
    return out


def _cut_surrogates(lo: int, hi: int) -> Ranges:
    s_lo, s_hi = _SURROGATES
    if hi < s_lo or lo > s_hi:
        return [(lo, hi)]
    parts: Ranges = []
    if lo < s_lo:
        parts.append((lo, s_lo - 1))
    if hi > s_hi:
        parts.append((s_hi + 1, hi))
    return parts


def complement(ranges: Ranges, universe: Ranges | None = None) -> Ranges:
    """Everything in `universe` (default: all characters) that is not in `ranges`."""
    return subtract(universe or [(0, MAX_CODE)], ranges)


def subtract(ranges: Ranges, remove: Ranges) -> Ranges:
    out: Ranges = []
    remove = normalize(remove)
    for lo, hi in normalize(ranges):
        cur = lo
        for r_lo, r_hi in remove:
            if r_hi < cur or r_lo > hi:
                continue
            if r_lo > cur:
                out.append((cur, r_lo - 1))
            cur = max(cur, r_hi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return normalize(out)


def intersect(a: Ranges, b: Ranges) -> Ranges:
    return subtract(a, complement(b))


# --- AST -----------------------------------------------------------------------


@dataclass(slots=True)
class _Chars:
    ranges: Ranges


@dataclass(slots=True)
class _Seq:
    items: list[_Node]


@dataclass(slots=True)
class _Alt:
    options: list[_Node]


@dataclass(slots=True)
class _Repeat:
    node: _Node
    lo: int
    hi: int | None


@dataclass(slots=True)
class _Anchor:
    kind: str  # "^" or "$"


_Node = _Chars | _Seq | _Alt | _Repeat | _Anchor


class _Parser:
    """Recursive-descent parser for the supported regex subset."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0

    def fail(self, what: str) -> GrammarError:
        return GrammarError(f"pattern {self.src!r}: {what} (at offset {self.pos}) is not supported")

    def parse(self) -> _Node:
        node = self._alternation()
        if self.pos < len(self.src):
            raise self.fail("unbalanced ')'")
        return node

    def _peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def _alternation(self) -> _Node:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return options[0] if len(options) == 1 else _Alt(options)

    def _sequence(self) -> _Node:
        items: list[_Node] = []
        while self.pos < len(self.src) and self._peek() not in "|)":
            atom = self._atom()
            items.append(self._quantified(atom))
        return items[0] if len(items) == 1 else _Seq(items)

    def _quantified(self, atom: _Node) -> _Node:
        c = self._peek()
        bounds: tuple[int, int | None] | None = None
        if c and c in "*+?":
            self.pos += 1
            bounds = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        elif c == "{":
            bounds = self._braces()
        if bounds is None:
            return atom
        if isinstance(atom, _Anchor):
            raise self.fail("a quantified anchor")
        if self._peek() == "?":  # lazy quantifier: same language
            self.pos += 1
        nxt = self._peek()
        if nxt in ("*", "+", "?") or (nxt == "{" and self._braces(probe=True) is not None):
            raise self.fail("a repeated quantifier")
        return _Repeat(atom, bounds[0], bounds[1])

    def _braces(self, probe: bool = False) -> tuple[int, int | None] | None:
        """`{n}`, `{n,}` or `{n,m}`; anything else is a literal `{` (as in Python)."""
        end = self.src.find("}", self.pos)
        if end < 0:
            return None
        body = self.src[self.pos + 1 : end]
        lo_s, comma, hi_s = body.partition(",")
        if not lo_s.isdigit() or (hi_s and not hi_s.isdigit()):
            return None
        lo = int(lo_s)
        hi = lo if not comma else (int(hi_s) if hi_s else None)
        if hi is not None and hi < lo:
            raise self.fail("a quantifier {n,m} with m < n")
        if not probe:
            self.pos = end + 1
        return lo, hi

    def _atom(self) -> _Node:
        c = self._peek()
        if c == "(":
            return self._group()
        if c == "[":
            return self._class()
        if c == ".":
            self.pos += 1
            return _Chars(list(_DOT))
        if c in "^$":
            self.pos += 1
            return _Anchor(c)
        if c == "\\":
            return self._escape(in_class=False)
        if c and c in "*+?":
            raise self.fail("a quantifier with nothing to repeat")
        self.pos += 1
        return _Chars([(ord(c), ord(c))])

    def _group(self) -> _Node:
        self.pos += 1
        if self.src.startswith("?:", self.pos):
            self.pos += 2
        elif self.src.startswith("?P<", self.pos) or (
            self.src.startswith("?<", self.pos) and self.src[self.pos + 2 : self.pos + 3] not in ("=", "!")
        ):
            end = self.src.find(">", self.pos)
            if end < 0:
                raise self.fail("an unterminated group name")
            self.pos = end + 1
        elif self._peek() == "?":
            raise self.fail("lookaround or inline flags")
        node = self._alternation()
        if self._peek() != ")":
            raise self.fail("an unterminated group")
        self.pos += 1
        return node

    def _class(self) -> _Node:
        self.pos += 1
        negate = self._peek() == "^"
        if negate:
            self.pos += 1
        ranges: Ranges = []
        used_shorthand = False
        first = True
        while True:
            c = self._peek()
            if c == "":
                raise self.fail("an unterminated character class")
            if c == "]" and not first:
                self.pos += 1
                break
            first = False
            lo_ranges, shorthand = self._class_atom()
            used_shorthand |= shorthand
            if (
                not shorthand
                and self._peek() == "-"
                and self.pos + 1 < len(self.src)
                and self.src[self.pos + 1] != "]"
            ):
                self.pos += 1
                hi_ranges, hi_short = self._class_atom()
                if hi_short:
                    raise self.fail("a range ending in a class shorthand")
                lo, hi = lo_ranges[0][0], hi_ranges[0][0]
                if hi < lo:
                    raise self.fail("a reversed character range")
                ranges.append((lo, hi))
            else:
                ranges.extend(lo_ranges)
        if negate:
            # Python's \d \w \s also match non-ASCII digits, letters and spaces; when a
            # negated class names them we stay inside ASCII so we never emit a
            # character the validator's regex would refuse.
            universe = list(_ASCII) if used_shorthand else None
            ranges = complement(ranges, universe)
        ranges = normalize(ranges)
        if not ranges:
            raise self.fail("a character class that matches nothing")
        return _Chars(ranges)

    def _class_atom(self) -> tuple[Ranges, bool]:
        c = self._peek()
        if c == "\\":
            node = self._escape(in_class=True)
            assert isinstance(node, _Chars)
            shorthand = self.src[self.pos - 1] in "dDwWsS"
            return node.ranges, shorthand
        self.pos += 1
        return [(ord(c), ord(c))], False

    def _escape(self, *, in_class: bool) -> _Node:
        self.pos += 1
        c = self._peek()
        if c == "":
            raise self.fail("a trailing backslash")
        self.pos += 1
        simple = {"t": 9, "n": 10, "v": 11, "f": 12, "r": 13, "0": 0}
        classes = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
        if c in simple:
            return _Chars([(simple[c], simple[c])])
        if c in classes:
            return _Chars(list(classes[c]))
        if c in ("D", "W", "S"):
            return _Chars(complement(classes[c.lower()], list(_ASCII)))
        if c == "b" and in_class:
            return _Chars([(8, 8)])
        if c in ("x", "u"):
            width = 2 if c == "x" else 4
            digits = self.src[self.pos : self.pos + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.fail(f"a malformed \\{c} escape")
            self.pos += width
            code = int(digits, 16)
            return _Chars([(code, code)])
        if c.isalnum():
            raise self.fail(f"the escape \\{c}")
        return _Chars([(ord(c), ord(c))])


# --- anchors -------------------------------------------------------------------


def _strip_anchors(node: _Node) -> tuple[_Node, bool, bool]:
    """Remove `^`/`$` at the ends; any other anchor is unsupported."""
    options = node.options if isinstance(node, _Alt) else [node]
    starts, ends, stripped = [], [], []
    for option in options:
        items: list[_Node] = list(option.items) if isinstance(option, _Seq) else [option]
        start = bool(items) and isinstance(items[0], _Anchor) and items[0].kind == "^"
        if start:
            items = items[1:]
        end = bool(items) and isinstance(items[-1], _Anchor) and items[-1].kind == "$"
        if end:
            items = items[:-1]
        starts.append(start)
        ends.append(end)
        stripped.append(items[0] if len(items) == 1 else _Seq(items))
    if len(set(starts)) > 1 or len(set(ends)) > 1:
        raise GrammarError("pattern: anchors on only some alternatives are not supported")
    result: _Node = stripped[0] if len(stripped) == 1 else _Alt(stripped)
    if _has_anchor(result):
        raise GrammarError("pattern: '^' or '$' inside the pattern is not supported")
    return result, starts[0], ends[0]


def _has_anchor(node: _Node) -> bool:
    if isinstance(node, _Anchor):
        return True
    if isinstance(node, _Seq):
        return any(_has_anchor(i) for i in node.items)
    if isinstance(node, _Alt):
        return any(_has_anchor(i) for i in node.options)
    if isinstance(node, _Repeat):
        return _has_anchor(node.node)
    return False


def _expansion(node: _Node) -> int:
    if isinstance(node, _Repeat):
        bound = node.hi if node.hi is not None else max(node.lo, 1)
        return max(bound, 1) * _expansion(node.node)
    if isinstance(node, _Seq):
        return max((_expansion(i) for i in node.items), default=1)
    if isinstance(node, _Alt):
        return max((_expansion(i) for i in node.options), default=1)
    return 1


# --- to GBNF -------------------------------------------------------------------

_SHORT_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r", 0x08: "\\b", 0x0C: "\\f"}
_SPECIAL: Ranges = [(0x00, 0x1F), (0x22, 0x22), (0x5C, 0x5C), (0x7F, 0x7F)]


def json_char_set(ranges: Ranges) -> str:
    """GBNF for one character from `ranges`, written the way JSON strings spell it."""
    ranges = normalize(ranges)
    options: list[str] = []
    plain = subtract(ranges, _SPECIAL)
    if plain:
        if len(plain) == 1 and plain[0][0] == plain[0][1]:
            options.append(gbnf.literal(chr(plain[0][0])))
        else:
            options.append(gbnf.char_class(plain))
    specials = intersect(ranges, _SPECIAL)
    for lo, hi in specials:
        for code in range(lo, hi + 1):
            if code in _SHORT_ESCAPES:
                options.append(gbnf.literal(_SHORT_ESCAPES[code]))
            if code not in (0x22, 0x5C):
                options.append(gbnf.literal(f"\\u{code:04x}"))
    return gbnf.alt(options)


class _Emitter:
    def __init__(self, builder: gbnf.GrammarBuilder) -> None:
        self.b = builder

    def expr(self, node: _Node) -> str:
        if isinstance(node, _Chars):
            return json_char_set(node.ranges)
        if isinstance(node, _Seq):
            return self._seq(node.items)
        if isinstance(node, _Alt):
            return gbnf.alt([self.expr(o) for o in node.options])
        if isinstance(node, _Repeat):
            hi = node.hi
            if node.lo > gbnf.MAX_REPEAT:
                raise GrammarError(f"pattern: a repetition of at least {node.lo} is too large")
            if hi is not None and hi > gbnf.MAX_REPEAT:
                hi = gbnf.MAX_REPEAT
            inner = self.expr(node.node)
            if inner == '""':  # repeating nothing would make llama.cpp recurse forever
                return inner
            return gbnf.repeat(gbnf.group(inner), node.lo, hi)
        raise GrammarError("pattern: unexpected anchor")

    def _seq(self, items: list[_Node]) -> str:
        parts: list[str] = []
        run = ""
        for item in items:
            single = _single_plain(item)
            if single is not None:
                run += single
                continue
            if run:
                parts.append(gbnf.literal(run))
                run = ""
            parts.append(self.expr(item))
        if run:
            parts.append(gbnf.literal(run))
        return gbnf.seq(*parts)


def _single_plain(node: _Node) -> str | None:
    if isinstance(node, _Chars) and len(node.ranges) == 1 and node.ranges[0][0] == node.ranges[0][1]:
        code = node.ranges[0][0]
        if not intersect([(code, code)], _SPECIAL):
            return chr(code)
    return None


def pattern_to_gbnf(pattern: str, builder: gbnf.GrammarBuilder) -> str:
    """GBNF for the encoded inside of a JSON string whose text `re.search`es `pattern`."""
    if not isinstance(pattern, str):
        raise GrammarError("pattern must be a string")
    node, anchored_start, anchored_end = _strip_anchors(_Parser(pattern).parse())
    if _expansion(node) > _MAX_EXPANSION:
        raise GrammarError(f"pattern {pattern!r}: nested repetitions are too large for a grammar")
    gbnf.json_primitives(builder)
    body = _Emitter(builder).expr(node)
    free = "json-char*"
    return gbnf.seq("" if anchored_start else free, body, "" if anchored_end else free)
