"""The skrl PPO example learns the consult-or-answer task on the token env (fixed seeds, < ~60 s)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("skrl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import skrl_ppo_token_env as example  # noqa: E402


@pytest.mark.slow
def test_ppo_beats_a_random_policy_by_a_clear_margin():
    import torch

    torch.set_num_threads(1)
    policy = example.train(timesteps=3000, seed=0)
    learned = example.evaluate(policy, episodes=200)
    random_return = example.evaluate(None, episodes=200)
    # random tokens: ~0.1 (a lucky guess); consulting then copying the digit: up to 1.0
    assert random_return < 0.2
    assert learned >= random_return + 0.25, (learned, random_return)


def test_the_task_rewards_consult_then_copy_and_punishes_guessing():
    env = example.make_env()
    tok = env.tokenizer
    env.reset(seed=0)
    gold = env.text_env.unwrapped.problem.answer
    obs, reward, terminated, *_ = env.step(tok.ids[example.CONSULT])
    assert reward == 0.0 and not terminated
    assert tok.ids[gold] in obs.tolist()  # the expert's digit is visible in the window
    obs, reward, terminated, *_ = env.step(tok.ids[f"<answer>{gold}</answer>"])
    assert terminated and reward == 1.0
    env.reset(seed=0)
    wrong = str((int(gold) + 1) % 10)
    assert env.step(tok.ids[f"<answer>{wrong}</answer>"])[1] == 0.0
