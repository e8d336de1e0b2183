"""Structural equivalence of answers: sequences, sets, intervals, relations, percentages.

Leaf pairs (scalars) are decided by a pluggable function, by default
:func:`.evaluate.scalar_equal`; :mod:`.core` wraps it with the sympy-worker fallback.
Results are three-valued: True, False, or None (undecided).

Example:
    >>> from .parser import parse
    >>> equivalent(parse(r"\\{1, \\sqrt{4}\\}"), parse(r"\\{2, 1\\}"), deadline=float("inf"))
    True
    >>> equivalent(parse("[1, 2)"), parse("(1, 2)"), deadline=float("inf"))
    False
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Callable

from ._types import VerifyTimeout
from .evaluate import scalar_equal
from .parser import Node

_MIRROR = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!="}


def _all(results: list[bool | None]) -> bool | None:
    if False in results:
        return False
    return None if None in results else True


def _any(results: list[bool | None]) -> bool | None:
    if True in results:
        return True
    return None if None in results else False


def _decimal_tol(node: Node) -> Fraction | None:
    if node[0] == "neg":
        node = node[1]
    if node[0] == "num" and node[2] >= 6:
        return Fraction(1, 2 * 10 ** node[2])
    return None


def equivalent(p: Node, g: Node, deadline: float,
               scalar: Callable[[Node, Node, float, Fraction | None], bool | None] = scalar_equal) -> bool | None:
    """Three-valued equivalence of a prediction tree ``p`` and a gold tree ``g``.

    Sequences: ``\\{..\\}`` sets and bare comma lists compare unordered; tuples and intervals
    compare in order with the same brackets. Relations compare side by side (or mirrored); an
    assignment ``x = 7`` against a plain value compares its right side. A top-level
    percentage matches its number or its number / 100 (math-verify's behaviour).
    ``scalar`` decides leaf pairs (the caller may wrap it with a slower fallback).
    """
    if time.perf_counter() > deadline:
        raise VerifyTimeout()
    if (p[0] == "pct") != (g[0] == "pct"):
        pct, other = (p, g) if p[0] == "pct" else (g, p)
        alts = [pct[1], ("div", pct[1], ("num", Fraction(100), -1))]
        return _any([equivalent(a, other, deadline, scalar) if pct is p else equivalent(other, a, deadline, scalar)
                     for a in alts])
    if p[0] == "seq" or g[0] == "seq":
        if p[0] != "seq" or g[0] != "seq" or len(p[2]) != len(g[2]):
            return False
        kinds = {p[1], g[1]}
        if kinds <= {"{}", ""}:
            return _unordered(list(p[2]), list(g[2]), deadline, scalar)
        if p[1] != g[1] and kinds != {"", "()"}:
            return False
        return _all([equivalent(a, b, deadline, scalar) for a, b in zip(p[2], g[2])])
    if p[0] == "rel" and g[0] == "rel":
        straight = _all([p[1] == g[1] or None, equivalent(p[2], g[2], deadline, scalar),
                         equivalent(p[3], g[3], deadline, scalar)]) if p[1] == g[1] else False
        mirrored = _all([equivalent(p[2], g[3], deadline, scalar), equivalent(p[3], g[2], deadline, scalar)]) \
            if _MIRROR[p[1]] == g[1] else False
        return _any([straight, mirrored])
    if p[0] == "rel" or g[0] == "rel":
        rel, other = (p, g) if p[0] == "rel" else (g, p)
        if rel[1] == "=" and rel[2][0] == "sym":
            return equivalent(rel[3], other, deadline, scalar) if rel is p else equivalent(other, rel[3], deadline, scalar)
        return False
    tol = _decimal_tol(p) or _decimal_tol(g)
    return scalar(p, g, deadline, tol)


def _unordered(ps: list[Node], gs: list[Node], deadline: float,
               scalar: Callable[[Node, Node, float, Fraction | None], bool | None]) -> bool | None:
    """Greedy matching of two equally long lists (sizes are bounded by the input length)."""
    unsure = False
    for a in ps:
        hit = None
        for j, b in enumerate(gs):
            r = equivalent(a, b, deadline, scalar)
            if r:
                hit = j
                break
            unsure = unsure or r is None
        if hit is None:
            return None if unsure else False
        gs.pop(hit)
    return True
