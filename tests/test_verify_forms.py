"""MATH-style answer forms: one table of our own cases per form (issue 11), and the options.

The categories follow Math-Verify's public suite (prose final answers, several boxes, lists,
labels, chains, intervals, matrices, units, relations, decimal comma, rounding, ``\\pm``); the
cases are written here. Every ``incorrect`` row is a near miss a policy could write.
"""

from __future__ import annotations

import pytest

from eapo_env.verify import VerifyOptions, verify

C, N, U = "correct", "incorrect", "unparseable"

FORMS: dict[str, list[tuple[str, str, str]]] = {
    "prose final answer": [
        ("Final Answer: The number of apples is 17.", "17", C),
        ("After simplifying we see that the area is 45 square units.", "45", C),
        ("The final answer is $\\frac{2}{5}$. I hope it is correct.", "\\frac25", C),
        ("The final answer is 41. I hope it is correct.", "14", N),
        ("So the total is 12 dollars. <|im_start|>user What is 13 + 1?", "12", C),
        ("Result $ \n 8 \n $", "8", U),  # an inline formula cannot span lines
        ("QX7B", "7", N),  # a digit glued to letters is no number
        ("so the volume is 2,25 liters", "2.25", C),
        ("I could not solve it.", "3", U),
    ],
    "several boxed (prediction)": [
        ("First guess \\boxed{3}. Final Answer: The final answer is $5$.", "5", C),
        ("First guess \\boxed{3}. Final Answer: The final answer is $5$.", "3", N),
        ("\\boxed{2} and \\boxed{-3}", "\\{-3, 2\\}", C),
        ("\\boxed{2} and \\boxed{-3}", "2", N),  # listing extra answers is never rewarded
        ("\\boxed{4} is wrong.\n\nRedo: the answer is \\boxed{6}", "6", C),
        ("\\boxed{4} and then \\boxed{6}", "6", C),
        ("\\boxed{(1, 4)} \\quad \\text{and} \\quad \\boxed{(4, 1)}", "(4, 1), (1, 4)", C),
    ],
    "several boxed (gold)": [
        ("3, 8", "\\boxed{8} and \\boxed{3}", C),
        ("8", "\\boxed{8} and \\boxed{3}", N),
        ("\\boxed{3}, \\boxed{8}", "$\\boxed{8}\\boxed{3}$", C),
    ],
    "multi-answer list": [
        ("-1; 4", "4, -1", C),
        ("2 or 7", "7, 2", C),
        ("5, 6, and 9", "9, 6, 5", C),
        ("(1,2), (2,1), (1,2)", "(2,1), (1,2)", C),
        ("(1,2), (2,1)", "(1,2)", N),
        ("(1;2;3)", "(1,2,3)", C),
        ("5, 6, and 9", "5, 6, 8", N),
    ],
    "thousands separator": [
        ("32, 349", "32349", N),
        ("32,349", "32349", C),
        ("12,000,023", "12000023", C),
        ("32,\\! 349", "32349", C),
        ("14{,}916", "14916", C),
        ("1 000", "1000", C),
        ("0,111", "111", N),
    ],
    "labelled answer": [
        ("(a, b) = (4, 9)", "(4, 9)", C),
        ("(4, 9)", "(a,b)=(4,9)", C),
        ("|PQ| = 5", "5", C),
        ("5", "|PQ| = 5", C),
        ("g(t) = 3", "3", C),
        ("m = 2, n = 7", "n = 7, m = 2", C),
        ("m = 2, n = 7", "m = 7, n = 2", N),
        ("2:5", "P:Q = 2:5", C),
        ("2:5", "5:2", N),
        ("3", "2a + b = 3", N),
        ("y = 7", "x = 7", N),
        ("\\frac{AD}{DB} = \\frac{1}{3}", "\\frac13", C),
    ],
    "chain / approximation": [
        ("y = 2+3 = 5", "5", C),
        ("r \\approx 4", "4", C),
        ("x = \\frac{2}{3} \\approx 0.67", "\\frac23", C),
        ("x = 4 = 6", "4", N),
        ("t = 3 + 4 = 7", "t = 7", C),
        ("\\frac{2}{3} \\approx 0.7", "0.7", N),
    ],
    "interval / set": [
        ("(-\\infty, 2) \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)", C),
        ("(-\\infty, 2] \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2)", N),
        ("x \\in [1, 5]", "[1,5]", C),
        ("[1, 5]", "1 \\le x \\le 5", C),
        ("(2, \\infty)", "x > 2", C),
        ("[1,5)", "1 \\le x \\le 5", N),
        ("1 \\le x \\le 5", "[1,5]", N),
        ("x > 2", "(2, \\infty)", N),
        ("\\emptyset", "\\{\\}", C),
        ("\\{1, 2\\}", "\\{1, 2, 3\\}", N),
        ("[-2, -1) \\cup (1, 2]", "1 < |z| \\le 2", C),
        ("[-2, -1] \\cup [1, 2]", "1 < |z| \\le 2", N),
    ],
    "matrix": [
        ("\\begin{bmatrix}1 & 2\\\\ 3 & 4\\end{bmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", C),
        ("\\left[\\begin{array}{cc}1 & 2\\\\ 3 & 4\\end{array}\\right]", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", C),
        ("\\begin{pmatrix}1 & 2\\\\ 3 & 5\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", N),
        ("\\begin{pmatrix}1 & 2 & 3\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}", N),
        ("2\\begin{pmatrix}1 & 0\\\\ 0 & 1\\end{pmatrix}", "\\begin{pmatrix}2&0\\\\0&2\\end{pmatrix}", C),
        (
            "\\begin{pmatrix}1 & 1\\\\ 0 & 1\\end{pmatrix}\\begin{pmatrix}1 & 1\\\\ 0 & 1\\end{pmatrix}",
            "\\begin{pmatrix}1&2\\\\0&1\\end{pmatrix}",
            C,
        ),
        ("\\begin{pmatrix}\\frac{1}{2}\\\\ -1\\end{pmatrix}", "\\begin{pmatrix}0.5\\\\-1\\end{pmatrix}", C),
    ],
    "units / words / percent": [
        ("$45$ percent", "45\\%", C),
        ("$9$ meters", "9", C),
        ("\\boxed{12 pct}", "12\\%", C),
        ("$9$ meters", "8", N),
        ("\\boxed{125\\textnormal{ km}}", "125", C),
        ("\\frac{1}{4} \\textbf{hours}", "0.25", C),
    ],
    "equivalent relation": [
        ("3x - 6 = 0", "x - 2 = 0", C),
        ("-2y \\le 4", "y \\ge -2", C),
        ("y \\le -2", "y \\ge -2", N),
        ("x + y = 1", "x - y = 1", N),
        ("y = 3x", "3x - y = 0", C),
        ("a < 1", "-a > -1", C),
        ("a < 1", "a > -1", N),
        ("x^2 + y^2 = 4", "\\frac{x^2}{4} + \\frac{y^2}{4} = 1", C),
        ("x \\ne 3", "3 \\neq x", C),
    ],
    "decimal comma": [("3,75", "3.75", C), ("0,25", "\\frac14", C), ("1,5", "1.5", N), ("1000,25", "1000.25", C)],
    "\\cfrac / \\dfrac": [
        ("\\cfrac{3}{4}", "0.75", C),
        ("\\dfrac{3}{4}", "\\cfrac{6}{8}", C),
        ("\\cfrac{3}{5}", "0.75", N),
    ],
    "\\pm": [
        ("2 \\pm \\sqrt{3}", "\\{2+\\sqrt3, 2-\\sqrt3\\}", C),
        ("\\pm 5", "5", N),
        ("\\pm 5", "-5, 5", C),
        ("\\{1 \\pm \\sqrt{2}, 0\\}", "0, 1+\\sqrt2, 1-\\sqrt2", C),
        ("3 \\pm 1", "2, 4, 5", N),
    ],
    "gold in several $ pieces": [
        ("1, 2, 3", "$1$ and $2$ and $3$", C),
        ("1, 2", "$1$ and $2$ and $3$", N),
        ("7", "$7$ km", C),
        ("\\boxed{4, 5}", "$4$ or $5$", C),
    ],
}
_ROWS = [(form, p, g, s) for form, rows in FORMS.items() for p, g, s in rows]


@pytest.mark.parametrize(("form", "prediction", "gold", "status"), _ROWS, ids=[f"{r[0]}:{r[1][:30]}" for r in _ROWS])
def test_form(form: str, prediction: str, gold: str, status: str) -> None:
    assert verify(prediction, gold).status == status, form


def test_rounding_precision_is_an_option() -> None:
    assert verify("0.67", "\\frac23").status == N  # default: a decimal needs 6 digits to count as rounded
    assert verify("0.67", "\\frac23", options=VerifyOptions(float_rounding=2)).correct
    assert verify("(0.6, 2.6667]", "(\\frac35, \\frac83]", options=VerifyOptions(float_rounding=2)).correct
    assert verify("0.68", "\\frac23", options=VerifyOptions(float_rounding=2)).status == N
    assert verify("0.666667", "\\frac23").correct


def test_relation_against_set_gold_is_an_option() -> None:
    wide = VerifyOptions(relation_matches_set_gold=True)
    assert not verify("1 \\le x \\le 5", "x \\in [1, 5]").correct
    assert verify("1 \\le x \\le 5", "x \\in [1, 5]", options=wide).correct
    assert verify("1 \\le x \\le 5", "[1, 5)", options=wide).status == N


def test_box_groups_option() -> None:
    assert verify("\\boxed{2} and \\boxed{-3}", "-3").status == N
    assert verify("\\boxed{2} and \\boxed{-3}", "-3", options=VerifyOptions(box_groups=False)).correct


def test_prose_answers_option() -> None:
    prose = "Final Answer: The largest $n$ is 34."
    assert verify(prose, "34").correct
    assert not verify(prose, "34", options=VerifyOptions(prose_answers=False)).correct


def test_decimal_comma_option() -> None:
    assert verify("1000,99", "1000.99").correct
    assert verify("1000,99", "1000.99", options=VerifyOptions(decimal_comma=False)).status == N


def test_every_form_has_right_and_wrong_cases() -> None:
    for form, rows in FORMS.items():
        statuses = {s for _, _, s in rows}
        assert C in statuses and statuses - {C}, form
