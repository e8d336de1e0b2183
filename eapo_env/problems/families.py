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
from fractions import Fraction
from math import comb, factorial, gcd, lcm, perm, prod
from typing import Any, NamedTuple

__all__ = ["Generated", "arithmetic", "counting", "fmt_number", "fractions", "linear", "modular"]


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
    if q.denominator == 1:
        return str(q.numerator)
    sign = "-" if q < 0 else ""
    return f"{sign}\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


def _signed(v: int) -> str:
    # "+ 5" / "- 5": how a term after the first is written.
    return f"+ {v}" if v >= 0 else f"- {-v}"


def _finish(steps: list[str], answer: str) -> str:
    steps.append(f"The answer is \\boxed{{{answer}}}.")
    return "\n".join(steps)


# level -> (number of terms, largest plain operand, term kinds allowed, largest factor)
_ARITH = {1: (3, 20, 1, 9), 2: (3, 30, 2, 9), 3: (4, 50, 3, 12), 4: (5, 100, 4, 15), 5: (6, 200, 4, 20)}


def arithmetic(rng: random.Random, level: int) -> Generated:
    """Integer expression with +, -, ×, exact ÷ and (from level 4) parentheses."""
    n_terms, hi, n_kinds, fmax = _ARITH[level]
    ri = rng.randint
    tex: list[str] = []
    plain: list[str] = []
    values: list[int] = []
    pre: list[str] = []
    for i in range(n_terms):
        kind = rng.randrange(n_kinds)  # 0 number, 1 product, 2 quotient, 3 product with parentheses
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
            x, y, z, op = ri(2, fmax), ri(1, hi // 4), ri(1, hi // 4), rng.choice("+-")
            s = y + z if op == "+" else y - z
            v, t, a = x * s, f"{x} \\times ({y} {op} {z})", f"{x} * ({y} {op} {z})"
            shown = f"({s})" if s < 0 else str(s)
            pre.append(f"${y} {op} {z} = {s}$, so ${t} = {x} \\times {shown} = {v}$")
        sign = rng.choice("+-") if i else "+"
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
    template = rng.choice(("Compute ${}$.", "Evaluate ${}$.", "What is the value of ${}$?"))
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
        v = rng.randint(-hi, hi)
        if v != 0 and v != avoid:
            return v


def linear(rng: random.Random, level: int) -> Generated:
    """Solve ``a x + b = c x + d``; integer solutions up to level 3, fractional ones possible above."""
    hi = _LINEAR_HI[level]
    if level == 1:
        a, c, x = rng.randint(2, 9), 0, rng.randint(0, 12)
        b = rng.randint(1, 20)
        d = a * x + b
    else:
        c = rng.randint(1, hi) if level == 2 else _nonzero(rng, hi)
        a = rng.randint(1, hi) if level == 2 else _nonzero(rng, hi)
        while a == c:
            a = rng.randint(1, hi) if level == 2 else _nonzero(rng, hi)
        b = rng.randint(-hi, hi)
        if level <= 3:
            d = (a - c) * rng.randint(-10, 10) + b
        else:
            d = rng.randint(-3 * hi, 3 * hi)
    k, r = a - c, d - b
    sol = Fraction(r, k)
    answer = fmt_number(sol)
    steps = []
    if c:
        steps.append(f"Collect the $x$-terms on the left side: ${_side(k, b)} = {d}$.")
    if b:
        steps.append(f"Move the constant to the right side: ${_side(k, 0)} = {d} {_signed(-b)} = {r}$.")
    if k != 1:
        steps.append(f"Divide both sides by ${k}$: $x = \\frac{{{r}}}{{{k}}} = {answer}$.")
    question = f"Solve for $x$: ${_side(a, b)} = {_side(c, d)}$."
    return Generated(question, answer, _finish(steps, answer), {"a": a, "b": b, "c": c, "d": d})


_PRIMES = [p for p in range(2, 1000) if all(p % q for q in range(2, int(p**0.5) + 1))]
_MOD_KINDS = {1: ("rem",), 2: ("rem", "pow"), 3: ("pow", "inv"), 4: ("pow", "inv"), 5: ("pow", "inv")}
_POW_EXP = {2: (2, 8), 3: (10, 60), 4: (50, 500), 5: (500, 5000)}
_MOD_HI = {1: 12, 2: 13, 3: 30, 4: 100, 5: 1000}
_INV_MODULI = {lv: [p for p in _PRIMES if 5 <= p <= _MOD_HI[lv]] for lv in (3, 4)}


def modular(rng: random.Random, level: int) -> Generated:
    """Remainders, modular powers ``a^b mod m`` and modular inverses."""
    kind = rng.choice(_MOD_KINDS[level])
    hi = _MOD_HI[level]
    steps: list[str] = []
    if kind == "rem":
        a, m = rng.randint(100, 10 ** (level + 2)), rng.randint(3, hi + 8 * level)
        ans, b = a % m, 0
        steps.append(f"Divide: ${a} = {m} \\times {a // m} + {ans}$ with $0 \\le {ans} < {m}$.")
        question = f"What is the remainder when ${a}$ is divided by ${m}$?"
    elif kind == "pow":
        m, a = rng.randint(5, hi), rng.randint(2, 50)
        b = rng.randint(*_POW_EXP[level])
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
        m = rng.choice(_INV_MODULI[level]) if level < 5 else rng.randint(100, hi)
        a = rng.randint(2, m - 1)
        while gcd(a, m) != 1:
            a = rng.randint(2, m - 1)
        ans, b = pow(a, -1, m), -1
        x, y, euclid = m, a, []
        while y:
            euclid.append(f"{x} = {x // y} \\times {y} + {x % y}")
            x, y = y, x % y
        steps.append(f"Run the Euclidean algorithm on ${m}$ and ${a}$: $" + "$; $".join(euclid) + "$.")
        steps.append(f"Back-substitution writes $1$ as a combination of ${a}$ and ${m}$, giving $x \\equiv {ans}$.")
        steps.append(f"Check: ${a} \\times {ans} = {a * ans} = {(a * ans) // m} \\times {m} + 1$.")
        question = (
            f"Find the integer $x$ with $0 \\le x < {m}$ such that ${a}x \\equiv 1 \\pmod{{{m}}}$."
        )
    answer = str(ans)
    return Generated(question, answer, _finish(steps, answer), {"kind": kind, "a": a, "b": b, "m": m})


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
    kind = rng.choice(("choose", "perm", "word"))
    n = rng.randint(*_COUNT_N[level])
    k = rng.randint(2, min(n - 1, level + 2))
    falling = " \\times ".join(str(n - i) for i in range(k))
    steps: list[str] = []
    params: dict[str, Any] = {"kind": kind, "n": n, "k": k}
    if kind == "perm":
        ans = perm(n, k)
        steps.append(f"There are ${n}$ choices for the first position, ${n - 1}$ for the second, and so on.")
        steps.append(f"Multiply: ${falling} = {ans}$.")
        question = rng.choice(_PERM).format(n=n, k=k)
    elif kind == "choose":
        ans = comb(n, k)
        steps.append(f"Ordered selections: ${falling} = {perm(n, k)}$.")
        steps.append(f"Order does not matter, so divide by ${k}! = {factorial(k)}$: ${perm(n, k)} / {factorial(k)} = {ans}$.")
        question = rng.choice(_CHOOSE).format(n=n, k=k)
    else:
        length = level + 3
        letters = rng.sample("ABCDEGHKLMNPRST", rng.randint(2, min(4, length - 1)))
        counts = dict.fromkeys(letters, 1)
        for _ in range(length - len(letters)):
            counts[rng.choice(letters)] += 1
        chars = [ch for ch in letters for _ in range(counts[ch])]
        rng.shuffle(chars)
        word = "".join(chars)
        repeated = [c for c in counts.values() if c > 1]
        denom = prod(factorial(c) for c in repeated)
        ans = factorial(length) // denom
        described = ", ".join(f"{ch} appears {c} time{'s' if c > 1 else ''}" for ch, c in counts.items())
        steps.append(f"The word has ${length}$ letters: {described}.")
        steps.append(f"With all letters distinct there would be ${length}! = {factorial(length)}$ arrangements.")
        shown = " \\cdot ".join(f"{c}!" for c in repeated)
        steps.append(f"Divide by ${shown} = {denom}$ for the repeated letters: ${factorial(length)} / {denom} = {ans}$.")
        question = f"How many distinct arrangements of the letters of the word {word} are there?"
        params = {"kind": kind, "word": word}
    answer = str(ans)
    return Generated(question, answer, _finish(steps, answer), params)


_FRAC = {1: (2, 12), 2: (2, 12), 3: (3, 12), 4: (3, 20), 5: (4, 30)}


def fractions(rng: random.Random, level: int) -> Generated:
    """Sum and difference of proper fractions; the answer reduced."""
    count, dmax = _FRAC[level]
    same = rng.randint(3, dmax) if level == 1 else 0
    terms: list[tuple[int, int, int]] = []
    for i in range(count):
        q = same or rng.randint(2, dmax)
        p = rng.randint(1, q - 1)
        if gcd(p, q) != 1:
            p = 1  # keep the inputs reduced; 1/q always is
        terms.append((-1 if i and level > 1 and rng.random() < 0.5 else 1, p, q))
    total = sum((Fraction(s * p, q) for s, p, q in terms), Fraction(0))
    answer = fmt_number(total)

    def tex(s: int, p: int, q: int, first: bool) -> str:
        body = f"\\frac{{{p}}}{{{q}}}"
        return body if first else f"{'+' if s > 0 else '-'} {body}"

    expr = " ".join(tex(s, p, q, i == 0) for i, (s, p, q) in enumerate(terms))
    den = lcm(*(q for _, _, q in terms))
    nums = [s * p * (den // q) for s, p, q in terms]
    rewritten = " ".join(tex(1 if n > 0 else -1, abs(n), den, i == 0) for i, n in enumerate(nums))
    steps = [f"The least common denominator is ${den}$, so the sum is ${rewritten}$."]
    steps.append(f"Combine the numerators: $\\frac{{{sum(nums)}}}{{{den}}}$.")
    if gcd(sum(nums), den) != 1:
        steps.append(f"Reduce: $\\frac{{{sum(nums)}}}{{{den}}} = {answer}$.")
    question = f"Compute ${expr}$. Give the answer as a reduced fraction or an integer."
    params = {"terms": [[s, p, q] for s, p, q in terms]}
    return Generated(question, answer, _finish(steps, answer), params)
