"""Two-phase turn (DESIGN §7): ``prepare(action) -> TurnPlan`` / ``complete(plan, replies) -> TurnOutcome``
at every layer, ``step`` on top; the vector env's submit / collect with ONE batched Expert.consult call;
expert faults become ``unavailable``."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given
from hypothesis import strategies as st

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env.experts import ExpertReply, ExpertRequest
from envs import StepResult
from envs.layers import RewritingLayer, turn_layer
from envs.step import TurnOutcome
from envs.turns import TurnPlan
from tests.conftest import SpyExpert

KW = dict(problems="generated:arithmetic", max_experts=3, max_turns=4, max_action_chars=80, max_reply_chars=20)
ACTIONS = st.one_of(
    st.text(max_size=20),
    st.builds(lambda a: f"<answer>{a}</answer>", st.sampled_from(["1", "x", ""])),
    st.builds(
        lambda qs: "<consult>" + "".join(f"<query>{q}</query>" for q in qs) + "</consult>",
        st.lists(st.sampled_from(["a", " ", "why?", "b" * 30]), max_size=5),
    ),
    st.just("z" * 70 + "<answer>1</answer>"),  # cut to max_action_chars
)
SHAPING = [{}, {"consult_penalty": 0.5}, {"acceptance_schedule": "linear:1.0:0.0:3"}]


class AsyncCounting:
    """An async-only expert that counts its consult calls; ``gate`` (if set) holds every call until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[ExpertRequest]] = []
        self.gate = gate

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.calls.append(list(requests))
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.005)
        return [ExpertReply(f"re:{r.query}", expert="async") for r in requests]


def state(env: gym.Env) -> Any:
    return env.unwrapped.np_random.bit_generator.state


# ---------------------------------------------------------------- single env
@given(
    seed=st.integers(0, 1000),
    p=st.sampled_from([0.0, 0.5, 1.0]),
    shaping=st.sampled_from(SHAPING),
    actions=st.lists(ACTIONS, min_size=1, max_size=6),
)
def test_two_phase_turn_through_the_front_equals_plain_step(seed, p, shaping, actions):
    plain = gym.make("EAPO-Math-v0", expert=SpyExpert(), acceptance_prob=p, **KW, **shaping)
    split = gym.make("EAPO-Math-v0", expert=SpyExpert(), acceptance_prob=p, **KW, **shaping)
    front = turn_layer(split)
    assert front is not None
    assert plain.reset(seed=seed) == split.reset(seed=seed)
    for action in actions:
        want = plain.step(action)
        plan = front.prepare(action)
        assert isinstance(plan, TurnPlan) and plan.expert is split.unwrapped.expert
        outcome = front.complete(plan, plan.expert.consult_sync(plan.requests))
        assert isinstance(outcome, TurnOutcome) and outcome.as_step() == want
        assert dict(outcome.info()) == want[4] and outcome.reward == want[1]
        assert state(split) == state(plain)
        if want[2] or want[3]:
            assert plain.reset() == split.reset()
    assert split.unwrapped.transcript == plain.unwrapped.transcript
    assert split.unwrapped.expert.requests == plain.unwrapped.expert.requests


def test_the_plan_owns_the_turn_the_env_keeps_nothing_and_refuses_a_stale_plan():
    env = gym.make("EAPO-Math-v0", expert=SpyExpert(), acceptance_prob=0.5, **KW)
    other = gym.make("EAPO-Math-v0", expert=SpyExpert(), **KW)
    env.reset(seed=3), other.reset(seed=3)
    base, front = env.unwrapped, turn_layer(env)
    consult = "<consult><query>q1</query><query>q2</query><query>q3</query></consult>"
    before = (list(base.transcript), base.in_episode, vars(base).get("_turn"))
    plan = front.prepare(consult)
    assert (list(base.transcript), base.in_episode, vars(base).get("_turn")) == before  # only the RNG moved
    with pytest.raises(AttributeError):  # immutable
        plan.action = "x"  # type: ignore[misc]
    dropped = front.prepare("thinking")  # a plan may be dropped: nothing to undo
    front.complete(plan, plan.expert.consult_sync(plan.requests))
    with pytest.raises(ValueError, match="stale"):
        front.complete(dropped, [])  # planned for turn 1, the env is at turn 2 now
    with pytest.raises(ValueError, match="stale"):
        turn_layer(other).complete(front.prepare("hmm"), [])  # another env's plan
    stale = front.prepare("hmm")
    env.reset(seed=4)
    with pytest.raises(ValueError, match="stale"):
        front.complete(stale, [])  # from the episode before


def test_bad_replies_become_unavailable_entries():
    env = gym.make("EAPO-Math-v0", expert=SpyExpert(), **KW)
    env.reset(seed=0)
    front = turn_layer(env)
    plan = front.prepare("<consult><query>q1</query><query>q2</query></consult>")
    outcome = front.complete(plan, [ExpertReply("only one")])  # wrong count
    assert outcome.counts.unavailable == 2 and outcome.counts.expert_errors == 2
    assert "only one" not in outcome.observation and env.unwrapped.expert.calls == []


# ---------------------------------------------------------------- crossing a wrapper stack (envs.layers)
class ForeignPenalty(gym.Wrapper):
    """A wrapper that overrides ``step`` alone: it cannot be split in two phases."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward) - 0.5, terminated, truncated, info


def test_the_turn_layer_walks_gymnasium_s_checkers_and_action_wrappers_and_stops_at_a_foreign_step():
    from tests.test_vector_env import BASE, LengthPenalty, ShoutQueries

    env = gym.make("EAPO-Math-v0", **BASE)  # OrderEnforcing(PassiveEnvChecker(RewardVerification(env)))
    assert type(env).__name__ == "OrderEnforcing" and turn_layer(env) is env.env.env  # RewardVerification
    shout = ShoutQueries(env)
    layer = turn_layer(shout)
    assert isinstance(layer, RewritingLayer) and layer.inner is env.env.env
    env.reset(seed=0)
    plan = layer.prepare("<consult><query>a</query></consult>")
    assert plan.action.endswith(" (asked)") and [r.query for r in plan.requests] == ["A"]
    assert turn_layer(LengthPenalty(shout)) is not None
    assert turn_layer(ForeignPenalty(env)) is None and turn_layer(LengthPenalty(ForeignPenalty(env))) is None
    with pytest.raises(TypeError, match="TurnWrapper"):
        LengthPenalty(ForeignPenalty(env)).prepare("x")


def test_a_wrapper_that_overrides_step_alone_is_stepped_blocking_with_a_warning_and_the_same_results():
    from tests.test_vector_env import assert_info_equal, make_pair

    with pytest.warns(UserWarning, match="overrides step"):
        vec, ref, spy = make_pair(3, AutoresetMode.NEXT_STEP, [ForeignPenalty])
    assert vec.blocking_envs == (0, 1, 2)
    assert vec.reset(seed=4)[0] == ref.reset(seed=4)[0]
    actions = ["<consult><query>a</query></consult>"] * 3
    out_v, out_r = vec.step(actions), ref.step(tuple(actions))
    assert out_v[0] == out_r[0] and out_v[1].tolist() == out_r[1].tolist() == [-0.5] * 3
    assert_info_equal(out_v[4], out_r[4])
    assert len(spy.calls) == 3  # one call per env: the price of a wrapper that cannot be split


# ---------------------------------------------------------------- vector env: submit / collect
def consults(n: int) -> list[str]:
    return [f"<consult><query>e{i}a</query><query>e{i}b</query></consult>" for i in range(n)]


def test_one_step_of_consulting_envs_is_exactly_one_consult_call_with_every_request():
    expert = AsyncCounting()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=6, expert=expert, **KW)
    vec.reset(seed=0)
    obs, *_, info = vec.step(consults(6))
    assert len(expert.calls) == 1
    assert [r.query for r in expert.calls[0]] == [f"e{i}{k}" for i in range(6) for k in "ab"]
    assert info["accepted"].tolist() == [2] * 6 and all(f"re:e{i}a" in obs[i] for i in range(6))


def test_submit_does_not_block_and_collect_completes_the_waiting_envs():
    gate = threading.Event()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=4, expert=AsyncCounting(gate), **KW)
    vec.reset(seed=1)
    gold = vec.unwrapped.problems[0].answer
    actions = [f"<answer>{gold}</answer>", "thinking", *consults(4)[2:]]
    start = time.perf_counter()
    pending = vec.submit([0, 1, 2, 3], actions)
    assert time.perf_counter() - start < 1.0 and not pending.ready()
    assert sorted(pending.completed) == [0, 1] and pending.waiting == (2, 3)
    assert pending.completed[0].reward == 1.0 and pending.completed[0].info["correct"] is True
    with pytest.raises(RuntimeError, match="not yet collected"):
        vec.submit([2], ["x"])
    second = vec.submit([1], ["more thinking"])  # another submit while the first is in flight
    assert second.ready() and second.completed[1].info["turn"] == 2
    gate.set()
    results = vec.collect(pending)
    assert sorted(results) == [2, 3] and all(isinstance(r, StepResult) for r in results.values())
    assert results[2].info["accepted"] == 2 and "re:e2a" in results[2].observation
    with pytest.raises(RuntimeError, match="already collected"):
        vec.collect(pending)
    with pytest.raises(RuntimeError, match="reset"):  # submit never autoresets
        vec.submit([0], ["x"])
    ((obs, info),) = vec.reset_envs([0], [5], [{"problem_index": 7}])
    assert "Problem:" in obs and info["turn"] == 0


class Broken:
    """An expert with a fault: ``raise`` (an exception), ``count`` (one reply too few), ``hang``."""

    def __init__(self, fault: str) -> None:
        self.fault = fault

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        if self.fault == "raise":
            raise ConnectionError("backend down")
        if self.fault == "hang":
            await asyncio.sleep(60)
        return [ExpertReply("x")] * (len(requests) - 1)


@pytest.mark.parametrize("fault", ["raise", "count", "hang"])
def test_expert_faults_become_unavailable_entries_never_a_crash_or_hang(fault):
    vec = gym.make_vec("EAPO-Math-v0", num_envs=3, expert=Broken(fault), expert_timeout_s=0.3, **KW)
    vec.reset(seed=0)
    start = time.perf_counter()
    obs, reward, terminated, truncated, info = vec.step(consults(3))
    assert time.perf_counter() - start < 5.0
    assert info["unavailable"].tolist() == [2, 2, 2] and not terminated.any()
    failures = info["expert_timeouts"] if fault == "hang" else info["expert_errors"]
    assert failures.tolist() == [2, 2, 2] and all('status="unavailable"' in o for o in obs)
    _, reward, terminated, *_ = vec.step([f"<answer>{p.answer}</answer>" for p in vec.unwrapped.problems])
    assert terminated.all() and reward.tolist() == [1.0] * 3  # the episodes go on to their end


def test_user_wrappers_through_make_vec_and_what_gymnasium_refuses():
    from tests.test_vector_env import LengthPenalty

    vec = gym.make_vec("EAPO-Math-v0", num_envs=2, env_wrappers=[LengthPenalty], **KW)
    vec.reset(seed=0)
    _, reward, *_, info = vec.step(["abcd", "ab"])
    assert reward.tolist() == [-0.004, -0.002] and info["length_penalty"].tolist() == [0.004, 0.002]
    with pytest.raises(gym.error.Error, match="wrappers"):  # Gymnasium's own wrappers= needs the sync mode
        gym.make_vec("EAPO-Math-v0", num_envs=2, wrappers=[LengthPenalty], **KW)
    sync = gym.make_vec("EAPO-Math-v0", num_envs=2, vectorization_mode="sync", wrappers=[LengthPenalty], **KW)
    sync.reset(seed=0)
    assert np.allclose(sync.step(("abcd", "ab"))[1], [-0.004, -0.002])


@given(seed=st.integers(0, 100), actions=st.lists(ACTIONS, min_size=1, max_size=5), p=st.sampled_from([0.0, 0.5, 1.0]))
def test_every_info_key_is_a_documented_step_info_field(seed, actions, p):
    from envs import ResetInfo, StepInfo

    env = gym.make("EAPO-Math-v0", expert=SpyExpert(), acceptance_prob=p, consult_penalty=0.1, **KW)
    _, info = env.reset(seed=seed)
    assert set(info) == set(ResetInfo.__annotations__)
    for action in actions:
        *_, terminated, truncated, info = env.step(action)
        assert set(info) <= set(StepInfo.__annotations__), set(info) - set(StepInfo.__annotations__)
        assert {"problem_id", "action", "turn", "turns_left", "consults", "accepted"} <= set(info)
        if terminated or truncated:
            assert isinstance(info["correct"], bool) and "verdict" in info
            env.reset()


@pytest.mark.parametrize("fault", ["raise", "count"])
def test_faulty_expert_gives_the_same_results_batched_as_one_env_at_a_time(fault):
    from gymnasium.vector import SyncVectorEnv

    from tests.test_vector_env import assert_info_equal

    vec = gym.make_vec("EAPO-Math-v0", num_envs=3, expert=Broken(fault), **KW)
    ref = SyncVectorEnv([lambda: gym.make("EAPO-Math-v0", expert=Broken(fault), **KW) for _ in range(3)])
    assert vec.reset(seed=2)[0] == ref.reset(seed=2)[0]
    for actions in (consults(3), ["<consult><query>x</query></consult>", "hmm", "<answer>1</answer>"]):
        got, want = vec.step(actions), ref.step(tuple(actions))
        assert got[0] == want[0] and all((g == w).all() for g, w in zip(got[1:4], want[1:4]))
        assert_info_equal(got[4], want[4])


def test_the_env_share_benchmark_replays_the_calls_of_a_rollout_exactly():
    # benchmarks/bench_env_share.py times the env calls of a rollout replayed alone: the replay must
    # put every env through the same states (observations, transcripts, RNG) as the recorded run
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_env_share import RecordingVectorEnv, replay

    vec = gym.make_vec("EAPO-Math-v0", num_envs=4, expert=AsyncCounting(), acceptance_prob=0.5, **KW)
    rec = RecordingVectorEnv(vec)
    rec.reset_envs(range(4), [7, 8, 9, 10], [{"problem_index": i} for i in range(4)])
    first = rec.submit([0, 1, 2], [*consults(2), "hmm"])
    rec.submit([3], ["<answer>1</answer>"])
    rec.collect(first)
    rec.submit([0, 1, 2], ["<answer>2</answer>"] * 3)
    assert [name for name, *_ in rec.calls] == ["reset_envs", "submit", "submit", "collect", "submit"]
    recorded = ([list(t) for t in vec.transcripts], [state(e) for e in vec.envs])
    vec.reset_envs(range(4), [1, 2, 3, 4], [{"problem_index": 9}] * 4)  # somewhere else entirely
    assert ([list(t) for t in vec.transcripts], [state(e) for e in vec.envs]) != recorded
    assert replay(vec, rec.calls) > 0
    assert ([list(t) for t in vec.transcripts], [state(e) for e in vec.envs]) == recorded
    assert [t[-1][1] for t in vec.transcripts] == ["<answer>2</answer>"] * 3 + ["<answer>1</answer>"]
