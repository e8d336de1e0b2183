"""Hypothesis strategies for math answers: one value, written the many ways a policy or a dataset writes it.

Used by the verifier's property tests (no false positive on different values, formatting invariance,
symmetry). Values are fractions with denominators up to 1000, so two different values differ by more
than 1e-6: more than the rounding tolerance of any decimal (which needs six digits, i.e. 5e-7), and a
``correct`` verdict on different values would be a real false positive.

Example:
    >>> from fractions import Fraction
    >>> latex(Fraction(-3, 4), "\\\\dfrac", spaced=False)
    '-\\\\dfrac{3}{4}'
    >>> decimal(Fraction(1, 8)), decimal(Fraction(1, 3))
    ('0.125', None)
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

#: The fraction commands a rendering may use.
FRACTION_COMMANDS = ("\\frac", "\\dfrac", "\\cfrac", "\\tfrac")
#: The kinds of structured answers :func:`structure` writes.
STRUCTURE_KINDS = ("tuple", "interval", "set", "matrix", "list")
#: Wrappers around an answer's text (``{}`` is the text).
ANSWER_WRAPS = (
    "{}",
    "\\boxed{{{}}}",
    "${}$",
    "<answer>{}</answer>",
    "x = {}",
    "The final answer is ${}$.",
    "\\left( {} \\right)",
)


def fractions(max_numerator: int = 999, max_denominator: int = 1000) -> st.SearchStrategy[Fraction]:
    """Fractions ``n/d`` with ``|n| <= max_numerator`` and ``1 <= d <= max_denominator``."""
    return st.builds(Fraction, st.integers(-max_numerator, max_numerator), st.integers(1, max_denominator))


def decimal(q: Fraction) -> str | None:
    """The exact decimal form of ``q`` if it terminates in at most 5 digits."""
    for digits in range(6):
        scaled = q * 10**digits
        if scaled.denominator == 1:
            text = f"{abs(scaled.numerator):0{digits + 1}d}"
            body = text if digits == 0 else f"{text[:-digits]}.{text[-digits:]}"
            return ("-" if q < 0 else "") + body
    return None


def latex(q: Fraction, frac: str, spaced: bool) -> str:
    """``q`` in LaTeX with the fraction command ``frac`` (an integer stays an integer)."""
    sp = " " if spaced else ""
    if q.denominator == 1:
        return str(q.numerator)
    sign = "-" if q < 0 else ""
    return f"{sign}{frac}{sp}{{{sp}{abs(q.numerator)}{sp}}}{sp}{{{q.denominator}}}"


@st.composite
def renderings(draw: st.DrawFn, q: Fraction) -> str:
    """One way a policy or a dataset may write the number ``q``: LaTeX, ``a/b`` or a decimal, in a wrap."""
    kind = draw(st.sampled_from(["latex", "slash", "decimal"]))
    text = decimal(q) if kind == "decimal" else None
    if text is None and kind == "slash":
        text = f"{q.numerator}/{q.denominator}" if q.denominator != 1 else str(q.numerator)
    if text is None:
        text = latex(q, draw(st.sampled_from(FRACTION_COMMANDS)), draw(st.booleans()))
    return draw(st.sampled_from(ANSWER_WRAPS)).format(text)


def structure(kind: str, values: list[Fraction], spaced: bool, frac: str) -> str:
    """``values`` as a structured answer of ``kind`` (:data:`STRUCTURE_KINDS`)."""
    items = [latex(v, frac, spaced) for v in values]
    sep = " , " if spaced else ","
    left, right = ("\\left", "\\right") if spaced else ("", "")
    if kind == "tuple":
        return f"{left}({sep.join(items)}{right})"
    if kind == "interval":
        return f"{left}[{sep.join(items[:2])}{right})"
    if kind == "set":
        return f"\\{{{sep.join(items)}\\}}"
    if kind == "matrix":
        return "\\begin{pmatrix}" + " \\\\ ".join(f"{x} & {x}" for x in items) + "\\end{pmatrix}"
    return (" ,  " if spaced else ", ").join(items)  # a bare list: "1,22" would be a decimal comma


def structure_kinds() -> st.SearchStrategy[str]:
    """One of :data:`STRUCTURE_KINDS`."""
    return st.sampled_from(STRUCTURE_KINDS)
