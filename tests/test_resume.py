"""Checkpoint/resume in a real process: SIGKILL ``eapo train`` mid-run, ``--resume``, and check that
the run continues from the last checkpoint with the same schedules and an intact metrics stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.checkpoint import latest_checkpoint, list_checkpoints, read_state
from eapo_env.schedules import parse_schedule

ROOT = Path(__file__).resolve().parents[1]
STEPS = 40
EVERY = 3


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    from agents.policy import build_policy

    return build_policy(tmp_path_factory.mktemp("policy"), "tiny", sft_steps=0, n_train=200, n_heldout=0, verbose=False)


def _config(path: Path, policy: Path) -> Path:
    path.write_text(f"""
policy = "{policy}"
problems = "generated:arithmetic:1"
group_size = 2
prompts_per_step = 2
steps = {STEPS}
lr = 1e-3
warmup_steps = 2
max_turns = 3
max_turn_tokens = 6
max_total_tokens = 160
acceptance_schedule = "linear:1.0:0.0:{STEPS}"
turn_schedule = "linear:3:1:{STEPS // 2}"
checkpoint_every = {EVERY}
keep_checkpoints = 2
final_eval = false
tensorboard = false
progress_bar = false
threads = 1
""")
    return path


def _cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agents.cli", "train", "--config", str(cfg), "--out", str(out), *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def test_sigkill_then_resume(policy_dir, tmp_path):
    cfg = _config(tmp_path / "tiny.toml", policy_dir)
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(cfg, out), cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while latest_checkpoint(out) is None:  # poll the run directory for the first checkpoint
            assert proc.poll() is None, f"train exited early: {proc.stdout.read().decode()[-3000:]}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "train_summary.json").exists(), "the run finished before the kill: nothing was tested"
    killed_at = read_state(latest_checkpoint(out))["step"]
    assert 0 < killed_at < STEPS and killed_at % EVERY == 0
    lines_before = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines_before) >= killed_at  # steps past the checkpoint may be logged: they get truncated

    done = subprocess.run(
        _cmd(cfg, out, "--resume", "--json"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"at step {killed_at}" in done.stderr  # resumed from the last checkpoint's step
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["start_step"] == killed_at and result["steps"] == STEPS

    # metrics: every step exactly once, contiguous, ending at the final step
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == list(range(STEPS))
    # the lines written before the checkpoint are kept byte for byte
    assert (out / "metrics.jsonl").read_text().splitlines()[:killed_at] == lines_before[:killed_at]

    # schedules: the envs' p(t) and turn budget follow the same schedules across the restart
    p = parse_schedule(f"linear:1.0:0.0:{STEPS}")
    turns = parse_schedule(f"linear:3:1:{STEPS // 2}")
    for r in records:
        assert r["p_t"] == pytest.approx(p(r["step"])) == pytest.approx(r["p_schedule"])
        assert r["turn_budget"] == max(1, round(turns(r["step"])))
    # the learning-rate warm-up clock continued rather than restarting
    assert records[killed_at]["lr"] == pytest.approx(1e-3)

    final = latest_checkpoint(out)
    state = read_state(final)
    assert state["step"] == STEPS
    assert state["schedules"]["acceptance"]["spec"] == str(p)
    assert state["schedule_values"]["p_t"] == pytest.approx(p(STEPS))
    assert len(list_checkpoints(out)) == 2  # keep_checkpoints
    assert not list((out / "checkpoints").glob(".tmp-*"))
    assert (out / "final_policy" / "config.json").is_file()
