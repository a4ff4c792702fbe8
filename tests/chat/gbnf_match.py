"""A small GBNF recognizer for tests: does a grammar accept a string?

Independent of our grammar builder (it reads the GBNF text), so tests can check
that generated grammars accept valid documents and refuse invalid ones without a
model. Handles the GBNF we emit: literals, classes, rule references, groups,
alternation and the repetition operators. Left recursion is not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Cls:
    ranges: tuple[tuple[int, int], ...]
    negate: bool


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    options: tuple


@dataclass(frozen=True)
class Rep:
    node: object
    lo: int
    hi: int | None


class _P:
    def __init__(self, src: str) -> None:
        self.s, self.i = src, 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def char(self) -> int:
        c = self.s[self.i]
        if c != "\\":
            self.i += 1
            return ord(c)
        e = self.s[self.i + 1]
        if e in "xuU":
            n = {"x": 2, "u": 4, "U": 8}[e]
            v = int(self.s[self.i + 2 : self.i + 2 + n], 16)
            self.i += 2 + n
            return v
        self.i += 2
        return ord({"t": "\t", "r": "\r", "n": "\n"}.get(e, e))

    def alternatives(self):
        opts = [self.sequence()]
        while self.i < len(self.s) and self.s[self.i] == "|":
            self.i += 1
            opts.append(self.sequence())
        return opts[0] if len(opts) == 1 else Alt(tuple(opts))

    def sequence(self):
        items = []
        while True:
            self.ws()
            if self.i >= len(self.s) or self.s[self.i] in "|)":
                break
            atom = self.atom()
            self.ws()
            while self.i < len(self.s) and self.s[self.i] in "*+?{":
                c = self.s[self.i]
                if c == "{":
                    end = self.s.index("}", self.i)
                    body = self.s[self.i + 1 : end]
                    lo, comma, hi = body.partition(",")
                    atom = Rep(atom, int(lo), int(lo) if not comma else (int(hi) if hi.strip() else None))
                    self.i = end + 1
                else:
                    atom = Rep(atom, *{"*": (0, None), "+": (1, None), "?": (0, 1)}[c])
                    self.i += 1
                self.ws()
            items.append(atom)
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def atom(self):
        c = self.s[self.i]
        if c == '"':
            self.i += 1
            out = []
            while self.s[self.i] != '"':
                out.append(chr(self.char()))
            self.i += 1
            return Lit("".join(out))
        if c == "[":
            self.i += 1
            neg = self.s[self.i] == "^"
            if neg:
                self.i += 1
            ranges = []
            while self.s[self.i] != "]":
                lo = self.char()
                hi = lo
                if self.s[self.i] == "-" and self.s[self.i + 1] != "]":
                    self.i += 1
                    hi = self.char()
                ranges.append((lo, hi))
            self.i += 1
            return Cls(tuple(ranges), neg)
        if c == "(":
            self.i += 1
            node = self.alternatives()
            assert self.s[self.i] == ")", self.s[self.i :]
            self.i += 1
            return node
        if c == ".":
            self.i += 1
            return Cls(((0, 0x10FFFF),), False)
        m = re.compile(r"[A-Za-z0-9-]+").match(self.s, self.i)
        assert m, f"bad grammar at {self.s[self.i:self.i + 20]!r}"
        self.i = m.end()
        return Ref(m.group())


def parse_gbnf(text: str) -> dict[str, object]:
    rules: dict[str, object] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, body = line.partition("::=")
        p = _P(body)
        rules[name.strip()] = p.alternatives()
        p.ws()
        assert p.i == len(body), f"trailing text in rule {name}: {body[p.i:]!r}"
    for node in rules.values():
        _check_refs(node, rules)
    return rules


def _check_refs(node, rules) -> None:
    if isinstance(node, Ref):
        assert node.name in rules, f"undefined rule {node.name}"
    elif isinstance(node, (Seq, Alt)):
        for child in node.items if isinstance(node, Seq) else node.options:
            _check_refs(child, rules)
    elif isinstance(node, Rep):
        _check_refs(node.node, rules)


@lru_cache(maxsize=64)
def _parsed(grammar: str) -> dict[str, object]:
    return parse_gbnf(grammar)


def accepts(grammar: str, text: str, root: str = "root") -> bool:
    rules = _parsed(grammar)

    @cache
    def ends(node, pos: int) -> frozenset[int]:
        if isinstance(node, Lit):
            return frozenset([pos + len(node.text)]) if text.startswith(node.text, pos) else frozenset()
        if isinstance(node, Cls):
            if pos >= len(text):
                return frozenset()
            code = ord(text[pos])
            inside = any(lo <= code <= hi for lo, hi in node.ranges)
            return frozenset([pos + 1]) if inside != node.negate else frozenset()
        if isinstance(node, Ref):
            return ends(rules[node.name], pos)
        if isinstance(node, Alt):
            out: set[int] = set()
            for option in node.options:
                out |= ends(option, pos)
            return frozenset(out)
        if isinstance(node, Seq):
            current = {pos}
            for item in node.items:
                nxt: set[int] = set()
                for p in current:
                    nxt |= ends(item, p)
                current = nxt
                if not current:
                    break
            return frozenset(current)
        if isinstance(node, Rep):
            result: set[int] = {pos} if node.lo == 0 else set()
            current = {pos}
            count = 0
            seen: set[int] = set()
            while current and (node.hi is None or count < node.hi):
                nxt = set()
                for p in current:
                    nxt |= ends(node.node, p)
                count += 1
                if node.hi is None:
                    nxt -= seen
                    seen |= nxt
                if count >= node.lo:
                    result |= nxt
                current = nxt
            return frozenset(result)
        raise TypeError(node)

    import sys

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        return len(text) in ends(rules[root], 0)
    finally:
        sys.setrecursionlimit(old)
