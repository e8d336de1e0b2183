"""Tree rewrites before comparison: ``\\pm`` expanded, matrix arithmetic, inequalities as intervals.

All rewrites are bounded: ``\\pm`` expands to at most ``MAX_PM_ALTERNATIVES`` trees, matrices
have at most 64 x 64 entries (parser bound), and a sum or product of more than
``MAX_MATRIX_OPERANDS`` matrices is left as written (each product entry refers to entries of the
previous one, so a long chain would describe an exponentially large expression). Products are
built as trees, never evaluated here.

Example:
    >>> from .parser import parse
    >>> len(expand_pm(parse(r"1 \\pm \\sqrt{19}")))
    2
    >>> as_interval(parse("x < 1"))[:2]
    ('seq', '()')
"""

from __future__ import annotations

from typing import Any

from .answers import is_label
from .evaluate import free_symbols
from .parser import Node

MAX_PM_ALTERNATIVES = 16
MAX_MATRIX_OPERANDS = 4
INF: Node = ("const", "inf")
NEG_INF: Node = ("neg", INF)
INTERVAL_BRACKETS = frozenset(("()", "[]", "[)", "(]"))
_LEFT = {"<": "(", "<=": "["}
_RIGHT = {"<": ")", "<=": "]"}
_FLIP = {">": "<", ">=": "<="}


def _children(node: Node) -> list[Any]:
    """Positions of ``node`` holding sub-trees (a sub-tree, or a tuple of them)."""
    kind = node[0]
    if kind in ("add", "mul", "union"):
        return [1]
    if kind in ("neg", "inv", "fact", "pct"):
        return [1]
    if kind in ("div", "pow", "pm"):
        return [1, 2]
    if kind in ("func", "seq", "chain", "assign"):
        return [2]
    if kind == "rel":
        return [2, 3]
    return []


def contains(node: Node, kinds: frozenset[str]) -> bool:
    """True if a node of one of ``kinds`` occurs in the tree."""
    stack = [node]
    while stack:
        n = stack.pop()
        if n[0] in kinds:
            return True
        for i in _children(n):
            part = n[i]
            if part:
                stack.extend(part if isinstance(part[0], tuple) else (part,))
    return False


def expand_pm(node: Node) -> list[Node] | None:
    """Every reading of the ``\\pm`` signs of ``node``; None when there would be too many."""
    kind = node[0]
    if kind == "pm":
        lefts, rights = expand_pm(node[1]), expand_pm(node[2])
        if lefts is None or rights is None:
            return None
        out = [("add", (a, sb)) for a in lefts for b in rights for sb in (b, ("neg", b))]
        return out if len(out) <= MAX_PM_ALTERNATIVES else None
    alternatives: list[Node] = [node]
    for i in _children(node):
        part = node[i]
        if not part:
            continue
        if isinstance(part[0], tuple):  # a tuple of sub-trees
            for j, sub in enumerate(part):
                subs = expand_pm(sub)
                if subs is None:
                    return None
                if len(subs) > 1:
                    alternatives = [
                        a[:i] + (a[i][:j] + (s,) + a[i][j + 1 :],) + a[i + 1 :] for a in alternatives for s in subs
                    ]
        else:
            subs = expand_pm(part)
            if subs is None:
                return None
            if len(subs) > 1:
                alternatives = [a[:i] + (s,) + a[i + 1 :] for a in alternatives for s in subs]
        if len(alternatives) > MAX_PM_ALTERNATIVES:
            return None
    return alternatives


def reduce_matrix(node: Node) -> Node:
    """Matrix sums, products, negations and scalar multiples done entry by entry (as trees)."""
    kind = node[0]
    if kind == "mat":
        return node
    if kind == "neg":
        inner = reduce_matrix(node[1])
        return _map(inner, lambda e: ("neg", e)) if inner[0] == "mat" else node
    if kind not in ("add", "mul"):
        return node
    items = [reduce_matrix(n) for n in node[1]]
    if not any(n[0] == "mat" for n in items) or len(items) > MAX_MATRIX_OPERANDS:
        return node  # a longer product would build an exponentially large entry (left unreduced)
    acc = items[0]
    for item in items[1:]:
        combined = _combine(kind, acc, item)
        if combined is None:
            return node
        acc = combined
    return acc


def _map(mat: Node, fn: Any) -> Node:
    return ("mat", tuple(tuple(fn(e) for e in row) for row in mat[1]))


def _combine(kind: str, a: Node, b: Node) -> Node | None:
    if a[0] == "mat" and b[0] == "mat":
        ra, rb = a[1], b[1]
        if kind == "add":
            if len(ra) != len(rb) or len(ra[0]) != len(rb[0]):
                return None
            return ("mat", tuple(tuple(("add", (x, y)) for x, y in zip(r1, r2)) for r1, r2 in zip(ra, rb)))
        if len(ra[0]) != len(rb):
            return None
        cols = list(zip(*rb))
        return (
            "mat",
            tuple(tuple(("add", tuple(("mul", (x, y)) for x, y in zip(row, col))) for col in cols) for row in ra),
        )
    if kind == "mul":
        mat, scalar = (a, b) if a[0] == "mat" else (b, a)
        return _map(mat, lambda e: ("mul", (scalar, e)))
    return None


def as_interval(node: Node) -> Node | None:
    """``x < c``, ``c <= x``, ``a < x <= b``, ``x \\in S`` as the set of ``x`` (an interval), else None.

    ``a <= |x| <= b`` with a literal ``a > 0`` is the union ``[-b, -a] \\cup [a, b]``.
    """
    kind = node[0]
    if kind == "rel" and node[1] == "in" and is_label(node[2]):
        return node[3]
    if kind == "rel" and node[1] in ("<", "<=", ">", ">="):
        op, lhs, rhs = node[1], node[2], node[3]
        if op in _FLIP:
            op, lhs, rhs = _FLIP[op], rhs, lhs
        if is_label(lhs) and not free_symbols(rhs):  # x < c
            return ("seq", "(" + _RIGHT[op], (NEG_INF, rhs))
        if is_label(rhs) and not free_symbols(lhs):  # c < x
            return ("seq", _LEFT[op] + ")", (lhs, INF))
        return None
    if kind == "chain" and len(node[1]) == 2:
        (op1, op2), (a, x, b) = node[1], node[2]
        if op1 in _FLIP and op2 in _FLIP:
            op1, op2, a, b = _FLIP[op2], _FLIP[op1], b, a
        if op1 in _LEFT and op2 in _RIGHT and not free_symbols(a) and not free_symbols(b):
            if x[0] == "func" and x[1] == "abs" and is_label(x[2][0]) and _sign(a) == 1:  # 1 <= |z| <= 2
                mirrored = _LEFT[op2] + _RIGHT[op1]  # -b .. -a: the bounds swap sides
                return (
                    "union",
                    (("seq", mirrored, (("neg", b), ("neg", a))), ("seq", _LEFT[op1] + _RIGHT[op2], (a, b))),
                )
            if is_label(x):
                return ("seq", _LEFT[op1] + _RIGHT[op2], (a, b))
    return None


def _sign(node: Node) -> int | None:
    """+1 / -1 / 0 for a literal number (possibly negated), None for anything else."""
    neg = node[0] == "neg"
    if neg:
        node = node[1]
    if node[0] != "num":
        return None
    value = -node[1] if neg else node[1]
    return (value > 0) - (value < 0)


def is_set(node: Node) -> bool:
    """An interval, a union, or an explicit set ``\\{...\\}``."""
    return node[0] == "union" or (
        node[0] == "seq" and (node[1] == "{}" or (node[1] in INTERVAL_BRACKETS and len(node[2]) == 2))
    )
