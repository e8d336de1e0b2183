"""Bounded evaluation of parse trees and the equivalence decision built on it.

Values are exact :class:`~fractions.Fraction` while every operation stays rational (sums,
products, integer powers, perfect roots, factorials, binomials); otherwise they become
mpmath numbers at 50 significant digits, in a context private to the thread (mpmath's global
``mp`` is never touched, so concurrent calls cannot change each other's precision).

Every primitive is bounded in cost: exact integers are capped at ``MAX_BITS`` bits, numeric
magnitudes at ``2**MAX_MAG``, factorials and binomials by argument size, so no single step can
run away (``9^{9^{9^9}}`` raises :class:`Overflow` after microseconds). A deadline is also
checked while walking the tree. Expressions with free variables are compared at a few fixed
rational points (exactly where possible: a polynomial identity is then checked exactly).

Example:
    >>> from .parser import parse
    >>> scalar_equal(parse(r"\\sqrt{8}"), parse(r"2\\sqrt{2}"), deadline=float("inf"))
    True
    >>> scalar_equal(parse("(x+1)^2"), parse("x^2+2x+1"), deadline=float("inf"))
    True
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import mpmath

from ._types import Overflow, Undefined, VerifyTimeout
from .parser import Node
from .screen import clearly_different

MAX_BITS = 200_000  # exact integers beyond this become floating point
MAX_MAG = 1_000_000  # |log2 x| bound for floating values; beyond is Overflow
MAX_EXACT_FACT = 5_000
REL_TOL = mpmath.mpf(10) ** -30
_POINTS = (Fraction(31, 17), Fraction(-23, 13), Fraction(47, 29), Fraction(11, 37))
_local = threading.local()


def _ctx() -> Any:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        ctx = mpmath.ctx_mp.MPContext()
        ctx.dps = 50
        _local.ctx = ctx
    return ctx


class _Eval:
    """Tree walker; ``env`` maps symbol names to rational sample values."""

    def __init__(self, env: dict[str, Fraction], deadline: float) -> None:
        self.env = env
        self.deadline = deadline
        self.steps = 0
        self.mp = _ctx()

    def num(self, v: Any) -> Any:
        """Fraction -> mpmath number."""
        if isinstance(v, Fraction):
            return self.mp.mpf(v.numerator) / v.denominator
        return v

    def check(self, v: Any) -> Any:
        if isinstance(v, Fraction):
            if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
                return self.check(self.num(v))
            return v
        mp = self.mp
        if mp.isnan(v):
            raise Undefined("nan")
        if not mp.isinf(v) and v != 0 and abs(mp.mag(v)) > MAX_MAG:
            raise Overflow("magnitude")
        return v

    def ev(self, node: Node) -> Any:
        self.steps += 1
        if self.steps & 31 == 0 and time.perf_counter() > self.deadline:
            raise VerifyTimeout()
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "sym":
            return self.env[node[1]]
        if kind == "const":
            return {"pi": self.mp.pi, "e": self.mp.e, "inf": self.mp.inf}[node[1]]
        if kind == "add":
            return self.check(_fold(self.ev, node[1], lambda a, b: a + b, self.num))
        if kind == "mul":
            return self.check(_fold(self.ev, node[1], lambda a, b: a * b, self.num))
        if kind == "neg":
            return -self.ev(node[1])
        if kind == "inv":
            return self.div(Fraction(1), self.ev(node[1]))
        if kind == "div":
            return self.div(self.ev(node[1]), self.ev(node[2]))
        if kind == "pct":
            return self.div(self.ev(node[1]), Fraction(100))
        if kind == "pow":
            return self.power(self.ev(node[1]), self.ev(node[2]))
        if kind == "fact":
            return self.factorial(self.ev(node[1]))
        if kind == "func":
            return self.func(node[1], [self.ev(a) for a in node[2]])
        raise Undefined(f"{kind} is not a scalar")  # seq / rel inside arithmetic

    def div(self, a: Any, b: Any) -> Any:
        if b == 0:
            raise Undefined("division by zero")
        if isinstance(a, Fraction) and isinstance(b, Fraction):
            return self.check(a / b)
        return self.check(self.num(a) / self.num(b))

    def power(self, b: Any, e: Any) -> Any:
        if isinstance(b, Fraction) and isinstance(e, Fraction):
            exact = _exact_pow(b, e)
            if exact is not None:
                return self.check(exact)
            if b < 0 and e.denominator % 2 == 1:  # real odd root: \sqrt[3]{-8} = -2
                return -self.power(-b, e) if e.numerator % 2 else self.power(-b, e)
        mp = self.mp
        bn = self.num(b)
        if bn == 0:
            if self.num(e) <= 0 if isinstance(e, Fraction) else mp.re(e) <= 0:
                raise Undefined("0 to a non-positive power")
            return Fraction(0)
        if isinstance(e, Fraction):  # cheap exact-exponent paths (sqrt, roots, integer powers)
            if abs(e) * (abs(mp.mag(bn)) + 1) > MAX_MAG:
                raise Overflow("power")
            if e.denominator == 1:
                return self.check(bn ** int(e))
            if e == Fraction(1, 2) and mp.im(bn) == 0 and bn > 0:
                return self.check(mp.sqrt(bn))
        en = self.num(e)
        if not mp.isinf(bn) and abs(en) * abs(mp.log(abs(bn), 2)) > MAX_MAG:
            raise Overflow("power")
        return self.check(mp.power(bn, en))

    def factorial(self, n: Any) -> Any:
        if isinstance(n, Fraction) and n.denominator == 1:
            if n < 0:
                raise Undefined("negative factorial")
            if n <= MAX_EXACT_FACT:
                return Fraction(math.factorial(int(n)))
        if abs(self.num(n)) > 10**6:
            raise Overflow("factorial")
        return self.check(self.mp.gamma(self.num(n) + 1))

    def func(self, name: str, args: list[Any]) -> Any:
        mp = self.mp
        x = args[0]
        if name == "binom":
            n, k = args
            if all(isinstance(v, Fraction) and v.denominator == 1 for v in (n, k)) and 0 <= n <= 10**5:
                return Fraction(math.comb(int(n), int(k)) if k >= 0 else 0)
            if abs(self.num(n)) > 10**6:
                raise Overflow("binomial")
            return self.check(mp.binomial(self.num(n), self.num(k)))
        if name == "abs":
            return abs(x) if isinstance(x, Fraction) else self.check(mp.mpf(abs(x)))
        if name in ("floor", "ceil"):
            if isinstance(x, Fraction):
                return Fraction(math.floor(x) if name == "floor" else math.ceil(x))
            if mp.im(x) != 0:
                raise Undefined("floor of complex")
            return Fraction(int(mp.floor(x) if name == "floor" else mp.ceil(x)))
        xn = self.num(x)
        if name in ("ln", "log"):
            if xn == 0:
                raise Undefined("log 0")
            out = mp.log(xn)
            if len(args) == 2:
                base = mp.log(self.num(args[1]))
                if base == 0:
                    raise Undefined("log base 1")
                out = out / base
            return self.check(out)
        if name == "exp":
            if mp.re(xn) > MAX_MAG:
                raise Overflow("exp")
            return self.check(mp.exp(xn))
        if abs(xn) > 2**1000:  # argument reduction cost grows with the magnitude
            raise Overflow("trig argument")
        fn: Callable[[Any], Any] = {
            "sin": mp.sin,
            "cos": mp.cos,
            "tan": mp.tan,
            "sec": mp.sec,
            "csc": mp.csc,
            "cot": mp.cot,
            "arcsin": mp.asin,
            "arccos": mp.acos,
            "arctan": mp.atan,
            "sinh": mp.sinh,
            "cosh": mp.cosh,
            "tanh": mp.tanh,
        }[name]
        try:
            return self.check(fn(xn))
        except ZeroDivisionError as exc:  # tan at a pole, cot 0
            raise Undefined(name) from exc


def _fold(
    ev: Callable[[Node], Any], items: tuple[Node, ...], op: Callable[[Any, Any], Any], num: Callable[[Any], Any]
) -> Any:
    acc = ev(items[0])
    for item in items[1:]:
        v = ev(item)
        if isinstance(acc, Fraction) and isinstance(v, Fraction):
            acc = op(acc, v)
        else:
            acc = op(num(acc), num(v))
        if isinstance(acc, Fraction) and max(acc.numerator.bit_length(), acc.denominator.bit_length()) > MAX_BITS:
            acc = num(acc)
    return acc


def _iroot(n: int, k: int) -> int | None:
    """Exact integer k-th root of n >= 0, or None."""
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // k)
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            return x if x**k == n else None
        x = y


def _exact_pow(b: Fraction, e: Fraction) -> Fraction | None:
    """``b ** e`` as a Fraction when it is rational and small, else None."""
    if b == 0:
        if e <= 0:
            raise Undefined("0 to a non-positive power")
        return Fraction(0)
    if b in (1, -1) and e.denominator == 1:
        return b ** int(e)
    if e.denominator != 1:
        if b < 0 or e.denominator > 64:
            return None
        num, den = _iroot(b.numerator, e.denominator), _iroot(b.denominator, e.denominator)
        if num is None or den is None:
            return None
        b, e = Fraction(num, den), Fraction(e.numerator)
    bits = max(b.numerator.bit_length(), b.denominator.bit_length())
    if abs(e) > MAX_BITS or bits * abs(e) > MAX_BITS:
        return None
    return b ** int(e)


# Where the sub-trees of each node kind are: a tuple of them at an index, or every item from an index on.
_LIST_AT = {"add": 1, "mul": 1, "union": 1, "func": 2, "seq": 2, "chain": 2, "assign": 2}
_TREES_FROM = {"neg": 1, "inv": 1, "fact": 1, "pct": 1, "div": 1, "pow": 1, "pm": 1, "rel": 2}


def free_symbols(node: Node, out: set[str] | None = None) -> set[str]:
    """Names of the variables in a tree.

    Example:
        >>> from .parser import parse
        >>> sorted(free_symbols(parse("x + 2y")))
        ['x', 'y']
    """
    out = set() if out is None else out
    stack = [node]
    while stack:
        n = stack.pop()
        kind = n[0]
        if kind == "num" or kind == "const":
            continue
        if kind == "sym":
            out.add(n[1])
        elif kind in _LIST_AT:
            stack.extend(n[_LIST_AT[kind]])
        elif kind in _TREES_FROM:
            stack.extend(n[_TREES_FROM[kind] :])
        elif kind == "mat":
            stack.extend(e for row in n[1] for e in row)
    return out


def values_equal(x: Any, y: Any, abs_tol: Fraction | None = None) -> bool:
    """Exact for two Fractions, else within 1e-30 relative (or ``abs_tol``) at 50 digits."""
    if isinstance(x, Fraction) and isinstance(y, Fraction):
        return x == y or (abs_tol is not None and abs(x - y) <= abs_tol)
    mp = _ctx()
    xn = mp.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else x
    yn = mp.mpf(y.numerator) / y.denominator if isinstance(y, Fraction) else y
    if mp.isinf(xn) or mp.isinf(yn):
        return bool(xn == yn)
    diff = abs(xn - yn)
    if abs_tol is not None and diff <= mp.mpf(abs_tol.numerator) / abs_tol.denominator:
        return True
    return bool(diff <= REL_TOL * max(1, abs(xn), abs(yn)))


def scalar_equal(a: Node, b: Node, deadline: float, abs_tol: Fraction | None = None) -> bool | None:
    """Decide ``a == b`` for scalar trees: True, False, or None when undecidable here."""
    if clearly_different(a, b, abs_tol):
        return False  # a double-precision screen (see .screen): no 50-digit work for clear misses
    names = sorted(free_symbols(a) | free_symbols(b))
    if names:
        envs = [{n: _POINTS[(k + j) % 4] + Fraction(j, 11) for j, n in enumerate(names)} for k in range(4)]
    else:
        envs = [{}]
    agree = 0
    for env in envs:
        va, vb = _try_eval(a, env, deadline), _try_eval(b, env, deadline)
        if va is Overflow or vb is Overflow:
            if va is Overflow and vb is Overflow:
                return None
            if va is not Undefined and vb is not Undefined:
                return False  # one side huge, the other finite
            continue
        if va is Undefined or vb is Undefined:
            if not names and (va is Undefined) != (vb is Undefined):
                return False
            continue
        if not values_equal(va, vb, abs_tol):
            return False
        agree += 1
    if agree == 0 or (names and agree < 2):
        return None
    return True


def ratio(a: Node, b: Node, deadline: float) -> Any:
    """The constant ``c != 0`` with ``a = c * b`` at every sample point, or None.

    Used to compare relations: ``34x + 45y = 0`` and ``-34x - 45y = 0`` have differences in the
    ratio -1. Needs free variables and at least two points where both sides are defined.

    Example:
        >>> from .parser import parse
        >>> ratio(parse("2x+4y-3"), parse("y+x/2-3/4"), deadline=float("inf"))
        Fraction(4, 1)
    """
    names = sorted(free_symbols(a) | free_symbols(b))
    if not names:
        return None
    c, count = None, 0
    for k in range(4):
        env = {n: _POINTS[(k + j) % 4] + Fraction(j, 11) for j, n in enumerate(names)}
        va, vb = _try_eval(a, env, deadline), _try_eval(b, env, deadline)
        if va in (Undefined, Overflow) or vb in (Undefined, Overflow):
            continue
        if values_equal(vb, Fraction(0)):
            if not values_equal(va, Fraction(0)):
                return None
            continue
        r = va / vb if isinstance(va, Fraction) and isinstance(vb, Fraction) else _ctx().mpf(0) + _num(va) / _num(vb)
        if c is None:
            c = r
        elif not values_equal(r, c):
            return None
        count += 1
    if count < 2 or c is None or values_equal(c, Fraction(0)):
        return None
    return c


def _num(v: Any) -> Any:
    return _ctx().mpf(v.numerator) / v.denominator if isinstance(v, Fraction) else v


def _try_eval(node: Node, env: dict[str, Fraction], deadline: float) -> Any:
    try:
        return _Eval(env, deadline).ev(node)
    except (Undefined, ZeroDivisionError, ValueError, KeyError):
        return Undefined
    except (Overflow, OverflowError):
        return Overflow
