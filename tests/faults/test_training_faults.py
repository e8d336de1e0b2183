"""Fault tier, training side: rollouts through the vector env with the ``openai`` expert against the real
loopback fault server (tests/faults/server.py).

The fault of every request is chosen by a marker in the problem's question (the expert's prompt carries
it), so each episode's consults all meet one fault. The policy is a real tiny model overfit to consult
once and then answer (``agents_fixtures.train_consulting_model``). What must hold: every episode ends
(none lost), the step does not stall past the client's own timeouts, each consult's failed replies
are ``unavailable`` entries and the healthy ones arrive, and an episode whose experts all failed still
gets its answer verified.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import eapo_env  # noqa: F401  (registers the env ids)
from agents.rollout import RolloutEngine
from eapo_env.experts.openai_backend import OpenAIExpert
from eapo_env.problems import Problem
from tests.faults.server import FaultServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents_fixtures import build_tiny_tokenizer, train_consulting_model  # noqa: E402

pytestmark = pytest.mark.faults

#: fault marker -> does a request with it end as a reply ("ok") or as an unavailable entry
FAULTS = {
    "ok": True,
    "slow": True,
    "flaky": True,
    "timeout": False,
    "429": False,
    "500": False,
    "badjson": False,
    "drop": False,
}
PROBLEMS = [Problem(f"f/{f}", ("" if f == "ok" else f"FAULT:{f} ") + "What is $6 \\times 7$?", "42") for f in FAULTS]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(slow_s=0.15) as s:
        yield s


@pytest.fixture(scope="module")
def policy():
    torch.set_num_threads(1)
    tok = build_tiny_tokenizer()
    return train_consulting_model(tok, problems=PROBLEMS, n_prompts=len(PROBLEMS)), tok


def test_rollout_with_expert_faults_loses_no_episode(server, policy):
    model, tok = policy
    server.reset_stats()
    n = 3 * len(PROBLEMS)
    expert = OpenAIExpert(server.base_url, model="m", timeout_s=1.0, max_retries=1, backoff_s=0.01)
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n, problems=PROBLEMS, expert=expert, max_experts=3, max_turns=3)
    engine = RolloutEngine(model, tok, max_turn_tokens=24, max_total_tokens=900, temperature=0.0)
    start = time.perf_counter()
    trajs = engine.rollout(
        vec,
        seeds=list(range(n)),
        options=[{"problem_index": i % len(PROBLEMS)} for i in range(n)],
        group_ids=[i % len(PROBLEMS) for i in range(n)],
    )
    wall = time.perf_counter() - start
    vec.close()
    assert wall < 15.0  # two 1 s attempts for the timeouts, overlapped; nothing waits on a dead call
    assert len(trajs) == n and all(t.terminated or t.truncated for t in trajs)  # no lost episode
    consults, met = 0, set()
    for i, t in enumerate(trajs):
        fault = list(FAULTS)[i % len(PROBLEMS)]
        assert t.problem_id == f"f/{fault}"
        for info in t.infos:
            if info["action"] == "consult" and info["accepted"]:
                consults += 1
                met.add(fault)
                failed = info["expert_timeouts"] + info["expert_errors"]
                assert info["unavailable"] == failed == (0 if FAULTS[fault] else info["accepted"])
                assert info["expert_timeouts"] == (info["accepted"] if fault == "timeout" else 0)
        if t.terminated:  # the answer is verified whether or not the experts answered
            assert t.correct == t.infos[-1]["correct"] and t.reward == float(t.correct)
    assert consults >= n and met == set(FAULTS)  # every episode consulted (the fixture's script): every fault met
    assert sum(t.terminated for t in trajs) >= n // 2
    hits = server.stats.hits
    assert hits["timeout"] >= 2 and hits["500"] >= 2 and hits["ok"] >= 1  # the faults really happened
    assert engine.stats.submits >= 2 and engine.stats.blocked_seconds < wall
