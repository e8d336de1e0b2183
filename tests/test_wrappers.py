"""Wrappers: annealing knobs, reward verification, consult penalty, eval mode, recording."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import eapo_env  # noqa: F401
from eapo_env import set_progress
from tests.conftest import SpyExpert
from wrappers import AcceptanceAnnealing, ConsultPenalty, EvalMode, RecordEpisodes, RewardVerification, TurnBudget

CONSULT = "<consult><query>q</query></consult>"


def test_acceptance_annealing_counts_episodes_without_a_trainer():
    env = AcceptanceAnnealing(gym.make("EAPO-Math-v0"), "linear:1.0:0.0:4")
    seen = []
    for _ in range(6):
        env.reset(seed=0)
        seen.append(env.unwrapped.acceptance_prob)
    assert seen == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]


def test_set_progress_takes_over_the_clock_and_is_deferred_mid_episode():
    env = AcceptanceAnnealing(gym.make("EAPO-Math-v0"), "linear:1.0:0.0:100")
    env.reset(seed=0)
    env.set_progress(50)  # mid-episode: the knob must not move now
    assert env.unwrapped.acceptance_prob == 1.0
    env.step("<answer>0</answer>")
    env.reset(seed=0)
    assert env.unwrapped.acceptance_prob == 0.5
    env.step("<answer>0</answer>")
    env.set_progress(75)  # between episodes: written at once
    assert env.unwrapped.acceptance_prob == 0.25


def test_turn_budget_anneals_and_truncates_at_the_new_budget():
    env = TurnBudget(gym.make("EAPO-Math-v0"), "linear:8:2:6")
    set_progress(env, 6)
    env.reset(seed=0)
    assert env.unwrapped.max_turns == 2
    assert env.step("x")[3] is False
    assert env.step("x")[3] is True


def test_set_progress_reaches_every_scheduled_wrapper():
    base = gym.make("EAPO-Math-v0")
    env = TurnBudget(ConsultPenalty(AcceptanceAnnealing(base, "linear:1:0:10"), "linear:0:1:10"), "linear:8:2:10")
    set_progress(gym.wrappers.RecordEpisodeStatistics(env), 10)
    env.reset(seed=0)
    assert env.unwrapped.acceptance_prob == 0.0 and env.unwrapped.max_turns == 2
    assert env.unwrapped.progress_step == 10
    assert env.step(CONSULT)[1] == -1.0


def test_consult_penalty_per_turn_and_per_query():
    env = ConsultPenalty(gym.make("EAPO-Math-v0"), 0.1)
    env.reset(seed=0)
    assert env.step("<consult><query>a</query><query>b</query></consult>")[1] == pytest.approx(-0.1)
    assert env.step("just reasoning")[1] == 0.0
    assert env.step("<consult></consult>")[1] == 0.0  # a format error is not a consult
    env = ConsultPenalty(gym.make("EAPO-Math-v0"), 0.1, per_query=True)
    env.reset(seed=0)
    assert env.step("<consult><query>a</query><query>b</query></consult>")[1] == pytest.approx(-0.2)


def test_reward_verification_is_swappable():
    from eapo_env.verify import Verdict

    env = RewardVerification(gym.make("EAPO-Math-v0").unwrapped, verifier=lambda pred, problem: Verdict("correct", 0.5))
    env.reset(seed=0)
    _, r, _, _, info = env.step("<answer>anything</answer>")
    assert r == 0.5 and info["verdict"] == "correct"


def test_eval_mode_wrapper_blocks_experts_even_with_p_one():
    spy = SpyExpert()
    env = EvalMode(gym.make("EAPO-Math-v0", expert=spy), max_turns=3)
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.max_turns == 3 and "consult" not in obs.lower()
    env.step(CONSULT)
    assert spy.calls == []


def test_recorder_appends_whole_episodes(tmp_path):
    path = tmp_path / "eps.jsonl"
    env = RecordEpisodes(gym.make("EAPO-Math-v0", max_turns=2), path)
    env.reset(seed=1)
    gold = env.unwrapped.problem.answer
    env.step(CONSULT)
    env.step(f"<answer>{gold}</answer>")
    env.reset(seed=2)
    env.step("a")
    env.step("b")  # truncated
    env.reset(seed=3)
    env.step("c")  # in progress: not recorded
    env.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["correct"] is True and rows[0]["return"] == 1.0 and rows[0]["consults"] == 1
    assert [s for s, _ in rows[0]["transcript"]] == ["prompt", "policy", "expert", "policy"]
    assert rows[1]["truncated"] is True and rows[1]["verdict"] == "no_answer" and rows[1]["seed"] == 2
