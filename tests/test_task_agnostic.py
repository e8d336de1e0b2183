"""A task type defined here and nowhere else (DESIGN §7 "A task is one object", §11): "reverse this
word", scored by equality, runs under ``gym.make``, ``gym.make_vec`` and 2 steps of ``eapo train``
with no edit to ``envs/``, ``wrappers/`` or ``agents/``: one task class plus its registration."""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence

import gymnasium as gym
from gymnasium.utils.env_checker import check_env

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env import Problem
from eapo_env.experts import ExpertReply, ExpertRequest
from eapo_env.problems import ProblemSource, load_problems
from eapo_env.tasks import Task, TextTask
from envs.vector_env import EAPOVectorEnv
from wrappers.turn import TurnWrapper

WORDS = ["stone", "river", "cloud", "apple", "tiger", "lemon", "house", "plant"]
REVERSE_ID = "EAPO-Reverse-v0"


# ---------------------------------------------------------------- the task: its one file would hold this
class ReverseTask(TextTask):
    """Reverse a word; the answer must equal the reversed word (the default equality scorer)."""

    name = "reverse"

    def problems(self, spec: object) -> ProblemSource:
        if spec is None:
            return load_problems([reverse_problem(i, w) for i, w in enumerate(WORDS)])
        return load_problems(spec)

    def prompt(self, problem: Problem, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
        ask = "" if eval_mode else f" You may ask up to {max_experts} experts: <consult><query>q</query></consult>."
        return f"Reverse the word.{ask} Answer as <answer>word</answer>.\n\n{problem.question}\n"

    def reference_reply(self, request: ExpertRequest) -> str:
        return f"Read it from the end: {request.problem.answer}"


def reverse_problem(i: int, word: str) -> Problem:
    return Problem(f"rev/{i}", f"Word: {word}", word[::-1], solution=f"Read it from the end: {word[::-1]}")


REVERSE = ReverseTask()


def make_reverse_vec(num_envs: int = 1, **kwargs: object) -> EAPOVectorEnv:
    kwargs.pop("max_episode_steps", None)
    return EAPOVectorEnv(num_envs, REVERSE_ID, **kwargs)  # type: ignore[arg-type]


# the registration: the math id's generic entry point (env + default wrappers), with this task
# (guarded: pytest imports this file as a test, the trainer again as "tests.test_task_agnostic")
if REVERSE_ID not in gym.registry:
    gym.register(
        REVERSE_ID,
        entry_point="wrappers.factory:make_math_env",
        vector_entry_point=make_reverse_vec,
        kwargs={"task": REVERSE},
    )


class SeenProblems(TurnWrapper):
    """Records the problem of every finished episode (the trainer builds it from an import path)."""

    seen: list[str] = []

    def outcome(self, outcome, plan):
        if outcome.ended:
            SeenProblems.seen.append(plan.problem.id)
        return outcome


class Counting:
    """An async expert that counts its batched calls."""

    def __init__(self) -> None:
        self.calls: list[list[ExpertRequest]] = []

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        self.calls.append(list(requests))
        return [ExpertReply(f"it is {r.problem.answer}") for r in requests]


# ---------------------------------------------------------------- tests
def test_the_task_is_one_object_following_the_protocol():
    assert isinstance(REVERSE, Task)
    assert REVERSE.score("enots", reverse_problem(0, "stone")).score == 1.0
    assert REVERSE.score("stone", reverse_problem(0, "stone")).status == "incorrect"


def test_the_task_runs_under_gym_make():
    env = gym.make(REVERSE_ID, max_turns=3)
    obs, info = env.reset(seed=0)
    problem = env.unwrapped.problem
    assert obs.startswith("Reverse the word.") and problem.id.startswith("rev/") and info["problem_id"] == problem.id
    assert env.observation_space.contains(obs)
    obs, reward, terminated, _, info = env.step("<consult><query>how?</query></consult>")
    assert f"Read it from the end: {problem.answer}" in obs and info["accepted"] == 1 and reward == 0.0
    obs, reward, terminated, truncated, info = env.step(f"<answer>{problem.answer}</answer>")
    assert (reward, terminated, truncated, info["verdict"], info["correct"]) == (1.0, True, False, "correct", True)
    env.reset(seed=1)
    assert env.step("<answer>nope</answer>")[1] == 0.0
    check_env(gym.make(REVERSE_ID).unwrapped, skip_render_check=True)


def test_the_task_runs_under_gym_make_vec_with_one_batched_call():
    expert = Counting()
    vec = gym.make_vec(REVERSE_ID, num_envs=3, expert=expert, max_turns=3)
    assert isinstance(vec, EAPOVectorEnv)
    obs, _ = vec.reset(seed=0)
    assert all(o.startswith("Reverse the word.") for o in obs)
    obs, *_, info = vec.step(["<consult><query>a</query><query>b</query></consult>"] * 3)
    assert len(expert.calls) == 1 and len(expert.calls[0]) == 6 and info["accepted"].tolist() == [2, 2, 2]
    answers = [f"<answer>{p.answer}</answer>" for p in vec.problems]
    _, reward, terminated, _, info = vec.step(answers)
    assert reward.tolist() == [1.0] * 3 and terminated.all() and info["correct"].all()
    vec.close()


def test_the_task_trains_for_two_steps_of_eapo_train(tmp_path):
    from agents.config import TrainConfig
    from agents.policy import build_policy
    from agents.trainer import train

    policy = build_policy(tmp_path / "policy", "tiny", sft_steps=0, n_train=50, n_heldout=0, verbose=False)
    problems = tmp_path / "reverse.jsonl"
    rows = [
        {"id": p.id, "question": p.question, "answer": p.answer, "solution": p.solution} for p in REVERSE.problems(None)
    ]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(
        policy=str(policy),
        env_id=REVERSE_ID,
        problems=str(problems),
        env_wrappers=("tests.test_task_agnostic:SeenProblems",),
        steps=2,
        group_size=2,
        prompts_per_step=2,
        max_turns=2,
        max_turn_tokens=6,
        max_total_tokens=160,
        tensorboard=False,
        progress_bar=False,
        final_eval=False,
    )
    seen = importlib.import_module("tests.test_task_agnostic").SeenProblems.seen
    seen.clear()
    train(cfg, tmp_path / "run", log=lambda m: None)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1] and all("accuracy" in r for r in records)
    assert seen and all(pid.startswith("rev/") for pid in seen)  # the episodes were the task's
