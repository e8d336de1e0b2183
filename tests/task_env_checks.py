"""Checks every registered task id must pass (issue 22's acceptance), shared by the QA and choice tests:
the reference expert's episode, a right answer scoring 1 and a wrong one 0, Gymnasium's ``check_env``,
and ``gym.make_vec(id, n)`` giving the results of ``n`` single envs."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import SyncVectorEnv

import eapo_env  # noqa: F401  (registers the ids)
from tests.test_vector_env import assert_info_equal

GOLD = "<GOLD>"  # replaced by "<answer>{the env's reference answer}</answer>"
#: Turns of every kind: the right answer, wrong ones, consults (kept, empty), reasoning, a cut action.
PARITY_ACTIONS = (
    GOLD,
    "<answer>zzz qqq</answer>",
    "<answer>E</answer>",
    "<answer>Answer: b</answer>",
    "<consult><query>what is it?</query></consult>",
    "<consult><query> </query></consult>",
    "let me think",
    "x" * 300 + "<answer>1</answer>",
)


def reference_episode(env_id: str, wrong: str, seed: int = 0) -> None:
    """Consult the reference expert (its reply holds the answer), answer right: 1; a fresh episode, wrong: 0."""
    env = gym.make(env_id, max_turns=3)
    obs, info = env.reset(seed=seed)
    problem = env.unwrapped.problem
    assert info["problem_id"] == problem.id and env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step("<consult><query>how?</query></consult>")
    assert (reward, terminated, info["accepted"]) == (0.0, False, 1)
    assert problem.answer in obs, "the reference expert's reply names the answer"
    _, reward, terminated, truncated, info = env.step(f"<answer>{problem.answer}</answer>")
    assert (reward, terminated, truncated, info["verdict"], info["correct"]) == (1.0, True, False, "correct", True)
    env.reset(seed=seed + 1)
    _, reward, terminated, _, info = env.step(f"<answer>{wrong}</answer>")
    assert (reward, terminated, info["correct"]) == (0.0, True, False)
    env.close()


def eval_id_never_consults(env_id: str) -> None:
    env = gym.make(env_id, max_turns=2)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("<consult><query>how?</query></consult>")
    assert reward == 0.0 and info["accepted"] == 0
    env.close()


def gymnasium_checks(env_id: str) -> None:
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)
    check_env(gym.make(env_id), skip_render_check=True)


def vector_parity(env_id: str, n: int, seed: int, steps: Sequence[Sequence[str]]) -> None:
    """``gym.make_vec(env_id, n)`` ≡ ``SyncVectorEnv`` over ``n`` ``gym.make(env_id)``: obs, rewards,
    flags, infos, transcripts and the random stream consumed (default next-step autoreset)."""
    kw = dict(max_turns=3, max_action_chars=200)
    vec = gym.make_vec(env_id, num_envs=n, **kw)
    ref = SyncVectorEnv([lambda: gym.make(env_id, **kw) for _ in range(n)])
    obs_v, info_v = vec.reset(seed=seed)
    obs_r, info_r = ref.reset(seed=seed)
    assert obs_v == obs_r
    assert_info_equal(info_v, info_r)
    for row in steps:
        problems = [env.unwrapped.problem for env in ref.envs]
        actions = [f"<answer>{p.answer}</answer>" if a == GOLD else a for a, p in zip(row[:n], problems)]
        out_v, out_r = vec.step(actions), ref.step(tuple(actions))
        assert out_v[0] == out_r[0]
        for a, b in zip(out_v[1:4], out_r[1:4]):
            assert a.dtype == b.dtype and a.tolist() == b.tolist()
        assert_info_equal(out_v[4], out_r[4])
    for i in range(n):
        assert vec.transcripts[i] == ref.envs[i].unwrapped.transcript
        assert vec.get_attr("np_random")[i].bit_generator.state == ref.envs[i].unwrapped.np_random.bit_generator.state
    vec.close()
    ref.close()
