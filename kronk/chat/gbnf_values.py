"""Grammars of single JSON values the schema converter composes: bounded numbers, string formats.

`integer_range` / `number_range` write GBNF that matches exactly the JSON numbers in a
range (integers digit by digit; numbers as whole-number bounds with a bounded
fraction), and `STRING_FORMATS` the body of a string in each supported `format`.
Kept apart from kronk.chat.json_schema so that module is only the schema walk.
"""

from __future__ import annotations

from kronk.chat import gbnf
from kronk.chat.gbnf import alt, literal, seq
from kronk.errors import GrammarError

_DATE = (
    '[1-9] [0-9]{3} "-" ( ("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01])'
    ' | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30")'
    ' | "02-" ("0" [1-9] | "1" [0-9] | "2" [0-8]) )'
)
_TIME = (
    '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})?'
    ' ("Z" | [+\\-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])'
)
_OCTET = '"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]'
STRING_FORMATS = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f"{_DATE} \"T\" {_TIME}",
    "uuid": '[0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12}',
    "email": (
        "[A-Za-z0-9] [A-Za-z0-9._+\\-]{0,40} \"@\" [A-Za-z0-9] [A-Za-z0-9\\-]{0,40}"
        ' ("." [A-Za-z] [A-Za-z0-9\\-]{0,20}){1,3}'
    ),
    "ipv4": f"({_OCTET}) \".\" ({_OCTET}) \".\" ({_OCTET}) \".\" ({_OCTET})",
}

_FRAC_ANY = '("." [0-9]{1,6})?'
_FRAC_ZERO = '("." "0"{1,6})?'
_FRAC_NONZERO = '"." "0"{0,5} [1-9] [0-9]{0,6}'
_MAX_DIGITS = 16


# --- integer ranges ------------------------------------------------------------


def _digit_class(lo: str, hi: str) -> str:
    return literal(lo) if lo == hi else f"[{lo}-{hi}]"


def _same_length(x: str, y: str) -> list[str]:
    """Alternatives for the decimal numbers x..y, both written with len(x) digits."""
    if x == y:
        return [literal(x)]
    i = 0
    while x[i] == y[i]:
        i += 1
    prefix, xs, ys = x[:i], x[i:], y[i:]
    rest = len(xs) - 1
    head = literal(prefix) if prefix else ""
    if rest == 0:
        return [seq(head, _digit_class(xs[0], ys[0]))]
    out: list[str] = []
    lo_digit, hi_digit = int(xs[0]), int(ys[0])
    if xs[1:] != "0" * rest:
        out.append(seq(head, literal(xs[0]), alt(_same_length(xs[1:], "9" * rest))))
        lo_digit += 1
    full_hi = hi_digit if ys[1:] == "9" * rest else hi_digit - 1
    if lo_digit <= full_hi:
        out.append(seq(head, _digit_class(str(lo_digit), str(full_hi)), f"[0-9]{{{rest}}}" if rest > 1 else "[0-9]"))
    if ys[1:] != "9" * rest:
        out.append(seq(head, literal(ys[0]), alt(_same_length("0" * rest, ys[1:]))))
    return out


def digits_range(lo: int, hi: int | None) -> str:
    """GBNF for the non-negative decimal integers lo..hi (hi None: up to 16 digits)."""
    top = 10**_MAX_DIGITS - 1
    if hi is not None and hi > top:
        hi = None
    if lo > top:
        raise GrammarError(f"minimum {lo} is larger than a grammar-bounded integer")
    options: list[str] = []
    width = len(str(lo))
    last = len(str(hi)) if hi is not None else width
    for n in range(width, last + 1):
        a = max(lo, 10 ** (n - 1) if n > 1 else 0)
        b = min(hi if hi is not None else top, 10**n - 1)
        if a <= b:
            options.extend(_same_length(str(a), str(b)))
    if hi is None and width < _MAX_DIGITS:
        options.append(f"[1-9] [0-9]{{{width},{_MAX_DIGITS - 1}}}")
    return alt(options)


def integer_range(lo: int | None, hi: int | None) -> str:
    """GBNF for the JSON integers lo..hi (either bound may be open)."""
    if lo is not None and hi is not None and lo > hi:
        raise GrammarError(f"no integer lies between {lo} and {hi}")
    options: list[str] = []
    if hi is None or hi >= 0:
        options.append(digits_range(max(lo, 0) if lo is not None else 0, hi))
    if lo is None or lo < 0:
        m_lo = max(1, -hi) if hi is not None else 1
        m_hi = -lo if lo is not None else None
        options.append(seq(literal("-"), digits_range(m_lo, m_hi)))
    return alt(options)


def _magnitude(lo: int, lo_ex: bool, hi: int | None, hi_ex: bool) -> list[str]:
    """Unsigned decimals m with lo <(=) m <(=) hi, for integer lo >= 0 and hi."""
    pieces: list[tuple[int, int | None, str]] = []
    start = lo
    if lo_ex:
        if hi is None or lo < hi:
            pieces.append((lo, lo, _FRAC_NONZERO))
        start = lo + 1
    if hi is None:
        pieces.append((start, None, _FRAC_ANY))
    else:
        if start <= hi - 1:
            pieces.append((start, hi - 1, _FRAC_ANY))
        if not hi_ex and start <= hi:
            pieces.append((hi, hi, _FRAC_ZERO))
    return [seq(gbnf.group(digits_range(a, b)), frac) for a, b, frac in pieces]


def number_range(lo: float | None, lo_ex: bool, hi: float | None, hi_ex: bool) -> str:
    """GBNF for JSON numbers within whole-number bounds (no exponent, <= 6 decimals)."""
    for bound in (lo, hi):
        if bound is not None and not float(bound).is_integer():
            raise GrammarError(f"number bound {bound} is not supported: use whole-number bounds")
    ilo = int(lo) if lo is not None else None
    ihi = int(hi) if hi is not None else None
    options: list[str] = []
    if ihi is None or ihi > 0 or (ihi == 0 and not hi_ex):
        if ilo is None or ilo < 0:
            options += _magnitude(0, False, ihi, hi_ex)
        else:
            options += _magnitude(ilo, lo_ex, ihi, hi_ex)
    if ilo is None or ilo < 0:
        if ihi is None or ihi >= 0:
            c, c_ex = 0, True
        else:
            c, c_ex = -ihi, hi_ex
        d = -ilo if ilo is not None else None
        negative = _magnitude(c, c_ex, d, lo_ex)
        if negative:
            options.append(seq(literal("-"), gbnf.group(alt(negative))))
    if not options:
        raise GrammarError(f"no number lies between {lo} and {hi}")
    return alt(options)


# --- the converter -------------------------------------------------------------
