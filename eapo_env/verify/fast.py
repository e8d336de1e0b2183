"""Fast tier: plain numbers compared exactly with :class:`fractions.Fraction`.

Pure ``str``/``int`` work, no sympy, no mpmath. Handles integers (``1,000``, ``007``,
``+5``), decimals and scientific notation, ``a/b`` and ``\\frac{a}{b}`` (with a sign), and a
trailing percent sign.

Percentages follow math-verify: ``50\\%`` matches both ``50`` and ``0.5`` (a percentage on one
side only is compared as its number and as its number / 100). A decimal written with at least
six fractional digits is accepted when it is the other side rounded to that many digits
(``0.333333`` matches ``1/3``; ``0.33`` does not), as math-verify does.

Example:
    >>> parse_number("-1,234.50")
    Num(value=Fraction(-2469, 2), decimals=2, percent=False)
    >>> numbers_match(parse_number("50\\\\%"), parse_number("0.5"))
    True
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

_NUM = re.compile(
    r"(?P<sign>[-+]?)(?:"
    r"(?P<int>[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d*))?(?:[eE](?P<exp>[-+]?\d{1,3}))?"
    r"|\.(?P<frac2>\d+)"
    r"|\\frac\{(?P<fn>[-+]?\d+)\}\{(?P<fd>[-+]?\d+)\}"
    r"|\\frac(?P<fn1>\d)(?P<fd1>\d)"
    r"|(?P<sn>\d+)/(?P<sd>\d+)"
    r")(?P<pct>\\?%)?"
)
MIN_TOLERANT_DECIMALS = 6


class Num(NamedTuple):
    """A parsed plain number: exact value, fractional digits written (-1: none), percent."""

    value: Fraction
    decimals: int
    percent: bool


def parse_number(text: str) -> Num | None:
    """Parse ``text`` as a plain number, or return None (the caller tries harder tiers).

    Example:
        >>> parse_number("1e3").value, parse_number("x") is None
        (Fraction(1000, 1), True)
    """
    if " " in text:
        if "," in text:
            return None  # "32, 349" is a list, never a thousands-separated number
        s = text.replace(" ", "")
    else:
        s = text
    m = _NUM.fullmatch(s)
    if m is None or len(s) > 400:  # long digit strings go to the bounded parser
        return None
    g = m.group
    decimals = -1
    if g("int") is not None:
        whole = g("int").replace(",", "")
        frac = g("frac")
        if frac:
            value = Fraction(int(whole + frac), 10 ** len(frac))
            decimals = len(frac)
        else:
            value = Fraction(int(whole))
        if g("exp") is not None:
            value *= Fraction(10) ** int(g("exp"))
            decimals = -1
    elif g("frac2") is not None:
        value = Fraction(int(g("frac2")), 10 ** len(g("frac2")))
        decimals = len(g("frac2"))
    else:
        num, den = (
            (g("fn"), g("fd"))
            if g("fn") is not None
            else ((g("fn1"), g("fd1")) if g("fn1") is not None else (g("sn"), g("sd")))
        )
        if int(den) == 0:
            return None  # undefined: let the symbolic tier report it
        value = Fraction(int(num), int(den))
    if g("sign") == "-":
        value = -value
    return Num(value, decimals, g("pct") is not None)


def close_by_rounding(a: Num, other: object, digits: int = MIN_TOLERANT_DECIMALS) -> bool:
    """True if ``a`` is a decimal with >= ``digits`` digits and ``other`` rounds to it.

    ``other`` is anything that subtracts from a Fraction and has ``abs`` (Fraction, float,
    mpmath number).

    Example:
        >>> close_by_rounding(parse_number("0.666667"), Fraction(2, 3))
        True
    """
    if a.decimals < digits:
        return False
    try:
        return bool(abs(other - a.value) <= Fraction(1, 2 * 10**a.decimals))  # type: ignore[operator]
    except (TypeError, ValueError, OverflowError):
        return False


def numbers_match(pred: Num, gold: Num, digits: int = MIN_TOLERANT_DECIMALS) -> bool:
    """Decide equality of two plain numbers (percent and rounding rules above).

    Example:
        >>> numbers_match(parse_number("007"), parse_number("7"))
        True
    """
    if pred.percent == gold.percent:
        candidates = [(pred.value, gold.value)]
    elif pred.percent:
        candidates = [(pred.value, gold.value), (pred.value / 100, gold.value)]
    else:
        candidates = [(pred.value, gold.value), (pred.value, gold.value / 100)]
    for p, g in candidates:
        if p == g:
            return True
        if close_by_rounding(Num(p, pred.decimals, False), g, digits) or close_by_rounding(
            Num(g, gold.decimals, False), p, digits
        ):
            return True
    return False
