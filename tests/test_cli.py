"""The ``eapo`` command line (DESIGN §10): help, and ``--json`` printing exactly one JSON line."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agents.config import TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


def _eapo() -> list[str]:
    exe = shutil.which("eapo") or str(Path(sys.executable).with_name("eapo"))
    return [exe] if Path(exe).is_file() else [sys.executable, "-m", "agents.cli"]


def _run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="2",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return subprocess.run([*_eapo(), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    from agents.policy import build_policy

    return build_policy(tmp_path_factory.mktemp("policy"), "tiny", sft_steps=0, n_train=200, n_heldout=0, verbose=False)


def test_help_lists_commands():
    res = _run("--help")
    assert res.returncode == 0, res.stderr
    for cmd in ("quickstart", "build-policy", "train", "eval", "bench"):
        assert cmd in res.stdout
    res = _run("eval", "--help")
    assert res.returncode == 0 and "--problems" in res.stdout and "-k" in res.stdout


def test_eval_json_prints_one_line(policy_dir, tmp_path):
    out = tmp_path / "eval"
    res = _run(
        "eval",
        "--policy",
        str(policy_dir),
        "--problems",
        "generated:arithmetic:1",
        "-k",
        "3",
        "--num-problems",
        "3",
        "--pass-k",
        "1",
        "2",
        "--max-turns",
        "2",
        "--max-turn-tokens",
        "6",
        "--max-total-tokens",
        "160",
        "--out",
        str(out),
        "--json",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, res.stdout
    result = json.loads(lines[0])
    expected = {
        "command",
        "policy",
        "problems",
        "k",
        "num_problems",
        "score_mean",
        "accuracy",
        "score_variance",
        "ci95",
        "ci95_normal",
        "pass_at",
        "consult_attempt_rate",
        "expert_call_rate",
        "response_tokens",
        "policy_tokens",
        "seconds",
    }
    assert expected <= set(result)
    assert result["k"] == 3 and result["num_problems"] == 3
    assert set(result["pass_at"]) == {"1", "2"}
    assert 0.0 <= result["score_mean"] <= 1.0 and result["expert_call_rate"] == 0.0
    rows = list(csv.DictReader((out / "eval_problems.csv").open()))
    assert len(rows) == 3 and all(int(r["n"]) == 3 for r in rows)


def test_eval_human_summary(policy_dir):
    res = _run(
        "eval",
        "--policy",
        str(policy_dir),
        "--problems",
        "generated:arithmetic:1",
        "-k",
        "2",
        "--num-problems",
        "2",
        "--pass-k",
        "1",
        "--max-turns",
        "1",
        "--max-turn-tokens",
        "4",
        "--max-total-tokens",
        "128",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Pass@2" in res.stdout and "95% CI" in res.stdout


def test_bad_config_key_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("gruop_size = 4\n")
    res = _run("train", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert res.returncode != 0
    assert "gruop_size" in res.stderr and "group_size" in res.stderr


def test_packaged_configs_load():
    for name in ("quickstart", "eapo", "self_explore", "base", "distill_sft", "expert_workflow"):
        cfg = load_config(name)
        assert isinstance(cfg, TrainConfig)
    assert load_config("self_explore").consultation is False
    qs = load_config("quickstart")
    assert TrainConfig.from_dict(qs.to_dict()) == qs


def test_set_steps_rescales_derived_schedules(tmp_path):
    """`--set steps=N` on a config with empty schedules: both are derived from the new horizon where
    used; a schedule given in the file is kept as written."""
    from agents.cli import _parse_set
    from eapo_env.schedules import parse_schedule

    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text("steps = 100\nmax_turns = 6\n")
    assert str(load_config(cfg_file).acceptance()) == "linear:1.0:0.0:50"
    cfg = load_config(cfg_file, **_parse_set(["steps=40"]))
    assert (cfg.acceptance_schedule, cfg.turn_schedule) == ("", "")  # the fields keep what was given
    assert (cfg.acceptance(), cfg.turns()) == (parse_schedule("linear:1:0:20"), parse_schedule("linear:6:4:20"))
    assert str(cfg.replace(steps=10).acceptance()) == "linear:1.0:0.0:5"
    assert cfg.replace(steps=10).resolved_eval_max_turns == 4
    cfg_file.write_text('steps = 100\nacceptance_schedule = "const:0.5"\n')
    assert str(load_config(cfg_file, **_parse_set(["steps=40"])).acceptance()) == "const:0.5"


def test_one_eval_config_from_the_cli_and_from_a_train_config():
    """``eapo eval`` flags and a TrainConfig's ``eval_*`` fields each build one EvalConfig, passed through."""
    from agents.cli import _eval_config, build_parser
    from agents.eval_config import EvalConfig

    argv = ["eval", "--policy", "p", "--problems", "generated", "-k", "4", "--pass-k", "1", "2", "--num-problems", "3"]
    args = build_parser().parse_args(argv)
    ev = _eval_config(args)
    assert isinstance(ev, EvalConfig) and (ev.k, ev.pass_ks, ev.num_problems, ev.device) == (4, (1, 2), 3, "cpu")
    cfg = TrainConfig(eval_k=4, eval_pass_ks=(1, 4), eval_num_problems=5, eval_problems_seed=9, max_turns=6, steps=10)
    got = cfg.evaluation()
    assert (got.k, got.pass_ks, got.num_problems, got.problems_seed) == (4, (1, 4), 5, 9)
    assert got.max_turns == cfg.resolved_eval_max_turns == 4 and got.device is None  # None: the model's device
    assert (got.engine, got.max_turn_tokens, got.seed) == (cfg.engine, cfg.max_turn_tokens, cfg.seed)


def test_quickstart_config_file_overrides_only_its_keys(tmp_path):
    """`eapo quickstart --config F`: F's keys on top of the packaged quickstart, the rest kept."""
    from agents.quickstart import quickstart_config

    packaged = load_config("quickstart")
    f = tmp_path / "seed1.toml"
    f.write_text("seed = 1\nsteps = 7\n")
    cfg = quickstart_config(f)
    assert (cfg.seed, cfg.steps) == (1, 7)
    assert (cfg.policy, cfg.lr, cfg.problems, cfg.mini_batches) == (
        packaged.policy,
        packaged.lr,
        packaged.problems,
        packaged.mini_batches,
    )
    f.write_text("seed = = 1\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        quickstart_config(f)
