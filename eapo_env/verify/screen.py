"""A double-precision screen: clearly different constants are ruled out before exact evaluation.

Only trees whose evaluation cannot cancel are screened: numbers, pi, e, sums, products,
quotients, percentages and powers of positive bases (no subtraction, no negation, no functions,
no variables). Each operation then has a relative error of at most 2**-52, amplified at most by
the exponent of a power (``|y ln x| < 710`` before overflow), so on at most ``MAX_NODES`` nodes the
computed value is within 1e-10 relative of the true one: two values further apart than
``REL_GAP`` relative are different. Anything else returns None and the 50-digit evaluator of
:mod:`.evaluate` decides, as it does for every pair that passes the screen.

Example:
    >>> from .parser import parse
    >>> clearly_different(parse(r"3\\sqrt{5}"), parse(r"3\\sqrt{6}"))
    True
    >>> clearly_different(parse(r"\\sqrt{8}"), parse(r"2\\sqrt 2"))
    False
"""

from __future__ import annotations

import math
from fractions import Fraction

from .parser import Node

MAX_NODES = 200
REL_GAP = 1e-9
_CONSTS = {"pi": math.pi, "e": math.e}


class _Skip(Exception):
    """The tree is outside the screened subset (or a value is not a positive finite float)."""


def _value(node: Node, budget: list[int]) -> float:
    budget[0] -= 1
    if budget[0] < 0:
        raise _Skip
    kind = node[0]
    if kind == "num":
        v = float(node[1])
    elif kind == "const" and node[1] in _CONSTS:
        v = _CONSTS[node[1]]
    elif kind == "add":
        v = math.fsum(_value(n, budget) for n in node[1])
    elif kind == "mul":
        v = math.prod(_value(n, budget) for n in node[1])
    elif kind == "div":
        v = _value(node[1], budget) / _value(node[2], budget)
    elif kind == "inv":
        v = 1.0 / _value(node[1], budget)
    elif kind == "pct":
        v = _value(node[1], budget) / 100.0
    elif kind == "pow":
        v = _value(node[1], budget) ** _value(node[2], budget)
    else:
        raise _Skip
    if not 0.0 < v < math.inf:
        raise _Skip  # zero, overflow: no relative bound; the exact evaluator decides
    return v


def clearly_different(a: Node, b: Node, abs_tol: Fraction | None = None) -> bool:
    """True only when both trees are screened and their values differ beyond any rounding.

    ``abs_tol`` is the caller's own tolerance (a decimal written with many digits).
    """
    try:
        va, vb = _value(a, [MAX_NODES]), _value(b, [MAX_NODES])
    except (_Skip, ZeroDivisionError, OverflowError, ValueError):
        return False
    gap = abs(va - vb)
    return gap > REL_GAP * max(va, vb) and (abs_tol is None or gap > 2 * float(abs_tol))
