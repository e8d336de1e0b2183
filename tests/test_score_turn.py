"""``eapo_env.score_turn``: the env's reward of a final turn as one call, equal to the env's own.

The property: for any action and problem, ``score_turn(action, problem)`` gives the reward,
``info["verdict"]``, ``info["correct"]``, ``info["answer"]`` and ``info["action_truncated"]`` that the
registered env gives when that action is the episode's last turn (``max_turns=1``).
"""

from __future__ import annotations

import functools

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eapo_env
from eapo_env import Problem, TurnScore, score_turn
from eapo_env.problems import load_problems
from eapo_env.scoring import NO_ANSWER, read_action, score_answer
from eapo_env.verify import Verdict

PROBLEMS: list[Problem] = [load_problems("generated")[i] for i in range(0, 400, 23)]
PROBLEMS += [
    Problem("t/frac", "Simplify 6/8.", "\\frac{3}{4}"),
    Problem("t/neg", "2 - 5?", "-3"),
    Problem("t/text", "Who wrote it?", "Ada Lovelace", meta={"answer_type": "text"}),
]


def _fragments(problem: Problem) -> st.SearchStrategy[str]:
    """Pieces that make actions interesting: tags, the gold, near misses, other answer forms."""
    pieces = [
        "<answer>", "</answer>", "<consult>", "</consult>", "<query>", "</query>", "<think>", "</think>",
        problem.answer, f" {problem.answer} ", "$" + problem.answer + "$", "x = " + problem.answer,
        "\\boxed{" + problem.answer + "}", "The final answer is " + problem.answer, "7", "-1", "1/2", " ",
        "\n", "<answer", "answer>", "</ans", "Ada", "lovelace",
    ]  # fmt: skip
    return st.one_of(st.sampled_from(pieces), st.text(max_size=8))


@st.composite
def problem_and_action(draw: st.DrawFn) -> tuple[Problem, str]:
    problem = draw(st.sampled_from(PROBLEMS))
    action = "".join(draw(st.lists(_fragments(problem), max_size=12)))
    return problem, action


@functools.cache
def _env(env_id: str, max_action_chars: int) -> gym.Env[str, str]:
    return gym.make(env_id, problems=PROBLEMS, max_turns=1, max_action_chars=max_action_chars)


def _env_final_turn(env_id: str, problem: Problem, action: str, max_action_chars: int) -> tuple[float, dict]:
    env = _env(env_id, max_action_chars)
    env.reset(seed=0, options={"problem": problem})
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated or truncated  # max_turns=1: every turn is the last
    return float(reward), info


def _assert_same(scored: TurnScore, reward: float, info: dict) -> None:
    assert scored.score == reward
    assert scored.status == info["verdict"]
    assert scored.correct is info["correct"]
    assert scored.answer == info["answer"]
    assert scored.kind == info["action"]
    assert scored.action_truncated is info["action_truncated"]


@settings(max_examples=300, deadline=None)
@given(problem_and_action())
def test_score_turn_equals_the_env_reward_of_a_final_turn(case: tuple[Problem, str]) -> None:
    problem, action = case
    reward, info = _env_final_turn(eapo_env.TRAIN_ID, problem, action, eapo_env.scoring.MAX_ACTION_CHARS)
    _assert_same(score_turn(action, problem), reward, info)


@settings(max_examples=100, deadline=None)
@given(problem_and_action(), st.integers(min_value=1, max_value=40))
def test_score_turn_cuts_the_action_as_the_env_does(case: tuple[Problem, str], max_chars: int) -> None:
    problem, action = case
    reward, info = _env_final_turn(eapo_env.EVAL_ID, problem, action, max_chars)
    _assert_same(score_turn(action, problem, max_action_chars=max_chars), reward, info)


def test_score_turn_reads_only_the_first_complete_answer_block() -> None:
    p = Problem("p", "2+3?", "5")
    assert score_turn("<answer>5</answer>", p) == TurnScore(1.0, "correct", "5", "answer")
    assert score_turn("<answer>4</answer> <answer>5</answer>", p).status == "incorrect"
    assert score_turn("<answer>1 <answer>5</answer>", p).answer == "5"  # innermost body, as the env
    # A consult that closes first decides the turn: no answer, reward 0 (penalties are wrappers' business).
    assert score_turn("<consult><query>q</query></consult><answer>5</answer>", p).status == NO_ANSWER
    # verify() alone would find these; the env (and so score_turn) scores them 0.
    for no_block in ("\\boxed{5}", "The final answer is 5.", "<answer>5", "5</answer>"):
        assert score_turn(no_block, p) == TurnScore(0.0, NO_ANSWER, None, "reason"), no_block
    assert score_turn("<answer> five </answer>", p) == TurnScore(0.0, "unparseable", "five", "answer")


def test_score_turn_takes_the_envs_verifier_and_rejects_non_text() -> None:
    p = Problem("p", "2+3?", "5")

    def always_half(prediction: str, problem: Problem) -> Verdict:
        return Verdict("incorrect", 0.5)

    assert score_turn("<answer>x</answer>", p, verifier=always_half).score == 0.5
    env = gym.make(eapo_env.TRAIN_ID, problems=[p], max_turns=1)
    with pytest.raises(TypeError, match="action must be str"):
        score_turn(b"<answer>5</answer>", p)  # type: ignore[arg-type]
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action must be str"):
        env.step(b"<answer>5</answer>")  # type: ignore[arg-type]
    assert score_answer(None, p).status == NO_ANSWER
    assert read_action("ab<answer>5</answer>", max_chars=3) == read_action("ab<", max_chars=3)._replace(truncated=True)
