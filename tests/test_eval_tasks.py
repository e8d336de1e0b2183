"""``eapo eval --env-id <task eval id> --problems <spec>`` on the QA and choice tasks, with the shipped
tiny base ("tiny-base"). Its scores are ~0 on these tasks; asserted is what is deterministic: the env id
the episodes ran on, which problems (read by the task's loaders), the counts and the output fields."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from agents import cli
from agents.eval_config import EvalConfig
from agents.evaluation import heldout_problems

torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"
SMALL = ["-k", "2", "--max-turns", "1", "--max-turn-tokens", "8", "--max-total-tokens", "1024", "--threads", "1"]


def _eval(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert cli.main(["eval", "--policy", "tiny-base", *args, *SMALL, "--json"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    return json.loads(lines[-1])


@pytest.mark.parametrize(
    ("env_id", "spec", "ids"),
    [
        ("EAPO-QA-Eval-v0", "generated", ["gen/facts/0", "gen/facts/1", "gen/facts/2"]),
        ("EAPO-Choice-Eval-v0", "generated", ["gen/arithmetic_choice/0", "gen/arithmetic_choice/1"]),
        ("EAPO-QA-Eval-v0", f"hotpotqa:{DATA / 'hotpotqa_tiny.json'}", None),
        ("EAPO-Choice-Eval-v0", f"mmlu:{DATA / 'mmlu_tiny.parquet'}", ["mmlu/0", "mmlu/1"]),
    ],
)
def test_eval_runs_the_task_env_on_its_problems(capsys, tmp_path, env_id, spec, ids):
    n = len(ids) if ids else 3
    out = tmp_path / "ev"
    result = _eval(capsys, "--env-id", env_id, "--problems", spec, "--num-problems", str(n), "--out", str(out))
    assert result["env_id"] == env_id and result["num_problems"] == n and result["k"] == 2
    assert result["problems"] == spec and result["expert_call_rate"] == 0.0  # consultation off
    for field in ("score_mean", "score_variance", "pass_at", "ci95", "answered_rate", "policy_tokens"):
        assert field in result
    assert 0.0 <= result["score_mean"] <= 1.0 and set(result["pass_at"]) == {"1", "2"}
    written = json.loads((out / "eval.json").read_text())
    assert written["env_id"] == env_id and written["num_problems"] == n
    with (out / "eval_problems.csv").open() as f:
        rows = list(csv.DictReader(f))
    got = [r["problem_id"] for r in rows]
    if ids is None:  # hotpotqa ids are its rows' ids
        assert len(got) == n and all(pid.startswith("hotpotqa/") for pid in got)
    else:
        assert got == ids
    assert all(r["n"] == "2" for r in rows)


def test_default_env_id_is_math_and_a_training_id_runs_its_eval_twin(capsys):
    result = _eval(capsys, "--problems", "generated:arithmetic:1", "--num-problems", "1")
    assert result["env_id"] == "EAPO-Math-Eval-v0"
    result = _eval(capsys, "--env-id", "EAPO-Choice-v0", "--problems", "generated", "--num-problems", "1")
    assert result["env_id"] == "EAPO-Choice-Eval-v0" and result["expert_call_rate"] == 0.0


def test_task_specs_are_read_by_the_task_and_bad_ids_fail_clearly():
    qa = heldout_problems("generated", 2, env_id="EAPO-QA-Eval-v0")
    assert [p.id for p in qa] == ["gen/facts/0", "gen/facts/1"]
    assert heldout_problems("generated@1", 1, env_id="EAPO-QA-Eval-v0")[0].id == "gen/facts/0@1"
    choice = heldout_problems(f"gpqa:{DATA / 'gpqa_tiny.csv'}", 10, env_id="EAPO-Choice-v0")
    assert [p.id for p in choice] == ["gpqa/recA1", "gpqa/recB2", "gpqa/recC3"]
    math = heldout_problems("generated:linear:1", 1, seed=1)
    assert math[0].id == "gen/linear/L1/0@1"
    with pytest.raises(ValueError, match="unknown env id 'EAPO-Nope-v0'.*evaluation ids: .*EAPO-QA-Eval-v0"):
        heldout_problems("generated", 1, env_id="EAPO-Nope-v0")
    assert EvalConfig().env_id == "" and EvalConfig(env_id="EAPO-QA-Eval-v0").env_id == "EAPO-QA-Eval-v0"


def test_help_documents_env_id(capsys):
    with pytest.raises(SystemExit):
        cli.main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--env-id" in text and "EAPO-QA-Eval-v0" in text and "hotpotqa:PATH" in text


@pytest.mark.parametrize("env_id", ["EAPO-QA-v0", "EAPO-Choice-v0"])
def test_the_trainer_serves_the_task_ids(tmp_path, env_id):
    from agents.config import TrainConfig
    from agents.trainer import train

    cfg = TrainConfig(
        policy="tiny-base",
        env_id=env_id,
        problems="generated",
        steps=2,
        group_size=2,
        prompts_per_step=2,
        max_turns=2,
        max_turn_tokens=6,
        max_total_tokens=600,
        tensorboard=False,
        progress_bar=False,
        final_eval=False,
    )
    train(cfg, tmp_path / "run", log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1] and all(0.0 <= r["accuracy"] <= 1.0 for r in records)
