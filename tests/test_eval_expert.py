"""``eapo eval --expert NAME``: the expert-assisted workflow beside the policy alone (issue 20), and the
``expert-reader`` build recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.baselines import compare_workflow, replies_of, with_expert_replies
from agents.evaluation import EvalConfig, heldout_problems

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    from agents.policy import build_policy

    return build_policy(tmp_path_factory.mktemp("policy"), "tiny", sft_steps=0, n_train=200, n_heldout=0, verbose=False)


def test_workflow_prompt_carries_the_hint_and_comparison_is_paired(policy_dir):
    from agents.policy import load_policy

    problems = heldout_problems("generated:arithmetic:2", 3, seed=777)
    (shown,) = with_expert_replies(problems[:1], replies_of("hint", {}, problems[:1]))
    assert shown.question.startswith(problems[0].question) and '<expert index="1">' in shown.question
    assert "\\boxed" not in shown.question and shown.answer == problems[0].answer

    model, tok = load_policy(policy_dir)
    settings = EvalConfig(k=2, max_turns=2, max_turn_tokens=6, max_total_tokens=400, num_problems=3, problems_seed=777)
    cmp = compare_workflow(model, tok, "generated:arithmetic:2", "hint", None, settings)
    assert cmp.alone is not None and cmp.with_expert.num_problems == cmp.alone.num_problems == 3
    assert [r.problem_id for r in cmp.alone.problems] == [r.problem_id for r in cmp.with_expert.problems]
    assert cmp.gain == pytest.approx(cmp.with_expert.score_mean - cmp.alone.score_mean)
    assert cmp.with_expert.expert_call_rate == 0.0  # consultation stays off: the reply is in the prompt
    assert "workflow - alone" in cmp.describe()
    with pytest.raises(ValueError, match="replies"):
        compare_workflow(
            model, tok, "generated:arithmetic:2", "hint", None, settings.replace(num_problems=1), replies=0
        )


def test_cli_eval_expert_compare_alone_json(policy_dir, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    args = ["--policy", str(policy_dir), "--problems", "generated:arithmetic:1", "-k", "2", "--num-problems", "2"]
    args += ["--pass-k", "1", "--max-turns", "2", "--max-turn-tokens", "6", "--threads", "1", "--out", str(tmp_path)]
    cmd = [sys.executable, "-m", "agents.cli", "eval", *args, "--expert", "hint", "--expert-arg", 'mode="first_step"']
    res = subprocess.run(
        [*cmd, "--compare-alone", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["expert"] == "hint" and {"alone", "with_expert", "gain", "gain_ci95"} <= out.keys()
    assert (tmp_path / "alone" / "eval.json").is_file() and (tmp_path / "with_expert" / "eval.json").is_file()
    bad = subprocess.run([*cmd[:-2], "--expert", "no_such_expert"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown expert" in bad.stderr


def test_expert_reader_recipe_records_its_rebuild_command(policy_dir, tmp_path):
    from agents.policy import build_policy, read_policy_info

    out = build_policy(
        tmp_path / "reader",
        "tiny",
        sft_steps=2,
        n_train=64,
        n_heldout=0,
        batch_size=4,
        lr=1e-3,
        recipe="expert-reader",
        init_policy=str(policy_dir),
        verbose=False,
    )
    info = read_policy_info(out)
    assert info["build_args"]["recipe"] == "expert-reader" and info["build_args"]["max_len"] == 512
    assert "--recipe expert-reader" in info["rebuild_command"] and f"--init {policy_dir}" in info["rebuild_command"]
    assert info["trace_config"]["reply_turn"] == "solve" and info["trace_config"]["hint_prob"] > 0
    assert info["vocab_size"] == read_policy_info(policy_dir)["vocab_size"]  # the starting policy's tokenizer
    with pytest.raises(ValueError, match="unknown recipe"):
        build_policy(tmp_path / "x", "tiny", sft_steps=0, recipe="nope", verbose=False)
