"""Child-process side of the symbolic fallback (run as a script by :mod:`.worker`).

Protocol: one JSON object per line on stdin, ``{"a": tree, "b": tree}``; one JSON line back,
``{"r": true|false|null}``. Trees arrive as nested lists (Fractions as ``{"q": [n, d]}``) and
are rebuilt into sympy objects node by node: no string ever reaches sympy's parser, so nothing
the policy wrote can run as code. The parent kills this process when a request outlives its
time budget, which is why sympy's unbounded algorithms are only ever called here.

This file imports nothing from ``eapo_env`` so it starts fast and cannot be broken by the rest
of the package; it is launched with ``python -I`` (isolated mode).

Example (what a request looks like):
    >>> build({"q": [3, 4]})
    3/4
"""

from __future__ import annotations

import json
import sys
from typing import Any

import sympy

_FUNCS = {
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "sec": sympy.sec,
    "csc": sympy.csc,
    "cot": sympy.cot,
    "arcsin": sympy.asin,
    "arccos": sympy.acos,
    "arctan": sympy.atan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "ln": sympy.log,
    "exp": sympy.exp,
    "abs": sympy.Abs,
    "floor": sympy.floor,
    "ceil": sympy.ceiling,
    "binom": sympy.binomial,
}
_CONSTS = {"pi": sympy.pi, "e": sympy.E, "inf": sympy.oo}


def build(node: Any) -> Any:
    """Rebuild one tree (as decoded from JSON) into a sympy expression."""
    if isinstance(node, dict):
        n, d = node["q"]
        return sympy.Rational(int(n), int(d))
    kind = node[0]
    if kind == "num":
        return build(node[1])
    if kind == "sym":
        return sympy.Symbol(str(node[1]))
    if kind == "const":
        return _CONSTS[node[1]]
    if kind == "add":
        return sympy.Add(*[build(x) for x in node[1]])
    if kind == "mul":
        return sympy.Mul(*[build(x) for x in node[1]])
    if kind == "neg":
        return -build(node[1])
    if kind == "inv":
        return 1 / build(node[1])
    if kind == "div":
        return build(node[1]) / build(node[2])
    if kind == "pct":
        return build(node[1]) / 100
    if kind == "pow":
        return sympy.Pow(build(node[1]), build(node[2]))
    if kind == "fact":
        return sympy.factorial(build(node[1]))
    if kind == "func":
        args = [build(x) for x in node[2]]
        if node[1] == "log":
            return sympy.log(*args)
        return _FUNCS[node[1]](*args)
    raise ValueError(f"unsupported node {kind}")


def decide(a: Any, b: Any) -> bool | None:
    """True if ``simplify(a - b) == 0``, False if sympy proves them different, else None."""
    diff = sympy.simplify(build(a) - build(b))
    if diff == 0:
        return True
    zero = diff.is_zero
    return None if zero is None else bool(zero)


def main() -> None:
    try:  # bound memory: a request like 10^(10^100) must die here, not swap the machine
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    except (ImportError, ValueError, OSError):
        pass
    sys.set_int_max_str_digits(5000)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            result: bool | None = decide(req["a"], req["b"])
        except Exception:  # noqa: BLE001 - any sympy failure is "cannot decide"
            result = None
        out.write(json.dumps({"r": result}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
