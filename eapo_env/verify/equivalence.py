"""Structural equivalence of answers: lists, sets, intervals, matrices, relations, percentages.

Leaf pairs (scalars) are decided by a pluggable function, by default
:func:`.evaluate.scalar_equal`; :mod:`.core` wraps it with the sympy-worker fallback.
Results are three-valued: True, False, or None (undecided).

Rules, in the order they apply:

* ``\\pm`` reads as the set of its sign choices (``1 \\pm \\sqrt 2`` ~ ``\\{1+\\sqrt 2, 1-\\sqrt 2\\}``).
* Matrix sums and products are done entry by entry; matrices compare entry by entry.
* A percentage on one side matches its number or its number / 100 (math-verify's rule).
* Labelled answers: ``x \\in S`` reads as ``S``; a gold ``x = v`` with a label on the left
  matches the value ``v``; a predicted ``a = v`` (any left side: an intermediate step) matches a
  gold value ``v``. A gold relation whose left side is no label (``a + 3z = 0``) is not a value.
* Sets: an inequality (``-2 <= x <= 7``, ``x > 1``) in the **gold** matches its interval in the
  prediction; an inequality in the prediction matches an interval/set gold only with
  ``VerifyOptions(relation_matches_set_gold=True)`` (as math-verify). Unions compare piece by
  piece, unordered.
* Lists and ``\\{...\\}`` sets compare as sets (order and repeats ignored); tuples and intervals in
  order with the same brackets; a bare list against a tuple in order.
* Relations: the same relation on both sides, mirrored (``x <= 5`` ~ ``5 >= x``), or with
  proportional differences: ``L1 - R1 = c (L2 - R2)``, ``c > 0`` keeping and ``c < 0`` mirroring
  an inequality (``x < 1`` ~ ``-x > -1``; ``2x+4y-3=0`` ~ ``y = -x/2 + 3/4``).

Example:
    >>> from .parser import parse
    >>> equivalent(parse(r"\\{1, \\sqrt{4}\\}"), parse(r"\\{2, 1\\}"), deadline=float("inf"))
    True
    >>> equivalent(parse("[1, 2)"), parse("(1, 2)"), deadline=float("inf"))
    False
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

from ._types import VerifyTimeout
from .answers import is_label
from .evaluate import ratio, scalar_equal
from .options import DEFAULT_OPTIONS, VerifyOptions
from .parser import Node
from .structures import INTERVAL_BRACKETS, as_interval, contains, expand_pm, is_set, reduce_matrix

Scalar = Callable[[Node, Node, float, "Fraction | None"], "bool | None"]
_MIRROR = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "!=": "!=", "in": ""}
_RELATIONS = frozenset(("rel", "chain"))
_PM = frozenset(("pm",))
_MAT = frozenset(("mat",))
_STRUCTURED = frozenset(("seq", "mat", "union", "rel", "chain", "pm"))


def _all(results: list[bool | None]) -> bool | None:
    if False in results:
        return False
    return None if None in results else True


def _any(results: list[bool | None]) -> bool | None:
    if True in results:
        return True
    return None if None in results else False


def _decimal_tol(node: Node, digits: int) -> Fraction | None:
    if node[0] == "neg":
        node = node[1]
    if node[0] == "num" and node[2] >= digits:
        return Fraction(1, 2 * 10 ** node[2])
    return None


class _Compare:
    """One comparison: the deadline, the leaf decider and the options travel together."""

    def __init__(self, deadline: float, scalar: Scalar, options: VerifyOptions, rewrites: bool) -> None:
        self.deadline, self.scalar, self.options = deadline, scalar, options
        self.rewrites = rewrites  # some \\pm or matrix occurs: look for them at every level

    def eq(self, p: Node, g: Node) -> bool | None:
        if time.perf_counter() > self.deadline:
            raise VerifyTimeout()
        if self.rewrites and (contains(p, _PM) or contains(g, _PM)):
            p, g = _expand_signs(p), _expand_signs(g)  # type: ignore[assignment]
            if p is None or g is None:
                return None
        if self.rewrites and (contains(p, _MAT) or contains(g, _MAT)):
            p, g = reduce_matrix(p), reduce_matrix(g)
            if p[0] == "mat" or g[0] == "mat":
                return self.matrices(p, g)
        if (p[0] == "pct") != (g[0] == "pct"):
            pct, other = (p, g) if p[0] == "pct" else (g, p)
            alts = [pct[1], ("div", pct[1], ("num", Fraction(100), -1))]
            return _any([self.eq(a, other) if pct is p else self.eq(other, a) for a in alts])
        if p[0] in _RELATIONS or g[0] in _RELATIONS:
            return self.relations(p, g)
        if p[0] == "union" or g[0] == "union":
            if p[0] != "union" or g[0] != "union":
                return False
            return self.unordered(list(p[1]), list(g[1]))
        if p[0] == "assign" or g[0] == "assign":
            return self.assignments(p, g)
        if p[0] == "seq" or g[0] == "seq":
            return self.sequences(p, g)
        tol = _decimal_tol(p, self.options.float_rounding) or _decimal_tol(g, self.options.float_rounding)
        return self.scalar(p, g, self.deadline, tol)

    def sequences(self, p: Node, g: Node) -> bool | None:
        if p[0] != "seq" or g[0] != "seq":
            return False
        kinds = {p[1], g[1]}
        if kinds <= {"{}", ""}:
            return self.unordered(list(p[2]), list(g[2]))
        if len(p[2]) != len(g[2]) or (p[1] != g[1] and kinds != {"", "()"}):
            return False
        return _all([self.eq(a, b) for a, b in zip(p[2], g[2])])

    def assignments(self, p: Node, g: Node) -> bool | None:
        """``a_3 = 2, a_37 = 19``: by label against the same labels, else as a tuple in order."""
        if p[0] == g[0] == "assign":
            if sorted(map(repr, p[1])) != sorted(map(repr, g[1])):
                return False
            by_label = dict(zip(map(repr, g[1]), g[2]))
            return _all([self.eq(v, by_label[repr(k)]) for k, v in zip(p[1], p[2])])
        p, g = [("seq", "()", n[2]) if n[0] == "assign" else n for n in (p, g)]
        return self.sequences(p, g)

    def matrices(self, p: Node, g: Node) -> bool | None:
        if p[0] != "mat" or g[0] != "mat" or len(p[1]) != len(g[1]) or len(p[1][0]) != len(g[1][0]):
            return False
        return _all([self.eq(a, b) for rp, rg in zip(p[1], g[1]) for a, b in zip(rp, rg)])

    def relations(self, p: Node, g: Node) -> bool | None:
        """At least one side is a relation or a chain (see the module doc for the rules)."""
        if p[0] == "rel" and p[1] == "in" and is_label(p[2]):
            return self.eq(p[3], g)
        if g[0] == "rel" and g[1] == "in" and is_label(g[2]):
            if p[0] in _RELATIONS and not self.options.relation_matches_set_gold:
                return False
            return self.eq(p, g[3])
        if p[0] not in _RELATIONS:  # a value against a gold relation
            if g[0] == "rel" and g[1] == "=" and is_label(g[2]):
                return self.eq(p, g[3])
            interval = as_interval(g) if is_set(p) else None
            return False if interval is None else self.eq(p, interval)
        if g[0] not in _RELATIONS:  # a predicted relation against a gold value
            if p[0] == "rel" and p[1] == "=":
                return self.eq(p[3], g)
            if is_set(g) and self.options.relation_matches_set_gold:
                interval = as_interval(p)
                return False if interval is None else self.eq(interval, g)
            return False
        if p[0] == "chain" or g[0] == "chain":
            return self.chains(p, g)
        return self.two_relations(p, g)

    def chains(self, p: Node, g: Node) -> bool | None:
        if p[0] == g[0] == "chain" and len(p[2]) == len(g[2]):
            if p[1] == g[1]:
                straight = _all([self.eq(a, b) for a, b in zip(p[2], g[2])])
                if straight:
                    return True
            if tuple(_MIRROR[o] for o in reversed(p[1])) == g[1]:
                if _all([self.eq(a, b) for a, b in zip(reversed(p[2]), g[2])]):
                    return True
        ip, ig = as_interval(p), as_interval(g)
        if ip is None or ig is None:
            return False
        return self.eq(ip, ig)

    def two_relations(self, p: Node, g: Node) -> bool | None:
        op, og = p[1], g[1]
        results: list[bool | None] = []
        if op == og:
            results.append(_all([self.eq(p[2], g[2]), self.eq(p[3], g[3])]))
        if _MIRROR[op] == og:
            results.append(_all([self.eq(p[2], g[3]), self.eq(p[3], g[2])]))
        if True in results:
            return True
        if "in" in (op, og) or any(contains(side, _STRUCTURED) for side in (p[2], p[3], g[2], g[3])):
            return _any(results) if results else False
        c = ratio(("add", (p[2], ("neg", p[3]))), ("add", (g[2], ("neg", g[3]))), self.deadline)
        if c is not None:
            if op in ("=", "!="):
                return op == og
            try:
                positive = c > 0
            except TypeError:  # a complex ratio: no order
                return False
            return op == og if positive else _MIRROR[op] == og
        return _any(results) if results else False

    def unordered(self, ps: list[Node], gs: list[Node]) -> bool | None:
        """Set equality: every item of each side equals some item of the other (repeats ignored)."""
        if not ps or not gs:
            return not ps and not gs
        return _all([self._covered(ps, gs), self._covered(gs, ps, swap=True)])

    def _covered(self, items: list[Node], pool: list[Node], swap: bool = False) -> bool | None:
        unsure = False
        for a in items:
            hit = False
            for b in pool:
                r = self.eq(b, a) if swap else self.eq(a, b)
                if r:
                    hit = True
                    break
                unsure = unsure or r is None
            if not hit:
                return None if unsure else False
        return True


def _expand_signs(node: Node) -> Node | None:
    """``a \\pm b`` -> the set ``{a + b, a - b}``; inside a set or a list, its items are expanded in place."""
    if node[0] == "seq" and node[1] in ("{}", ""):
        items: list[Node] = []
        for item in node[2]:
            alts = expand_pm(item)
            if alts is None:
                return None
            items.extend(alts)
        return ("seq", node[1], tuple(items))
    alts = expand_pm(node)
    if alts is None:
        return None
    return ("seq", "{}", tuple(alts)) if len(alts) > 1 else alts[0]


def equivalent(
    p: Node,
    g: Node,
    deadline: float,
    scalar: Scalar = scalar_equal,
    options: VerifyOptions = DEFAULT_OPTIONS,
    rewrites: bool | None = None,
) -> bool | None:
    """Three-valued equivalence of a prediction tree ``p`` and a gold tree ``g`` (rules above).

    ``scalar`` decides leaf pairs (the caller may wrap it with a slower fallback). ``rewrites``:
    whether a ``\\pm`` or a matrix may occur (None: look); a caller that knows from the text
    saves the tree walks.
    """
    if rewrites is None:
        rewrites = contains(p, _PM | _MAT) or contains(g, _PM | _MAT)
    return _Compare(deadline, scalar, options, rewrites).eq(p, g)


__all__ = ["INTERVAL_BRACKETS", "equivalent"]
