"""Property tests of verify (issue 11): no false positive on different values, formatting
invariance, symmetry where equality is symmetric.

Values are fractions with denominators up to 1000, so two different values differ by more than
1e-6: more than the rounding tolerance of any decimal (which needs six digits, i.e. 5e-7), and
``correct`` on different values would be a real false positive.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eapo_env.testing.answers import fractions, latex, renderings, structure, structure_kinds
from eapo_env.verify import verify

FRAC = "\\frac"
# the strategies live in eapo_env.testing.answers (one copy, for users too)
_FRACS = fractions()
_latex = latex
_structure = structure


@settings(max_examples=300, deadline=None)
@given(_FRACS, _FRACS, st.data())
def test_different_numbers_are_never_correct(a: Fraction, b: Fraction, data: st.DataObject) -> None:
    assume(a != b)
    p, g = data.draw(renderings(a)), data.draw(renderings(b))
    assert not verify(p, g).correct, (p, g)


@settings(max_examples=300, deadline=None)
@given(_FRACS, st.data())
def test_same_number_in_any_format_is_correct(a: Fraction, data: st.DataObject) -> None:
    p, g = data.draw(renderings(a)), data.draw(renderings(a))
    assert verify(p, g).correct, (p, g)


_KINDS = structure_kinds()


@settings(max_examples=200, deadline=None)
@given(_KINDS, st.lists(_FRACS, min_size=2, max_size=4), st.integers(0, 3), _FRACS, st.data())
def test_structures_with_one_different_value_are_never_correct(
    kind: str, values: list[Fraction], k: int, other: Fraction, data: st.DataObject
) -> None:
    k %= 2 if kind == "interval" else len(values)
    assume(other not in values)
    changed = values[:k] + [other] + values[k + 1 :]
    fmt = data.draw(st.sampled_from(["\\frac", "\\dfrac", "\\cfrac"]))
    p = _structure(kind, changed, data.draw(st.booleans()), fmt)
    g = _structure(kind, values, data.draw(st.booleans()), fmt)
    assert not verify(p, g).correct, (p, g)


@settings(max_examples=200, deadline=None)
@given(_KINDS, st.lists(_FRACS, min_size=2, max_size=4), st.booleans(), st.booleans(), st.data())
def test_structures_survive_formatting(
    kind: str, values: list[Fraction], sp1: bool, sp2: bool, data: st.DataObject
) -> None:
    """Spaces, ``\\left``/``\\right`` and ``\\frac``/``\\dfrac``/``\\cfrac`` never change a verdict."""
    f1 = data.draw(st.sampled_from(["\\frac", "\\dfrac", "\\cfrac"]))
    f2 = data.draw(st.sampled_from(["\\frac", "\\dfrac"]))
    p, g = _structure(kind, values, sp1, f1), _structure(kind, values, sp2, f2)
    assert verify(p, g).correct, (p, g)


@settings(max_examples=200, deadline=None)
@given(_KINDS, st.lists(_FRACS, min_size=2, max_size=3), st.lists(_FRACS, min_size=2, max_size=3), st.booleans())
def test_symmetric_forms_give_symmetric_verdicts(kind: str, a: list[Fraction], b: list[Fraction], same: bool) -> None:
    if same:
        b = list(reversed(a)) if kind in ("set", "list") else list(a)
    p, g = _structure(kind, a, False, "\\frac"), _structure(kind, b, True, "\\dfrac")
    assert verify(p, g).correct == verify(g, p).correct, (p, g)
    if same:
        assert verify(p, g).correct, (p, g)


@settings(max_examples=200, deadline=None)
@given(_FRACS, _FRACS, st.sampled_from(["<", "\\le", ">", "\\geq", "="]))
def test_relations_with_different_bounds_are_never_correct(a: Fraction, b: Fraction, op: str) -> None:
    assume(a != b)
    la, lb = _latex(a, "\\frac", False), _latex(b, "\\dfrac", True)
    p, g = f"x {op} {la}", f"x {op} {lb}"
    assert not verify(p, g).correct, (p, g)
    assert verify(p, f"{_latex(a, FRAC, True)} {_mirror(op)} x").correct, p


def _mirror(op: str) -> str:
    return {"<": ">", "\\le": "\\ge", ">": "<", "\\geq": "\\leq", "=": "="}[op]


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 50), st.integers(1, 40), st.integers(1, 40), st.integers(2, 30), st.integers(1, 9))
def test_equal_radicals_and_powers_pass_the_float_screen(a: int, m: int, n: int, b: int, k: int) -> None:
    """Equal values in forms that round differently in double precision are still ``correct``."""
    assert verify(f"{a}^{{{m}}} \\cdot {a}^{{{n}}}", f"{a}^{{{m + n}}}").correct
    assert verify(f"\\sqrt{{{k * k * b}}}", f"{k}\\sqrt{{{b}}}").correct
    assert verify(f"\\frac{{{k}\\pi}}{{{b}}}", f"\\frac{{{k}}}{{{b}}}\\pi").correct
    assert not verify(f"\\sqrt{{{k * k * b + 1}}}", f"{k}\\sqrt{{{b}}}").correct
