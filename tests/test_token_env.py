"""EAPOTokenEnv: token-level view over the same text dynamics (DESIGN §3, §7)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import eapo_env  # noqa: F401
from eapo_env.protocol import PROTOCOL_TAGS
from envs.token_env import EAPOTokenEnv, ProtocolTokenizer
from tests.conftest import SpyExpert

TOK = ProtocolTokenizer(words=["hint"])


@given(st.text(alphabet="0123456789-/. hint<>/answerconsultquery", max_size=60))
def test_protocol_tokenizer_round_trips_its_own_alphabet(text):
    known = all(c in "0123456789-/. " for c in text.replace("hint", "")) and "<" not in text
    ids = TOK.encode(text)
    assert all(0 <= i < TOK.vocab_size for i in ids)
    if known:
        assert TOK.decode(ids) == text


def test_protocol_tags_are_single_tokens_and_stop_ids_cover_closers():
    for tag in PROTOCOL_TAGS:
        assert len(TOK.encode(tag)) == 1
    stops = TOK.stop_token_ids()
    assert {TOK.ids["</answer>"], TOK.ids["</consult>"], TOK.eos_token_id} <= stops
    assert TOK.ids["<answer>"] not in stops


def text_twin(**kw):
    return gym.make("EAPO-Math-v0", problems="generated:arithmetic", **kw)


@given(
    st.lists(
        st.sampled_from(
            ["<answer>", "</answer>", "<consult>", "</consult>", "<query>", "</query>", "1", "2", "hint", "<eos>"]
        ),
        max_size=40,
    ),
    st.integers(0, 1000),
)
def test_token_turns_equal_text_turns(tokens, seed):
    """Decoded turns stepped in the text env give the same rewards/flags as the token env."""
    spy_a, spy_b = SpyExpert(), SpyExpert()
    env = EAPOTokenEnv(
        tokenizer=TOK, window=12, max_turn_tokens=5, problems="generated:arithmetic", expert=spy_a, max_turns=3
    )
    twin = text_twin(expert=spy_b, max_turns=3)
    obs, info = env.reset(seed=seed)
    twin_obs, twin_info = twin.reset(seed=seed)
    assert info["problem_id"] == twin_info["problem_id"] and obs.shape == (12,)
    assert obs.tolist()[-len(TOK.encode(twin_obs)[-12:]) :] == TOK.encode(twin_obs)[-12:]
    for name in tokens:
        obs, reward, terminated, truncated, info = env.step(TOK.ids[name])
        assert env.observation_space.contains(obs)
        if info["turn_ended"]:
            t_obs, t_reward, t_term, t_trunc, t_info = twin.step(info["turn_text"])
            assert (reward, terminated, truncated) == (t_reward, t_term, t_trunc)
            assert info["turn"] == t_info["turn"]
        else:
            assert reward == 0.0 and not (terminated or truncated)
        if terminated or truncated:
            break
    assert sum(env.policy_mask) <= len(env.tokens)
    assert [r.query for r in spy_a.requests] == [r.query for r in spy_b.requests]


def test_turn_cap_and_answer_end_the_episode():
    from eapo_env.problems import Problem

    env = EAPOTokenEnv(tokenizer=TOK, max_turn_tokens=3, problems=[Problem("p", "1+1?", "2")], max_turns=2)
    env.reset(seed=0)
    env.step(TOK.ids["1"])
    _, _, _, _, info = env.step(TOK.ids["1"])
    assert not info["turn_ended"] and info["turn_tokens"] == 2
    _, _, _, _, info = env.step(TOK.ids["2"])
    assert info["turn_ended"] and info["turn_text"] == "112" and info["action"] == "reason"
    for t in TOK.encode("<answer>2</answer>"):
        obs, reward, terminated, truncated, info = env.step(t)
    assert terminated and reward == 1.0 and info["correct"]
    with pytest.raises(RuntimeError):
        env.step(0)
    env.reset(seed=1)
    with pytest.raises(ValueError):
        env.step(TOK.vocab_size)


def test_any_encode_decode_tokenizer_works_with_text_stop_detection():
    class CharTokenizer:  # stop strings span many tokens: the env must check the decoded text
        vocab_size = 256

        def encode(self, text):
            return [min(ord(c), 255) for c in text]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    env = EAPOTokenEnv(tokenizer=CharTokenizer(), problems="generated:arithmetic", max_turn_tokens=64)
    env.reset(seed=0)
    for c in "<answer>5</answer>":
        *_, terminated, truncated, info = env.step(ord(c))
    assert terminated and info["answer"] == "5"


def test_gymnasium_checker_and_vectorisation():
    from gymnasium.utils.env_checker import check_env

    env = EAPOTokenEnv(tokenizer=TOK, problems="generated:arithmetic", window=8)
    check_env(env, skip_render_check=True)
    vec = gym.vector.SyncVectorEnv([lambda: EAPOTokenEnv(tokenizer=TOK, window=8)] * 3)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (3, 8) and obs.dtype == np.int64
