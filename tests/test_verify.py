"""Behaviour of eapo_env.verify: statuses on a labelled table, extraction, F1, properties."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo_env.verify import VERDICT_STATUSES, Verdict, clean_answer, extract_answer, f1_score, verify

C, N, U, E = "correct", "incorrect", "unparseable", "error"

CASES = [
    # integers: separators, leading zeros, signs
    ("204", "204", C),
    ("1,000", "1000", C),
    ("1\\,000", "1000", C),
    ("1{,}000", "1000", C),
    ("007", "7", C),
    ("\u22125", "-5", C),
    ("+5", "5", C),
    ("-0", "0", C),
    ("1,00", "100", N),
    ("100000001", "100000000", N),
    ("-5", "5", N),
    ("10^6", "1000000", C),
    # decimals (rounded decimals with >= 6 digits are accepted, as math-verify)
    ("0.5", "\\frac{1}{2}", C),
    ("1.50", "1.5", C),
    ("204.0", "204", C),
    ("5.0001", "5", N),
    ("0.333333", "\\frac{1}{3}", C),
    ("0.33", "\\frac{1}{3}", N),
    ("0.666666", "\\frac23", N),
    ("3.141593", "\\pi", C),
    ("3.14", "\\pi", N),
    ("1e3", "1000", C),
    # fractions
    ("\\dfrac{3}{4}", "\\frac34", C),
    ("\\tfrac{3}{4}", "0.75", C),
    ("6/8", "\\frac{3}{4}", C),
    ("-\\frac{1}{2}", "\\frac{-1}{2}", C),
    ("1\\frac{1}{2}", "\\frac{3}{2}", C),
    ("\\frac{4}{3}", "\\frac{3}{4}", N),
    ("\\frac{1}{0}", "1", N),
    # percentages (math-verify-compatible: 50% matches 50 and 0.5)
    ("50\\%", "50", C),
    ("50\\%", "0.5", C),
    ("0.5", "50\\%", C),
    ("50\\%", "5", N),
    # radicals, pi, binomials, factorials, powers
    ("2\\sqrt{2}", "\\sqrt{8}", C),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", C),
    ("\\sqrt[3]{8}", "2", C),
    ("2\\sqrt{3}", "3\\sqrt{2}", N),
    ("3+2\\sqrt{2}", "(1+\\sqrt{2})^2", C),
    ("\\pi/2", "\\frac{\\pi}{2}", C),
    ("4\\pi", "2\\pi", N),
    ("\\frac{\\pi}{2}", "90", N),
    ("\\binom{5}{2}", "10", C),
    ("\\binom{5}{2}", "20", N),
    ("5!", "120", C),
    ("4!", "20", N),
    ("\\frac{10!}{8!}", "90", C),
    ("2^{10}", "1024", C),
    ("2^{10}", "1000", N),
    ("-2^2", "-4", C),
    # assignments and units
    ("x=7", "7", C),
    ("7", "x = 7", C),
    ("y=7", "x=7", N),
    ("5\\text{ cm}", "5", C),
    ("30^{\\circ}", "30", C),
    ("30\u00b0", "30", C),
    ("30 degrees", "30", C),
    ("7 apples", "7", C),
    ("12\\mbox{ inches}", "12", C),
    ("8 cm", "7", N),
    # expressions, functions, tuples, sets, intervals, choices
    ("x^2+2x+1", "(x+1)^2", C),
    ("x^2", "x^3", N),
    ("|x|", "x", N),
    ("\\sin^2 x+\\cos^2 x", "1", C),
    ("\\log_2 8", "3", C),
    ("\\ln(e^2)", "2", C),
    ("\\tan(\\pi/4)", "1", C),
    ("-\\infty", "\\infty", N),
    ("(1,2)", "(1, 2)", C),
    ("(2,1)", "(1,2)", N),
    ("\\{1,2\\}", "\\{2,1\\}", C),
    ("[1,2]", "[1,2)", N),
    ("\\text{(A)}", "A", C),
    ("B", "A", N),
    # junk is unparseable, never a crash
    ("", "5", U),
    ("   ", "5", U),
    ("asdf", "5", U),
    ("None", "5", U),
    ("\\boxed{", "5", U),
    ("\\frac{", "5", U),
    ("((((", "5", U),
    ("5/", "5", U),
    ("\\boxed{}", "5", U),
    ("<answer></answer>", "5", U),
    ("\\sqrt", "2", U),
    ("==", "5", U),
    # a gold outside the grammar is the data's fault
    ("5", "\\frac{", E),
    ("5", "", E),
]


@pytest.mark.parametrize(("prediction", "gold", "status"), CASES)
def test_table(prediction: str, gold: str, status: str) -> None:
    v = verify(prediction, gold)
    assert v.status == status
    assert v.score == (1.0 if status == C else 0.0)


@pytest.mark.parametrize(("table", "min_rows"), [("verify_table.jsonl", 150), ("verify_forms.jsonl", 60)])
def test_benchmark_table_labels(table: str, min_rows: int) -> None:
    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "data", table)
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert len(rows) >= min_rows
    wrong = [r for r in rows if verify(r["prediction"], r["gold"]).correct != r["label"]]
    assert wrong == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reasoning <answer> 42 </answer> tail", "42"),
        ("<answer>1</answer><answer>2</answer>", "1"),
        ("<answer>so \\boxed{7}</answer>", "7"),
        ("\\boxed{1} and then \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{4} then \\boxed{", "4"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\fbox{9}", "9"),
        ("\\boxed 5$", "5"),
        ("no marked answer", None),
        ("<answer> unclosed", None),
        ("\\boxed{", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The answer is $x = \\dfrac{3}{4}$.", ("\\frac{3}{4}", "x")),
        ("Answer: 5", ("5", None)),
        ("final answer: \\(12\\)", ("12", None)),
        ("\\[ 30^{\\circ} \\]", ("30", None)),
        ("\\left( 1, 2 \\right)", ("( 1, 2 )", None)),
        ("5\\text{ cm}", ("5", None)),
        ("$5", ("5", None)),
    ],
)
def test_clean_answer(raw: str, expected: tuple[str, str | None]) -> None:
    assert clean_answer(raw) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "f1"),
    [
        ("The Eiffel Tower", "eiffel tower", 1.0),
        ("Paris, France", "Paris", 2 / 3),
        ("cat", "dog", 0.0),
        ("", "", 1.0),
        ("", "x", 0.0),
        ("a the an", "", 1.0),  # only articles: both normalise to nothing
    ],
)
def test_f1(pred: str, gold: str, f1: float) -> None:
    assert f1_score(pred, gold) == pytest.approx(f1)


def test_text_answers() -> None:
    assert verify("<answer>The Eiffel Tower.</answer>", "Eiffel Tower", answer_type="text") == Verdict("correct", 1.0)
    partial = verify("Paris, France", "Paris", answer_type="text")
    assert partial.status == "incorrect" and partial.score == pytest.approx(2 / 3)
    assert verify("tower eiffel", "eiffel tower", answer_type="text").status == "incorrect"


def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        verify(5, "5")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify("5", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify("5", "5", answer_type="code")
    with pytest.raises(ValueError):
        Verdict("maybe", 0.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_integers_match_themselves_only(n: int) -> None:
    assert verify(str(n), str(n)).status == "correct"
    assert verify(f"\\boxed{{{n}}}", f"{n:,}").status == "correct"
    assert verify(str(n + 1), str(n)).status == "incorrect"


@settings(max_examples=200, deadline=None)
@given(st.integers(-1000, 1000), st.integers(1, 1000), st.integers(1, 50))
def test_fractions_match_fraction_equivalents(a: int, b: int, k: int) -> None:
    q = Fraction(a, b)
    assert verify(f"{a * k}/{b * k}", str(q)).correct
    assert verify(f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{q.numerator}}}{{{q.denominator}}}").correct
    assert verify(f"\\frac{{{a}}}{{{b}}}", str(q + Fraction(1, 7))).status == "incorrect"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.text(max_size=60))
def test_never_raises_on_text(prediction: str, gold: str) -> None:
    for answer_type in ("math", "text"):
        v = verify(prediction, gold, answer_type=answer_type, timeout_s=0.5)
        assert v.status in VERDICT_STATUSES
        assert 0.0 <= v.score <= 1.0
        assert (v.score == 1.0) == v.correct or answer_type == "text"


_MATHY = st.lists(
    st.sampled_from(list("0123456789+-*/^()[]{},.=!%xy ") + ["\\frac", "\\sqrt", "\\pi", "\\boxed{"]), max_size=30
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_MATHY, _MATHY)
def test_never_raises_on_math_like_text(prediction: str, gold: str) -> None:
    assert verify(prediction, gold, timeout_s=0.5).status in VERDICT_STATUSES


_ANSWERS = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        [
            "007",
            "-0",
            " 12 ",
            "1,000",
            "0.5",
            "0.333333",
            "50\\%",
            "\\frac{1}{2}",
            "x = 7",
            "12.0",
            "\u00b2",
            "-",
            "",
            "1e3",
            "\\boxed{12}",
            "<answer>12</answer>",
            "9" * 450,
        ]
    ),
    _MATHY,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ANSWERS, _ANSWERS), max_size=12))
def test_verify_many_equals_verify_pair_by_pair(pairs: list[tuple[str, str]]) -> None:
    from eapo_env.verify import verify_many, warm_up

    warm_up()  # a cold sympy worker turns a call into `timeout` (its budget includes start-up): not logic
    predictions, golds = [p for p, _ in pairs], [g for _, g in pairs]
    batched = verify_many(predictions, golds, timeout_s=0.5)
    one_by_one = [verify(p, g, timeout_s=0.5) for p, g in pairs]
    assert len(batched) == len(one_by_one)
    for p, g, a, b in zip(predictions, golds, batched, one_by_one):
        # equal verdicts, except that a wall-clock budget may run out in one call and not the other (a
        # loaded machine); a wrong decision is never excused
        assert a == b or "timeout" in (a.status, b.status), (p, g, a, b)
