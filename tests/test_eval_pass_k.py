"""``eapo eval``'s pass@k: the defaults follow ``-k``; a pass@j above the samples is an error, never dropped."""

from __future__ import annotations

import json

import pytest
import torch

from agents import cli
from agents.evaluation import check_pass_ks, default_pass_ks, summarize

torch.set_num_threads(1)

EVAL = ["eval", "--policy", "tiny-base", "--problems", "generated:arithmetic:1", "--num-problems", "2"]
SMALL = ["--max-turns", "1", "--max-turn-tokens", "8", "--max-total-tokens", "160", "--threads", "1"]


def _eval_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli.main([*EVAL, *SMALL, *args, "--json"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_default_pass_ks_follow_k(capsys: pytest.CaptureFixture[str]) -> None:
    """``eapo eval -k 8`` used to print pass@1 and pass@8 only (32 of the fixed default dropped)."""
    result = _eval_json(capsys, "-k", "8")
    assert result["k"] == 8 and list(result["pass_at"]) == ["1", "2", "4", "8"]
    assert all(0.0 <= v <= 1.0 for v in result["pass_at"].values())
    result = _eval_json(capsys, "-k", "3", "--pass-k", "3", "1")
    assert list(result["pass_at"]) == ["1", "3"]


@pytest.mark.parametrize("pass_k", [["1", "8", "32"], ["0"], ["5"]])
def test_pass_k_above_the_samples_is_an_error(capsys: pytest.CaptureFixture[str], pass_k: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([*EVAL, *SMALL, "-k", "4", "--pass-k", *pass_k])
    message = str(exc.value.code)
    assert message.startswith("eapo eval: pass@k needs k <= the samples per problem (4)"), message
    assert all(f"pass@{j}" in message for j in pass_k if not 1 <= int(j) <= 4)
    assert "pass@1," not in message  # only the values it cannot estimate are named


def test_library_calls_refuse_too_large_pass_k_too() -> None:
    assert default_pass_ks(32) == (1, 2, 4, 8, 16, 32) and default_pass_ks(5) == (1, 2, 4, 5)
    with pytest.raises(ValueError, match="pass@8"):
        check_pass_ks((1, 8), 4)
    episodes = [[{"score": 1.0, "correct": True, "response_tokens": 1, "policy_tokens": 1, "consult_attempts": 0,
                  "answered": True}] * 2]  # fmt: skip
    assert set(summarize(["p"], episodes, k=2, pass_ks=(1, 2)).pass_at) == {"1", "2"}
    with pytest.raises(ValueError, match="pass@4"):
        summarize(["p"], episodes, k=2, pass_ks=(1, 4))
