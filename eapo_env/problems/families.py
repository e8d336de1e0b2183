r"""The generated problem families: ``(rng, level) -> Generated(question, answer, solution, params)``.

Each generator draws only from the ``random.Random`` it is given (so an item is a pure function of that
generator's seed), computes the answer exactly with integers and :class:`~fractions.Fraction`, writes a
worked solution of short steps ending with ``The answer is \boxed{<answer>}.``, and returns the
structured operands as ``params`` so the answer can be recomputed independently. No sympy: generation is
on the ``reset`` path of every episode. :mod:`eapo_env.problems.generated` holds the registry and ids.

Example:
    >>> import random
    >>> g = linear(random.Random(0), 1)
    >>> g.params["c"], g.solution.splitlines()[-1] == "The answer is \\boxed{" + g.answer + "}."
    (0, True)
    >>> fmt_number(Fraction(-6, 8)), fmt_number(4)
    ('-\\frac{3}{4}', '4')
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction
from math import comb, factorial, gcd, lcm, perm, prod
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

__all__ = ["Generated", "arithmetic", "counting", "fmt_number", "fmt_ratio", "fractions", "linear", "modular"]


class Generated(NamedTuple):
    """What a family generator returns; ``params`` are the structured operands (kept in ``meta``)."""

    question: str
    answer: str
    solution: str
    params: dict[str, Any]


def fmt_number(q: Fraction | int) -> str:
    """The canonical answer string: ``-7``, ``\\frac{3}{4}``, ``-\\frac{1}{2}`` (always reduced).

    >>> fmt_number(Fraction(-6, 8)), fmt_number(Fraction(10, 5))
    ('-\\\\frac{3}{4}', '2')
    """
    q = Fraction(q)
    return fmt_ratio(q.numerator, q.denominator)


def fmt_ratio(num: int, den: int) -> str:
    """:func:`fmt_number` of ``num/den`` with integer arithmetic only (Fraction is slow on this path).

    >>> fmt_ratio(6, -52), fmt_ratio(-12, 4)
    ('-\\\\frac{3}{26}', '-3')
    """
    if den == 0:
        raise ZeroDivisionError("fmt_ratio: zero denominator")
    if den < 0:
        num, den = -num, -den
    g = gcd(num, den)
    num, den = num // g, den // g
    if den == 1:
        return str(num)
    return f"{'-' if num < 0 else ''}\\frac{{{abs(num)}}}{{{den}}}"


def _ri(rng: random.Random, lo: int, hi: int) -> int:
    # rng.randint costs ~0.5 us in pure Python and its internals may change across Python versions;
    # this costs a third and draws only from random(), whose stream is stable. (The bias, below
    # 2**-40 for these ranges, is irrelevant for problem generation.)
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _shuffle(rng: random.Random, items: list[T], k: int | None = None) -> list[T]:
    # Fisher-Yates on rng.random() only: random() is the one stream Python promises to keep stable
    # across versions (shuffle/sample/randrange internals have changed before).
    k = len(items) if k is None else k
    for i in range(k):
        j = i + int(rng.random() * (len(items) - i))
        items[i], items[j] = items[j], items[i]
    return items[:k]


def _signed(v: int) -> str:
    # "+ 5" / "- 5": how a term after the first is written.
    return f"+ {v}" if v >= 0 else f"- {-v}"


def _finish(steps: list[str], answer: str) -> str:
    steps.append(f"The answer is \\boxed{{{answer}}}.")
    return "\n".join(steps)


# level -> (number of terms, largest plain operand, term kinds allowed, largest factor)
_ARITH = {1: (3, 20, 1, 9), 2: (3, 30, 2, 9), 3: (4, 50, 3, 12), 4: (5, 100, 4, 15), 5: (6, 200, 4, 20)}
_ARITH_TEMPLATES = ("Compute ${}$.", "Evaluate ${}$.", "What is the value of ${}$?")


def arithmetic(rng: random.Random, level: int) -> Generated:
    """Integer expression with +, -, ×, exact ÷ and (from level 4) parentheses."""
    n_terms, hi, n_kinds, fmax = _ARITH[level]
    rand = rng.random

    def ri(lo: int, top: int) -> int:  # inlined _ri: arithmetic draws the most numbers
        return lo + int(rand() * (top - lo + 1))

    tex: list[str] = []
    plain: list[str] = []
    values: list[int] = []
    pre: list[str] = []
    for i in range(n_terms):
        kind = int(rand() * n_kinds)  # 0 number, 1 product, 2 quotient, 3 product with parentheses
        if kind == 0:
            v = ri(1, hi)
            t = a = str(v)
        elif kind == 1:
            x, y = ri(2, fmax), ri(2, fmax)
            v, t, a = x * y, f"{x} \\times {y}", f"{x} * {y}"
            pre.append(f"${t} = {v}$")
        elif kind == 2:
            q, v = ri(2, fmax), ri(1, fmax)
            t, a = f"{q * v} \\div {q}", f"{q * v} / {q}"
            pre.append(f"${t} = {v}$")
        else:
            x, y, z, op = ri(2, fmax), ri(1, hi // 4), ri(1, hi // 4), ("+", "-")[rand() < 0.5]
            s = y + z if op == "+" else y - z
            v, t, a = x * s, f"{x} \\times ({y} {op} {z})", f"{x} * ({y} {op} {z})"
            shown = f"({s})" if s < 0 else str(s)
            pre.append(f"${y} {op} {z} = {s}$, so ${t} = {x} \\times {shown} = {v}$")
        sign = ("+", "-")[rand() < 0.5] if i else "+"
        tex.append(f"{sign} {t}" if i else t)
        plain.append(f"{sign} {a}" if i else a)
        values.append(v if sign == "+" else -v)
    steps = []
    if pre:
        steps.append("Parentheses, products and quotients come first: " + "; ".join(pre) + ".")
        flat = " ".join([str(values[0])] + [_signed(v) for v in values[1:]])
        steps.append(f"The expression becomes ${flat}$.")
    total, chain = values[0], []
    for v in values[1:]:
        chain.append(f"{total} {_signed(v)} = {total + v}")
        total += v
    steps.append("Add and subtract from left to right: $" + "$, $".join(chain) + "$.")
    answer = str(total)
    template = _pick(rng, _ARITH_TEMPLATES)
    question = template.format(" ".join(tex))
    return Generated(question, answer, _finish(steps, answer), {"expression": " ".join(plain)})


def _side(coef: int, const: int) -> str:
    # "3x - 5", "-x", "7", "0": one side of a linear equation.
    parts = []
    if coef:
        parts.append("x" if coef == 1 else "-x" if coef == -1 else f"{coef}x")
    if const or not parts:
        parts.append(_signed(const) if parts else str(const))
    return " ".join(parts)


_LINEAR_HI = {1: 9, 2: 12, 3: 20, 4: 30, 5: 50}


def _nonzero(rng: random.Random, hi: int, avoid: int = 0) -> int:
    while True:
        v = _ri(rng, -hi, hi)
        if v != 0 and v != avoid:
            return v


def linear(rng: random.Random, level: int) -> Generated:
    """Solve ``a x + b = c x + d``; integer solutions up to level 3, fractional ones possible above."""
    hi = _LINEAR_HI[level]
    if level == 1:
        a, c, x = _ri(rng, 2, 9), 0, _ri(rng, 0, 12)
        b = _ri(rng, 1, 20)
        d = a * x + b
    else:
        c = _ri(rng, 1, hi) if level == 2 else _nonzero(rng, hi)
        a = _ri(rng, 1, hi) if level == 2 else _nonzero(rng, hi)
        while a == c:
            a = _ri(rng, 1, hi) if level == 2 else _nonzero(rng, hi)
        b = _ri(rng, -hi, hi)
        if level <= 3:
            d = (a - c) * _ri(rng, -10, 10) + b
        else:
            d = _ri(rng, -3 * hi, 3 * hi)
    k, r = a - c, d - b
    answer = fmt_ratio(r, k)
    steps = []
    if c:
        steps.append(f"Collect the $x$-terms on the left side: ${_side(k, b)} = {d}$.")
    if b:
        steps.append(f"Move the constant to the right side: ${_side(k, 0)} = {d} {_signed(-b)} = {r}$.")
    if k != 1:
        num, den = (r, k) if k > 0 else (-r, -k)  # keep the shown denominator positive
        steps.append(f"Divide both sides by ${k}$: $x = \\frac{{{num}}}{{{den}}} = {answer}$.")
    question = f"Solve for $x$: ${_side(a, b)} = {_side(c, d)}$."
    return Generated(question, answer, _finish(steps, answer), {"a": a, "b": b, "c": c, "d": d})


_PRIMES = [p for p in range(2, 1000) if all(p % q for q in range(2, int(p**0.5) + 1))]
_MOD_KINDS = {1: ("rem",), 2: ("rem", "pow"), 3: ("pow", "inv"), 4: ("pow", "inv"), 5: ("pow", "inv")}
_POW_EXP = {2: (2, 8), 3: (10, 60), 4: (50, 500), 5: (500, 5000)}
_MOD_HI = {1: 12, 2: 13, 3: 30, 4: 100, 5: 1000}
_INV_MODULI = {lv: [p for p in _PRIMES if 5 <= p <= _MOD_HI[lv]] for lv in (3, 4)}


def modular(rng: random.Random, level: int) -> Generated:
    """Remainders, modular powers ``a^b mod m`` and modular inverses."""
    kind = _pick(rng, _MOD_KINDS[level])
    hi = _MOD_HI[level]
    steps: list[str] = []
    if kind == "rem":
        a, m = _ri(rng, 100, 10 ** (level + 2)), _ri(rng, 3, hi + 8 * level)
        ans, b = a % m, 0
        steps.append(f"Divide: ${a} = {m} \\times {a // m} + {ans}$ with $0 \\le {ans} < {m}$.")
        question = f"What is the remainder when ${a}$ is divided by ${m}$?"
    elif kind == "pow":
        m, a = _ri(rng, 5, hi), _ri(rng, 2, 50)
        b = _ri(rng, *_POW_EXP[level])
        ans, sq, used = pow(a, b, m), a % m, []
        squares = []
        for bit in range(b.bit_length()):
            squares.append(f"{a}^{{{1 << bit}}} \\equiv {sq}")
            if b >> bit & 1:
                used.append((1 << bit, sq))
            sq = sq * sq % m
        steps.append(f"Write ${b}$ in binary: ${b} = " + " + ".join(str(e) for e, _ in used) + "$.")
        steps.append(f"Square repeatedly modulo ${m}$: $" + ",\\ ".join(squares) + "$.")
        prod = " \\cdot ".join(str(v) for _, v in used)
        steps.append(f"Multiply the needed powers: ${a}^{{{b}}} \\equiv {prod} \\equiv {ans} \\pmod{{{m}}}$.")
        question = f"What is the remainder when ${a}^{{{b}}}$ is divided by ${m}$?"
    else:
        m = _pick(rng, _INV_MODULI[level]) if level < 5 else _ri(rng, 100, hi)
        a = _ri(rng, 2, m - 1)
        while gcd(a, m) != 1:
            a = _ri(rng, 2, m - 1)
        b = -1
        # Extended Euclid, tracking s, t with s*m + t*a equal to each remainder.
        x, y, s0, t0, s1, t1, euclid = m, a, 1, 0, 0, 1, []
        while y:
            q = x // y
            euclid.append(f"{x} = {q} \\times {y} + {x % y}")
            x, y, s0, t0, s1, t1 = y, x % y, s1, t1, s0 - q * s1, t0 - q * t1
        ans = t0 % m
        steps.append(f"Run the Euclidean algorithm on ${m}$ and ${a}$: $" + "$; $".join(euclid) + "$.")
        bezout = f"1 = {s0} \\times {m} {_signed(t0)} \\times {a}"
        steps.append(f"Back-substitution gives ${bezout}$, so $x \\equiv {t0} \\equiv {ans} \\pmod{{{m}}}$.")
        steps.append(f"Check: ${a} \\times {ans} = {a * ans} = {(a * ans) // m} \\times {m} + 1$.")
        question = f"Find the integer $x$ with $0 \\le x < {m}$ such that ${a}x \\equiv 1 \\pmod{{{m}}}$."
    answer = str(ans)
    return Generated(question, answer, _finish(steps, answer), {"kind": kind, "a": a, "b": b, "m": m})


_COUNT_KINDS = ("choose", "perm", "word")
_COUNT_N = {1: (4, 6), 2: (5, 9), 3: (7, 12), 4: (9, 16), 5: (12, 20)}
_CHOOSE = (
    "A club has {n} members. In how many ways can a committee of {k} members be chosen?",
    "In how many ways can {k} books be chosen from a shelf of {n} different books?",
)
_PERM = (
    "In how many ways can {k} of {n} different books be arranged in a row on a shelf?",
    "A race has {n} runners. In how many ways can the first {k} places be awarded (no ties)?",
)


def counting(rng: random.Random, level: int) -> Generated:
    """Combinations, ordered selections and arrangements of letters with repeats."""
    kind = _pick(rng, _COUNT_KINDS)
    n = _ri(rng, *_COUNT_N[level])
    k = _ri(rng, 2, min(n - 1, level + 2))
    falling = " \\times ".join(str(n - i) for i in range(k))
    steps: list[str] = []
    params: dict[str, Any] = {"kind": kind, "n": n, "k": k}
    if kind == "perm":
        ans = perm(n, k)
        steps.append(f"There are ${n}$ choices for the first position, ${n - 1}$ for the second, and so on.")
        steps.append(f"Multiply: ${falling} = {ans}$.")
        question = _pick(rng, _PERM).format(n=n, k=k)
    elif kind == "choose":
        ans = comb(n, k)
        steps.append(f"Ordered selections: ${falling} = {perm(n, k)}$.")
        kf = factorial(k)
        steps.append(f"Order does not matter, so divide by ${k}! = {kf}$: ${perm(n, k)} / {kf} = {ans}$.")
        question = _pick(rng, _CHOOSE).format(n=n, k=k)
    else:
        length = level + 3
        letters = _shuffle(rng, list("ABCDEGHKLMNPRST"), _ri(rng, 2, min(4, length - 1)))
        counts = dict.fromkeys(letters, 1)
        for _ in range(length - len(letters)):
            counts[_pick(rng, letters)] += 1
        chars = [ch for ch in letters for _ in range(counts[ch])]
        word = "".join(_shuffle(rng, chars))
        order = sorted(counts, key=word.index)  # describe letters in reading order
        repeated = [counts[ch] for ch in order if counts[ch] > 1]
        denom = prod(factorial(c) for c in repeated)
        ans = factorial(length) // denom
        described = ", ".join(f"{ch} appears {counts[ch]} time{'s' if counts[ch] > 1 else ''}" for ch in order)
        steps.append(f"{word} has ${length}$ letters: {described}.")
        total = factorial(length)
        steps.append(f"With all letters distinct there would be ${length}! = {total}$ arrangements.")
        shown = " \\cdot ".join(f"{c}!" for c in repeated)
        steps.append(f"Divide by ${shown} = {denom}$ for the repeated letters: ${total} / {denom} = {ans}$.")
        question = f"How many distinct arrangements of the letters in {word} are there?"
        params = {"kind": kind, "word": word}
    answer = str(ans)
    return Generated(question, answer, _finish(steps, answer), params)


_FRAC = {1: (2, 12), 2: (2, 12), 3: (3, 12), 4: (3, 20), 5: (4, 30)}


def fractions(rng: random.Random, level: int) -> Generated:
    """Sum and difference of proper fractions; the answer reduced."""
    count, dmax = _FRAC[level]
    same = _ri(rng, 3, dmax) if level == 1 else 0
    terms: list[tuple[int, int, int]] = []
    for i in range(count):
        q = same or _ri(rng, 2, dmax)
        p = _ri(rng, 1, q - 1)
        if gcd(p, q) != 1:
            p = 1  # keep the inputs reduced; 1/q always is
        terms.append((-1 if i and level > 1 and rng.random() < 0.5 else 1, p, q))

    def tex(s: int, p: int, q: int, first: bool) -> str:
        body = f"\\frac{{{p}}}{{{q}}}"
        return body if first else f"{'+' if s > 0 else '-'} {body}"

    expr = " ".join(tex(s, p, q, i == 0) for i, (s, p, q) in enumerate(terms))
    den = lcm(*(q for _, _, q in terms))
    nums = [s * p * (den // q) for s, p, q in terms]
    rewritten = " ".join(tex(1 if n > 0 else -1, abs(n), den, i == 0) for i, n in enumerate(nums))
    total = sum(nums)
    answer = fmt_ratio(total, den)
    steps = [f"The least common denominator is ${den}$, so the sum is ${rewritten}$."]
    steps.append(f"Combine the numerators: $\\frac{{{total}}}{{{den}}}$.")
    if gcd(total, den) != 1:
        steps.append(f"Reduce: $\\frac{{{total}}}{{{den}}} = {answer}$.")
    question = f"Compute ${expr}$. Give the answer as a reduced fraction or an integer."
    params = {"terms": [[s, p, q] for s, p, q in terms]}
    return Generated(question, answer, _finish(steps, answer), params)
