"""Vector-env parity (DESIGN §7): ``gym.make_vec(id, N, env_wrappers=W)`` ≡ N single envs with the same wrappers.

The reference is Gymnasium's own ``SyncVectorEnv`` over N envs built as ``gym.make(id)`` + ``W``: the
batched vector env must return the same observations, rewards, flags and merged ``info`` at every
step, leave the same transcripts and consume the same random streams, in both autoreset modes that
step every env (next-step, same-step). A wrapper whose behaviour depends on which env of a vector env
it wraps, or on state shared between envs, breaks it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from eapo_env.testing.episodes import ParityScript, apply_wrappers, assert_info_equal
from eapo_env.testing.properties import Target, Violation, describe_difference, same
from eapo_env.testing.strategies import fill_gold


def make_vector_pair(target: Target, script: ParityScript) -> tuple[Any, SyncVectorEnv]:
    """The batched vector env and its reference, built from ``target`` for ``script``."""
    if target.env_id is None:
        raise ValueError("vector-env parity needs a registered env id (gym.make_vec), not a factory")
    env_id, wrappers = target.env_id, target.wrappers
    kwargs = {**target.env_kwargs, "acceptance_prob": script.acceptance_prob}
    mode = AutoresetMode(script.autoreset_mode)

    def single() -> gym.Env[Any, Any]:
        return apply_wrappers(gym.make(env_id, expert=target.make_expert(), **kwargs), wrappers)

    vec = gym.make_vec(
        env_id,
        num_envs=script.num_envs,
        expert=target.make_expert(),
        autoreset_mode=mode,
        env_wrappers=list(wrappers),
        **kwargs,
    )
    ref = SyncVectorEnv([single for _ in range(script.num_envs)], autoreset_mode=mode)
    return vec, ref


def _compare(what: str, got: Any, want: Any) -> None:
    obs_v, *arrays_v, info_v = got
    obs_r, *arrays_r, info_r = want
    if tuple(obs_v) != tuple(obs_r):
        i = next(i for i, (a, b) in enumerate(zip(obs_v, obs_r)) if a != b)
        raise Violation(f"{what}: env {i}'s observation differs: {obs_v[i]!r:.200} vs {obs_r[i]!r:.200}")
    for name, a, b in zip(("reward", "terminated", "truncated"), arrays_v, arrays_r):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.tolist() != b.tolist():
            raise Violation(f"{what}: {name} {a.tolist()} ({a.dtype}) vs {b.tolist()} ({b.dtype})")
    try:
        assert_info_equal(info_v, info_r)
    except AssertionError as exc:
        raise Violation(f"{what}: {exc}") from None


def check_vector_parity(target: Target, script: ParityScript) -> None:
    """``gym.make_vec`` ≡ ``SyncVectorEnv`` over single envs, step by step (see the module docs)."""
    vec, ref = make_vector_pair(target, script)
    try:
        _compare("reset", vec.reset(seed=script.seed), ref.reset(seed=script.seed))
        for t, row in enumerate(script.rows, start=1):
            problems = ref.get_attr("problem")
            actions = [fill_gold(a, p) for a, p in zip(row, problems)]
            _compare(f"step {t} (actions {actions!r:.300})", vec.step(actions), ref.step(tuple(actions)))
        for name in ("transcript", "max_turns", "acceptance_prob"):
            got, want = vec.get_attr(name), ref.get_attr(name)
            if not same(list(got), list(want)):
                i = next(i for i, (a, b) in enumerate(zip(got, want)) if not same(a, b))
                diff = describe_difference(got[i], want[i])
                raise Violation(f"after the steps env {i}'s {name} differs (vector vs single envs): {diff}")
        states = [g.bit_generator.state for g in vec.get_attr("np_random")]
        if states != [g.bit_generator.state for g in ref.get_attr("np_random")]:
            raise Violation("the envs consumed different random streams (np_random states differ)")
    finally:
        vec.close()
        ref.close()
