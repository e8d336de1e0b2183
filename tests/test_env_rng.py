"""The env's generator is Gymnasium's own ``np_random`` (no override): what a user reads is exactly
what Gymnasium's ``Env.reset(seed=s)`` gives, and the env draws only from it."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils import seeding
from hypothesis import given
from hypothesis import strategies as st

import eapo_env  # noqa: F401  (registers the ids)


def make(**kw):
    return gym.make("EAPO-Math-v0", expert="reference", **kw)


@given(st.integers(0, 2**63), st.lists(st.sampled_from(["a", "consult", "answer"]), max_size=4), st.floats(0.01, 0.99))
def test_np_random_is_gymnasium_s_generator(seed, actions, p):
    # Gymnasium's: same seed, same generator state, same stream after the env drew from it.
    env = make(acceptance_prob=p, max_turns=8)
    ref, ref_seed = seeding.np_random(seed)
    _, info = env.reset(seed=seed)  # an unpinned problem is the generator's first draw
    assert info["problem_id"] == env.unwrapped.source[int((int(ref.bit_generator.random_raw()) * 100_000) >> 64)].id
    ref, _ = seeding.np_random(seed)
    env.reset(seed=seed, options={"problem_index": 3})  # pinned: nothing drawn
    assert env.np_random_seed == ref_seed == seed
    assert type(env.unwrapped).np_random is gym.Env.np_random  # Gymnasium's property, not an override
    wording = {"a": "thinking", "consult": "<consult><query>q</query></consult>", "answer": "<answer>1</answer>"}
    for a in actions:
        _, _, terminated, _, info = env.step(wording[a])
        if a == "consult":
            ref.random(1)  # one acceptance draw per kept query
        if terminated:
            break
    assert env.np_random.bit_generator.state == ref.bit_generator.state


def test_bad_seed_is_refused_at_reset_as_gymnasium_refuses_it():
    env = make()
    for bad in (-1, 1.5, "3"):
        with pytest.raises(gym.error.Error, match="Seed must be"):
            env.reset(seed=bad)
