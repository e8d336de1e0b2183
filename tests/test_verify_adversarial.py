"""Hostile inputs: every call returns a status within its time bound and runs nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from eapo_env.verify import VERDICT_STATUSES, verify, warm_up

TIMEOUT = 0.5
BOUND = 2 * TIMEOUT + 0.5  # wall-clock limit asserted for every call


@pytest.fixture(scope="module", autouse=True)
def _warm_worker() -> None:
    warm_up()  # pay the sympy import once, outside the timed calls


def _timed(prediction: str, gold: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    v = verify(prediction, gold, timeout_s=TIMEOUT)
    return v.status, time.perf_counter() - t0


def _code(marker: Path) -> list[str]:
    return [
        f"__import__('os').system('touch {marker}')",
        f"\\boxed{{__import__('os').system('touch {marker}')}}",
        f"<answer>open('{marker}', 'w').write('x')</answer>",
        "().__class__.__bases__[0].__subclasses__()",
        f"exec(\"open('{marker}','w')\")",
        f"\\input{{{marker}}}",
        "\\def\\a{\\a\\a}\\a",
        "lambda: 0",
    ]


HOSTILE = [
    "9^{9^{9^9}}",
    "10^{10^{100}}",
    "9^9^9^9^9^9",
    "2^{2^{2^{2^{2^{2^{2}}}}}}",
    "(10^{10^{100}})!",
    "\\binom{10^{100}}{10^{50}}",
    "\\sin(10^{10^{10}})",
    "e^{10^{100}}",
    "{" * 10000 + "1" + "}" * 10000,
    "(" * 10000 + "1" + ")" * 10000,
    "\\frac{" * 5000 + "1",
    "\\sqrt{" * 3000 + "2" + "}" * 3000,
    "-" * 10000 + "1",
    "1" + "!" * 5000,
    "1" * 1_000_000,
    "x" * 1_000_000,
    "\\boxed{" * 100_000,
    "<answer>" + "9" * 1_000_000 + "</answer>",
    "\\boxed{" + "1+" * 400_000 + "1}",
    "2^" * 5000 + "2",
    "1/" * 5000 + "1",
    "\x00\x01\ufffd\u202e",
    "\\frac{1}{0}",
    "0^0",
    "\\ln 0",
    "\\tan(\\pi/2)",
    "(-1)!",
    "\\sqrt{-1}^{\\sqrt{-1}}",
    # the answer forms of issue 11, at hostile sizes
    "\\begin{pmatrix}2&2\\\\2&2\\end{pmatrix}" * 60,
    "\\begin{pmatrix}" + "1&" * 3000 + "1\\end{pmatrix}",
    "The answer is " + "$1$ and " * 3000,
    "\\boxed{1}, " * 20000,
    "1 \\pm " * 300 + "1",
    "(" + "1;" * 5000 + "1)",
    "x = " * 3000 + "1",
    "Final Answer: " * 50000,
    "$" * 100000,
    "\\(" * 100000,
    "1 < " * 2000 + "x",
    "[0,1) \\cup " * 1000 + "[2,3]",
    "a, " * 5000 + "b",
    "1,000," * 3000,
    "so it is 7 " * 100000,
]


@pytest.mark.parametrize("bad", HOSTILE, ids=lambda s: repr(s[:24]))
def test_hostile_prediction_and_gold(bad: str) -> None:
    for pred, gold in ((bad, "5"), ("5", bad), (bad, bad)):
        status, dt = _timed(pred, gold)
        assert status in VERDICT_STATUSES
        assert dt < BOUND, (pred[:40], gold[:40], dt)


def test_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for text in _code(marker):
        for pred, gold in ((text, "0"), ("0", text), (text, text)):
            status, dt = _timed(pred, gold)
            assert status in VERDICT_STATUSES and dt < BOUND
            assert verify(pred, gold, answer_type="text").status in VERDICT_STATUSES
    assert not marker.exists()


def test_tower_of_powers_is_decided_without_evaluation() -> None:
    assert _timed("9^{9^{9^9}}", "9^{9^{9^9}}")[0] == "correct"  # identical trees
    assert _timed("9^{9^{9^9}}", "1")[0] == "incorrect"  # huge vs finite


# A pair the bounded evaluator cannot decide, so it reaches the sympy worker, which cannot
# finish it (10^(10^100) has a googol digits): the hard timeout must fire.
SLOW = ("10^{10^{100}}", "10^{10^{100}}+1")


def test_timeout_fires_on_main_thread() -> None:
    status, dt = _timed(*SLOW)
    assert status == "timeout" and dt < BOUND


def test_timeout_fires_off_the_main_thread() -> None:
    results: list[tuple[str, float]] = []
    threads = [threading.Thread(target=lambda: results.append(_timed(*SLOW))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 2
    for status, dt in results:
        assert status == "timeout" and dt < BOUND


def test_timeout_fires_inside_asyncio() -> None:
    async def main() -> list[tuple[str, float]]:
        direct = _timed(*SLOW)  # a plain (blocking) call inside a coroutine
        in_thread = await asyncio.to_thread(_timed, *SLOW)
        return [direct, in_thread]

    for status, dt in asyncio.run(main()):
        assert status == "timeout" and dt < BOUND


def test_verifier_still_works_after_timeouts() -> None:
    _timed(*SLOW)
    assert verify("\\sqrt{8}", "2\\sqrt{2}").correct
    assert verify("204", "204").correct


def test_trailing_words_do_not_backtrack_exponentially():
    """Regression: a policy answer that hung the quickstart (catastrophic regex backtracking)."""
    import time

    bad = "-321 selections selectionsMultiply common constant selectionsrac for the sum is the{4}" + " selections" * 6
    start = time.perf_counter()
    verdict = verify(bad, "-321")
    assert time.perf_counter() - start < 1.0
    assert verdict.status in VERDICT_STATUSES
    assert verify("12 cm", "12").status == "correct"


_UNITS = [
    "\\text{",
    "\\mbox{",
    "\\boxed{",
    "{",
    "}",
    " ",
    "a",
    "ab",
    "1",
    "2.",
    ",",
    "/",
    "%",
    "\\%",
    "=",
    "x",
    "\\circ",
    "^",
    "The answer is",
    "\\frac",
    "\\left(",
    "\\right)",
    ".",
    "-",
    "\\\\",
    "$",
    "<answer>",
    "</answer>",
]


def _fuzz_repeated_fragments() -> None:
    """Regex backtracking audit: long repetitions of the fragments the extraction patterns look for,
    with a tail that makes a pattern fail at the very end (the shape of the hang fixed above)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from eapo_env.verify import clean_answer, extract_answer

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        st.lists(st.sampled_from(_UNITS), min_size=1, max_size=3).map("".join),
        st.integers(1, 700),
        st.sampled_from(["", "12 ", "x = "]),
        st.sampled_from(["", "1", "}", "!"]),
    )
    def check(unit: str, times: int, head: str, tail: str) -> None:
        text = (head + unit * times)[:3000] + tail
        extract_answer(text)
        clean_answer(text)
        assert verify(text, "12", timeout_s=TIMEOUT).status in VERDICT_STATUSES

    check()


def test_repeated_fragments_never_hang_extraction() -> None:
    # In a child process with a deadline: a backtracking regex never returns to Python, so an
    # in-process check would hang the suite instead of failing it.
    import subprocess
    import sys

    code = "from tests.test_verify_adversarial import _fuzz_repeated_fragments as f; f()"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
