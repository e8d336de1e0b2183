"""The examples run and print what they claim (examples/custom_wrapper.py, examples/custom_expert.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import custom_expert  # noqa: E402
import custom_wrapper  # noqa: E402


def test_custom_wrapper_shapes_single_and_batched_envs_alike():
    single, batched = custom_wrapper.main(verbose=False)
    assert single == batched
    consult_turn = "<consult><query>What is the first step?</query></consult>"
    assert single[0] == pytest.approx(-0.001 * len(consult_turn))  # a consult earns only the penalty
    assert 0.95 < single[1] < 1.0  # a correct answer, minus its length


def test_custom_expert_gets_one_batch_per_step_and_faults_read_unavailable():
    result = custom_expert.main(verbose=False)
    assert result == {"batches": [4, 1], "requests": 5, "reward": 1.0, "unavailable": 1}


@pytest.mark.parametrize(
    "script, expected",
    [
        ("custom_wrapper.py", "vector env rewards (env 0)"),
        ("custom_expert.py", "'batches': [4, 1]"),
    ],
)
def test_examples_run_as_scripts(script, expected):
    out = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout


def test_my_wrapper_example_is_a_property_test_that_passes_in_under_a_minute():
    """examples/test_my_wrapper.py as a user runs it (pytest on the file), with the time CI allows it."""
    import time

    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_my_wrapper.py")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert time.perf_counter() - start < 60
