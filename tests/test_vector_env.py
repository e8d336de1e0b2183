"""EAPOVectorEnv (DESIGN §7): the same results as N independent single envs, one expert call per step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env.testing import (  # the parity helper, for users too (also read by task_env_checks)
    FaultyExpert,
    assert_info_equal,
)
from envs.vector_env import EAPOVectorEnv
from tests.conftest import SpyExpert
from wrappers.turn import TurnWrapper

GOLD = "<GOLD>"  # placeholder: replaced by "<answer>{the env's reference answer}</answer>"
ACTIONS = st.one_of(
    st.text(max_size=30),
    st.just(GOLD),
    st.builds(lambda a: f"<answer>{a}</answer>", st.sampled_from(["0", "7", "x", "", "12"])),
    st.builds(
        lambda qs: "<consult>" + "".join(f"<query>{q}</query>" for q in qs) + "</consult>",
        st.lists(st.sampled_from(["a", "why?", " ", "a long query text here", "slow", "err"]), max_size=4),
    ),
    st.sampled_from(
        ["<consult></consult>", "<answer>", "x" * 40 + "<answer>1</answer>", "y" * 90 + "<answer>1</answer>"]
    ),  # the last is cut to max_action_chars: a reasoning turn
)
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]


class LengthPenalty(TurnWrapper):
    """A user's wrapper, defined here and nowhere in envs/: each turn costs 0.001 per action character."""

    def outcome(self, outcome, plan):
        return outcome.penalized("length_penalty", 0.001 * len(plan.action))


class ShoutQueries(gym.ActionWrapper):
    """A user's action-rewriting wrapper (Gymnasium's own kind): consult turns get a query rewritten
    and text appended, other turns are stripped. It still joins the batched expert call."""

    def action(self, action):
        if "<consult>" in action:
            return action.replace("<query>a</query>", "<query>A</query>") + " (asked)"
        return action.strip()


class AskTwice(TurnWrapper):
    """A user's action-rewriting wrapper on our base class: a consult's first query is asked twice."""

    def action(self, action):
        return action.replace("<consult><query>", "<consult><query>again</query><query>", 1)


USER_WRAPPERS = {
    "none": [],
    "length": [LengthPenalty],
    "rewrite": [ShoutQueries, LengthPenalty],
    "rewrite-turn": [AskTwice, ShoutQueries],
}
BASE = dict(problems="generated:arithmetic", max_experts=2, max_turns=3, max_action_chars=100, max_reply_chars=12)


def fill(actions: list[str], problems: list[Any]) -> list[str]:
    return [f"<answer>{p.answer}</answer>" if a == GOLD else a for a, p in zip(actions, problems)]


def flaky_spy() -> FaultyExpert:
    """The kit's faulty spy: replies to ``slow`` time out, to ``err`` fail, to ``a long query text here``
    are cut, with latencies: a step's batch then mixes clean, cut and failed replies (both of the vector
    env's reply paths)."""
    return FaultyExpert(long_chars=2_000)


def make_pair(
    n: int, mode: AutoresetMode, wrappers: Sequence[Any] = (), **kw: Any
) -> tuple[EAPOVectorEnv, SyncVectorEnv, SpyExpert]:
    """Ours, and SyncVectorEnv over N single envs built the same way (``gym.make`` + the wrappers)."""

    def single() -> gym.Env:
        env = gym.make("EAPO-Math-v0", expert=flaky_spy(), **BASE, **kw)
        for wrapper in wrappers:
            env = wrapper(env)
        return env

    spy = flaky_spy()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n, expert=spy, autoreset_mode=mode, env_wrappers=wrappers, **BASE, **kw)
    ref = SyncVectorEnv([single for _ in range(n)], autoreset_mode=mode)
    return vec, ref, spy


def ref_problems(ref: SyncVectorEnv) -> list[Any]:
    return [env.unwrapped.problem for env in ref.envs]


@given(
    n=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(MODES),
    p=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    shaping=st.sampled_from(
        [{}, {"acceptance_schedule": "linear:1.0:0.0:4"}, {"turn_schedule": "linear:4:1:3"}, {"consult_penalty": 0.25}]
    ),
    steps=st.lists(st.lists(ACTIONS, min_size=4, max_size=4), min_size=1, max_size=8),
    progress_at=st.one_of(st.none(), st.integers(0, 7)),
    user=st.sampled_from(sorted(USER_WRAPPERS)),
)
def test_same_results_as_independent_single_envs(n, seed, mode, p, shaping, steps, progress_at, user):
    vec, ref, spy = make_pair(n, mode, USER_WRAPPERS[user], acceptance_prob=p, **shaping)
    obs_v, info_v = vec.reset(seed=seed)
    obs_r, info_r = ref.reset(seed=seed)
    assert obs_v == obs_r
    assert_info_equal(info_v, info_r)
    for t, row in enumerate(steps):
        if progress_at == t:
            vec.set_progress(2)
            for env in ref.envs:
                eapo_env.set_progress(env, 2)
        if mode is AutoresetMode.DISABLED:
            done = vec.done.copy()
            assert done.tolist() == [bool(ref._autoreset_envs[i]) for i in range(n)]
            if done.any():
                o_v, i_v = vec.reset(options={"reset_mask": done})
                o_r, i_r = ref.reset(options={"reset_mask": done.copy()})
                assert o_v == o_r
                assert_info_equal(i_v, i_r)
        actions = fill(row[:n], ref_problems(ref))
        calls_before = len(spy.calls)
        out_v = vec.step(actions)
        out_r = ref.step(tuple(actions))
        assert out_v[0] == out_r[0]
        for a, b in zip(out_v[1:4], out_r[1:4]):
            assert a.dtype == b.dtype and a.tolist() == b.tolist()
        assert_info_equal(out_v[4], out_r[4])
        # all accepted queries of the step went out in exactly one batched call, whatever the wrappers
        accepted = int(out_v[4].get("accepted", np.zeros(1)).sum())
        final = out_v[4].get("final_info", {})
        accepted += int(final.get("accepted", np.zeros(1)).sum())
        assert len(spy.calls) - calls_before == (1 if accepted else 0)
        if accepted:
            assert len(spy.calls[-1]) == accepted
    for i in range(n):
        assert vec.transcripts[i] == ref.envs[i].unwrapped.transcript
        assert vec.get_attr("acceptance_prob")[i] == ref.envs[i].unwrapped.acceptance_prob
        assert vec.expert_latency_s[i] == pytest.approx(ref.envs[i].unwrapped.expert_latency_s)
        # the same random stream consumed: problem draws and acceptance draws alike
        assert vec.get_attr("np_random")[i].bit_generator.state == ref.envs[i].unwrapped.np_random.bit_generator.state


def test_make_vec_returns_our_class_for_both_ids():
    vec = gym.make_vec("EAPO-Math-v0", num_envs=3)
    assert isinstance(vec, EAPOVectorEnv) and vec.num_envs == 3 and not vec.eval_mode
    assert vec.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert vec.single_observation_space == gym.make("EAPO-Math-v0").observation_space
    ev = gym.make_vec("EAPO-Math-Eval-v0", num_envs=2, autoreset_mode="SameStep")
    assert isinstance(ev, EAPOVectorEnv) and ev.eval_mode
    assert ev.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP


def test_eval_vector_env_never_calls_the_expert():
    spy = SpyExpert()
    vec = gym.make_vec("EAPO-Math-Eval-v0", num_envs=3, expert=spy, eval_max_turns=2)
    obs, info = vec.reset(seed=0)
    assert info["max_turns"].tolist() == [2, 2, 2] and "consult" not in obs[0]
    obs, *_, info = vec.step(["<consult><query>q</query></consult>"] * 3)
    assert spy.calls == [] and info["consult_disabled"].all() and "disabled" in obs[0]


def test_one_batched_call_holds_every_accepted_query_of_the_step():
    spy = SpyExpert()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=5, expert=spy, max_experts=3)
    vec.reset(seed=3)
    actions = [
        "<consult>" + "".join(f"<query>e{i}q{k}</query>" for k in range(i % 3 + 1)) + "</consult>" for i in range(5)
    ]
    obs, *_ = vec.step(actions)
    assert len(spy.calls) == 1
    assert [r.query for r in spy.calls[0]] == [f"e{i}q{k}" for i in range(5) for k in range(i % 3 + 1)]
    # ids: env, episode, turn, index among the sent queries (what a pool reads as the slot)
    assert [r.request_id for r in spy.calls[0]] == [f"env{i}/e0/1/{k}" for i in range(5) for k in range(i % 3 + 1)]
    assert all(f"spy:e{i}q0" in obs[i] for i in range(5))


def test_next_step_autoreset_ignores_the_action_and_returns_the_new_prompt():
    vec = gym.make_vec("EAPO-Math-v0", num_envs=2, problems="generated:arithmetic")
    vec.reset(seed=0)
    gold = vec.problems[0].answer
    _, r, term, _, info = vec.step([f"<answer>{gold}</answer>", "thinking"])
    assert r.tolist() == [1.0, 0.0] and term.tolist() == [True, False] and info["correct"].tolist() == [True, False]
    assert info["_correct"].tolist() == [True, False]
    old_problem = vec.problems[0]
    obs, r, term, trunc, info = vec.step(["<answer>ignored</answer>", "more"])
    assert r[0] == 0.0 and not term[0] and "Problem:" in obs[0] and info["turn"].tolist() == [0, 2]
    assert "action" not in info or not info["_action"][0]
    assert vec.transcripts[0] == [("prompt", obs[0])] and vec.problems[0] is not old_problem


def test_same_step_keeps_final_obs_and_info():
    vec = gym.make_vec("EAPO-Math-v0", num_envs=3, autoreset_mode=AutoresetMode.SAME_STEP, max_turns=1)
    vec.reset(seed=1)
    obs, r, term, trunc, info = vec.step(["<answer>0</answer>", "hmm", "<consult><query>q</query></consult>"])
    assert term.tolist() == [True, False, False] and trunc.tolist() == [False, True, True]
    assert info["_final_obs"].all() and info["final_obs"][1] == eapo_env.prompts.NUDGE
    assert info["final_info"]["verdict"].tolist()[1:] == ["no_answer", "no_answer"]
    assert all("Problem:" in o for o in obs) and info["turn"].tolist() == [0, 0, 0]


def test_disabled_autoreset_refuses_to_step_a_finished_env_until_masked_reset():
    vec = gym.make_vec("EAPO-Math-v0", num_envs=2, autoreset_mode=AutoresetMode.DISABLED)
    vec.reset(seed=0)
    vec.step(["<answer>1</answer>", "x"])
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(["x", "x"])
    _, info = vec.reset(options={"reset_mask": np.array([True, False])})
    assert info["_turn"].tolist() == [True, False]
    _, _, _, _, info = vec.step(["x", "x"])
    assert info["turn"].tolist() == [1, 2]


def test_subset_stepping_matches_single_envs_stepped_alone():
    spy = SpyExpert()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=3, expert=spy, **BASE)
    singles = [gym.make("EAPO-Math-v0", expert=SpyExpert(), **BASE) for _ in range(3)]
    obs, _ = vec.reset(seed=9)
    assert list(obs) == [env.reset(seed=9 + i)[0] for i, env in enumerate(singles)]
    plan = [["a", None, "<consult><query>q</query></consult>"], [None, "b", None], ["<answer>3</answer>", None, "c"]]
    for row in plan:
        obs, r, term, trunc, info = vec.step(row)
        for i, action in enumerate(row):
            if action is None:
                assert not info["_turn"][i] and r[i] == 0.0 and not term[i]
                continue
            o, ri, te, tr, inf = singles[i].step(action)
            assert (obs[i], r[i], term[i], trunc[i], info["turn"][i]) == (o, ri, te, tr, inf["turn"])
    # step_subset: compact results aligned with the indices
    obs, r, term, trunc, info = vec.step_subset([2, 1], ["d", "<consult><query>z</query></consult>"])
    o1, *_, i1 = singles[1].step("<consult><query>z</query></consult>")
    o2, *_, i2 = singles[2].step("d")
    assert obs == (o2, o1) and info["turn"].tolist() == [i2["turn"], i1["turn"]] and len(r) == 2


def test_set_progress_reaches_every_sub_env():
    vec = gym.make_vec(
        "EAPO-Math-v0",
        num_envs=4,
        acceptance_schedule="linear:1.0:0.0:100",
        turn_schedule="linear:8:2:100",
        consult_penalty="linear:0.0:1.0:100",
    )
    vec.reset(seed=0)
    vec.step(["<answer>0</answer>", "x", "x", "x"])  # env 0 is between episodes now
    vec.set_progress(50)
    assert vec.progress_step == 50
    assert vec.acceptance_probs.tolist() == [0.5, 1.0, 1.0, 1.0]  # in-episode envs wait for their reset
    eapo_env.set_progress(vec, 50)  # the generic helper finds it too
    _, r, *_ = vec.step(["x", "<consult><query>q</query></consult>", "x", "x"])
    assert r[1] == pytest.approx(-0.5)
    _, info = vec.reset()
    assert info["acceptance_prob"].tolist() == [0.5] * 4 and info["max_turns"].tolist() == [5] * 4


def test_seeding_is_per_env_and_reproducible():
    a = gym.make_vec("EAPO-Math-v0", num_envs=3)
    b = gym.make_vec("EAPO-Math-v0", num_envs=3)
    assert a.reset(seed=5)[0] == b.reset(seed=5)[0]
    assert a.get_attr("np_random_seed") == (5, 6, 7)
    single = gym.make("EAPO-Math-v0")
    assert a.reset(seed=[9, 8, 7])[0][0] == b.reset(seed=7)[0][2] == single.reset(seed=9)[0]
    assert a.reset()[0] != a.reset()[0]  # no seed: each env's RNG runs on


def test_close_closes_the_expert_and_errors_are_clear():
    class Closing(SpyExpert):
        closed = False

        def close(self) -> None:
            self.closed = True

    expert = Closing()
    vec = gym.make_vec("EAPO-Math-v0", num_envs=2, expert=expert)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(["a", "b"])
    vec.reset(seed=0)
    with pytest.raises(TypeError):
        vec.step(["a", 3])
    with pytest.raises(ValueError):
        vec.step(["a"])
    vec.close()
    assert expert.closed and vec.closed


def test_per_env_problem_options_pin_groups():
    vec = gym.make_vec("EAPO-Math-v0", num_envs=4, problems="generated:arithmetic")
    _, info = vec.reset(seed=0, options={"problem_index": [5, 5, 9, 9]})
    ids = info["problem_id"].tolist()
    assert ids[0] == ids[1] != ids[2] == ids[3]


def test_mixed_answer_types_are_verified_as_single_envs_do():
    from eapo_env.problems import Problem

    problems = [Problem("m", "2+2?", "4"), Problem("t", "Who wrote it?", "Ada Lovelace", meta={"answer_type": "text"})]
    kw = dict(problems=problems, expert="reference")
    vec = gym.make_vec("EAPO-Math-v0", num_envs=4, **kw)
    ref = SyncVectorEnv([lambda: gym.make("EAPO-Math-v0", **kw) for _ in range(4)])
    pins = {"problem_id": ["m", "t", "t", "m"]}
    vec.reset(seed=0, options=pins)
    ref_obs = [
        env.reset(seed=i, options={"problem_id": pid})[0]
        for i, (env, pid) in enumerate(zip(ref.envs, pins["problem_id"]))
    ]
    assert list(vec.reset(seed=0, options=pins)[0]) == ref_obs
    actions = ["<answer>4</answer>", "<answer>Lovelace</answer>", "<answer>ada lovelace</answer>", "<answer>5</answer>"]
    _, reward, terminated, _, info = vec.step(actions)
    want = [env.step(a) for env, a in zip(ref.envs, actions)]
    assert reward.tolist() == [w[1] for w in want]
    assert info["verdict"].tolist() == [w[4]["verdict"] for w in want]
    assert terminated.all() and 0 < reward[1] < 1 and reward[2] == 1.0


VALUES = st.one_of(
    st.integers(-5, 5),
    st.floats(-2, 2, allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.tuples(st.text(max_size=2)),
    st.builds(np.float32, st.floats(-1, 1, width=32)),
)
INFOS = st.fixed_dictionaries(  # a key holds dicts everywhere or nowhere (as env infos do)
    {}, optional={"a": VALUES, "b": VALUES, "c": st.dictionaries(st.sampled_from(["x", "y"]), VALUES)}
)


@settings(max_examples=300)
@given(st.lists(st.tuples(st.integers(0, 4), INFOS), max_size=6))
def test_columnar_info_merge_is_gymnasiums_add_info(entries):
    """The vector env's merge (the fast path its benchmark names) against Gymnasium's own rule."""
    from envs.vector_info import merge_infos

    sync = SyncVectorEnv([lambda: gym.make("EAPO-Math-v0") for _ in range(5)])
    try:
        want: dict[str, Any] = {}
        for env, info in entries:
            want = sync._add_info(want, info, env)
    except (TypeError, ValueError):  # values Gymnasium cannot merge (e.g. a str into a float array)
        with pytest.raises((TypeError, ValueError)):
            merge_infos(entries, 5)
        return
    got = merge_infos(entries, 5)
    np.testing.assert_equal(got, want)  # recursive; NaN (a None in a float column) equals NaN
    assert dtypes(got) == dtypes(want)


def dtypes(info: dict[str, Any]) -> dict[str, Any]:
    return {k: dtypes(v) if isinstance(v, dict) else v.dtype for k, v in info.items()}
