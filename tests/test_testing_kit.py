"""``eapo_env.testing`` (issue 24): the checker catches wrappers built to break one property each, names
that property with a minimal counterexample, and passes the project's own wrappers; the strategies draw
what they promise; ``eapo_env`` imports without hypothesis."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

import eapo_env  # noqa: F401  (registers the ids)
from eapo_env import parse_action
from eapo_env.experts import ExpertRequest, consult_blocking, make_expert
from eapo_env.tasks import TASKS
from eapo_env.testing import PROPERTIES, CountingExpert, EAPOEnvCheckError, ScriptedExpert, check_eapo_env
from eapo_env.testing.strategies import NON_ASCII, acceptance_schedules, expert_replies, policy_turns, problems
from envs import EAPOMathEnv
from envs.step import TurnOutcome
from envs.text_env import eapo_unwrapped
from envs.turns import TurnPlan
from tests.test_layers import imported_modules
from wrappers import (
    AcceptanceAnnealing,
    ConsultPenalty,
    EvalMode,
    RecordEpisodes,
    RewardVerification,
    TurnBudget,
    TurnWrapper,
)

REPO = Path(__file__).resolve().parents[1]
KW = {"problems": "generated:arithmetic", "max_turns": 4}
#: Few examples: each mutant is found within them (the seed is fixed), and the run stays short.
EXAMPLES = 12


# ---------------------------------------------------------------- mutants: each breaks one property
class HintOnStall(TurnWrapper):
    """Asks the expert for a hint on every reasoning turn, itself: also in evaluation mode."""

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        if outcome.kind != "reason":
            return outcome
        base = eapo_unwrapped(self)
        (reply,) = consult_blocking(base.expert, [ExpertRequest("hint", plan.problem, "hint?")])
        return outcome.evolve(observation=outcome.observation + reply.text)


class RewardOnReasoning(TurnWrapper):
    """Pays a small bonus for thinking: a reward on a non-answer turn, undeclared."""

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        return outcome.penalized("thinking_bonus", -0.01) if outcome.kind == "reason" else outcome


class GlobalRngJitter(TurnWrapper):
    """Jitters the answer's reward with Python's global RNG (not the env's ``np_random``)."""

    def outcome(self, outcome: TurnOutcome, plan: TurnPlan) -> TurnOutcome:
        return outcome.penalized("jitter", 0.01 * random.random()) if outcome.terminated else outcome


class LogOnlyWhatIUse(gym.Wrapper):
    """Keeps two ``info`` keys and drops the rest."""

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {k: info[k] for k in ("problem_id", "turn") if k in info}


class StripAnswersOnOddEnvs(TurnWrapper):
    """Rewrites the actions of every other env of a vector env (reads which env it is from the env)."""

    def action(self, action: str) -> str:
        prefix = eapo_unwrapped(self).request_prefix  # "" for a single env, "env<i>/" in a vector env
        odd = prefix.startswith("env") and int(prefix[3:-1]) % 2 == 1
        return action.replace("<answer>", "") if odd else action


MUTANTS = {
    "eval_mode_never_consults": HintOnStall,
    "rewards_on_answers_only": RewardOnReasoning,
    "determinism": GlobalRngJitter,
    "info_contract": LogOnlyWhatIUse,
    "vector_parity": StripAnswersOnOddEnvs,
}


@pytest.mark.parametrize("broken", sorted(MUTANTS))
def test_each_mutant_is_caught_with_the_property_it_breaks_named(broken):
    with pytest.raises(EAPOEnvCheckError) as caught:
        check_eapo_env("EAPO-Math-v0", wrappers=[MUTANTS[broken]], env_kwargs=KW, max_examples=EXAMPLES)
    err = caught.value
    assert err.property_name == broken, str(err)
    assert err.property_name in str(err) and err.detail and err.counterexample is not None
    # shrunk: one or two turns show each of the single-env faults; two envs the parity fault
    if broken == "vector_parity":
        assert err.counterexample.num_envs == 2, err.counterexample
    else:
        assert len(err.counterexample.turns) <= 2, err.counterexample


def test_shaping_must_be_declared():
    with pytest.raises(EAPOEnvCheckError) as caught:
        check_eapo_env(
            "EAPO-Math-v0", wrappers=[partial(ConsultPenalty, penalty=0.1)], env_kwargs=KW, max_examples=EXAMPLES
        )
    assert caught.value.property_name == "rewards_on_answers_only"
    assert "shaping=True" in caught.value.detail
    consult = caught.value.counterexample.turns[-1]
    assert parse_action(consult, 3).kind == "consult", caught.value.counterexample


# ---------------------------------------------------------------- the project's wrappers pass
CORRECT = {
    "defaults (RewardVerification)": dict(env="EAPO-Math-v0"),
    "RewardVerification (factory)": dict(env=lambda **kw: RewardVerification(EAPOMathEnv(**kw))),
    "AcceptanceAnnealing": dict(env="EAPO-Math-v0", wrappers=[partial(AcceptanceAnnealing, schedule="linear:1:0:3")]),
    "TurnBudget": dict(env="EAPO-Math-v0", wrappers=[partial(TurnBudget, schedule="linear:6:2:4")]),
    "ConsultPenalty (shaping)": dict(env="EAPO-Math-v0", wrappers=[partial(ConsultPenalty, penalty=0.1)], shaping=True),
    "EvalMode": dict(env="EAPO-Math-v0", wrappers=[partial(EvalMode, max_turns=3)]),
    "eval id": dict(env="EAPO-Math-Eval-v0"),
    "a stack": dict(
        env="EAPO-Math-v0",
        wrappers=[
            partial(AcceptanceAnnealing, schedule="cosine:1:0:5"),
            partial(ConsultPenalty, penalty="linear:0:1:4"),
        ],
        shaping=True,
    ),
}


@pytest.mark.parametrize("case", sorted(CORRECT))
def test_the_projects_wrappers_pass_every_property(case):
    report = check_eapo_env(**CORRECT[case], env_kwargs=KW, max_examples=EXAMPLES)
    skipped = {name for name, _ in report.skipped}
    assert set(report.passed) | skipped == set(PROPERTIES)
    assert skipped == ({"vector_parity"} if "factory" in case else set()), report


def test_the_recorder_passes_and_records(tmp_path):
    path = tmp_path / "episodes.jsonl"
    report = check_eapo_env(
        "EAPO-Math-v0", wrappers=[partial(RecordEpisodes, path=path)], env_kwargs=KW, max_examples=EXAMPLES
    )
    assert report.passed == PROPERTIES
    assert path.read_text().count("\n") > EXAMPLES  # it did record: every property ends episodes


def test_a_users_own_deterministic_expert_through_counting_expert():
    report = check_eapo_env(
        "EAPO-Math-v0",
        expert=lambda: CountingExpert(make_expert("reference")),
        env_kwargs=KW,
        max_examples=5,
        skip=("vector_parity",),
    )
    assert "vector_parity" not in report.passed and ("vector_parity", "skip=") in report.skipped


def test_bad_arguments_have_clear_errors():
    with pytest.raises(TypeError, match="fresh envs"):
        check_eapo_env(gym.make("EAPO-Math-v0"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown properties"):
        check_eapo_env("EAPO-Math-v0", skip=["determinsm"])
    with pytest.raises(ValueError, match="own deterministic expert"):
        check_eapo_env("EAPO-Math-v0", env_kwargs={"expert": "reference"})
    with pytest.raises(TypeError, match="not an EAPO env"):
        check_eapo_env(lambda **kw: gym.make("CartPole-v1"))


# ---------------------------------------------------------------- the strategies draw what they promise
def _parsed(action: str):
    return parse_action(action, max_queries=3)


@pytest.mark.parametrize(
    "what, condition",
    [
        ("an answer", lambda a: _parsed(a).kind == "answer"),
        ("a reasoning turn", lambda a: _parsed(a).kind == "reason" and "<" not in a),
        ("surplus queries", lambda a: _parsed(a).dropped_queries > 0),
        ("a blank query", lambda a: _parsed(a).blank_queries > 0 and _parsed(a).queries),
        ("a format error", lambda a: _parsed(a).format_error == "empty_consult"),
        ("an unclosed tag", lambda a: "<answer>" in a and "</answer>" not in a),
        ("a nested block", lambda a: "<query><query>" in a or "<answer>1 <answer>" in a),
        ("non-ASCII text", lambda a: any(ord(c) > 127 for c in a)),
        ("an overlong turn", lambda a: len(a) > 100),
    ],
)
def test_policy_turns_cover_every_case(what, condition):
    assert find(policy_turns(max_experts=3, max_chars=100), condition) is not None, what


@pytest.mark.parametrize("task", sorted(TASKS))
def test_problems_of_every_registered_task(task):
    problem = find(problems(task), lambda p: True)
    assert problem.question and problem.answer is not None


@given(st.lists(expert_replies(), min_size=1, max_size=4), st.integers(1, 3))
def test_faulty_replies_become_unavailable_entries_never_exceptions(replies, k):
    env = gym.make("EAPO-Math-v0", expert=ScriptedExpert(replies), **KW)
    env.reset(seed=0)
    obs, reward, _, _, info = env.step("<consult>" + "<query>q</query>" * k + "</consult>")
    ok = [r for r in (replies * k)[:k] if getattr(r, "status", None) == "ok" and isinstance(r.text, str)]
    assert info["accepted"] == k and info["unavailable"] >= k - len(ok)
    assert obs.count("<expert index=") == k and reward == 0.0


@given(acceptance_schedules(), st.integers(0, 10**6))
def test_acceptance_schedules_stay_probabilities(schedule, step):
    assert 0.0 <= schedule(step) <= 1.0


def test_non_ascii_snippets_are_not_ascii():
    assert all(any(ord(c) > 127 for c in s) for s in NON_ASCII)


# ---------------------------------------------------------------- packaging: optional, one way
def test_nothing_outside_the_kit_imports_it():
    for layer in ("eapo_env", "envs", "wrappers", "agents"):
        for path in (REPO / layer).rglob("*.py"):
            if "testing" in path.relative_to(REPO).parts[:2]:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, name in imported_modules(tree, path.stem, path.name == "__init__.py"):
                assert not name.startswith("eapo_env.testing"), f"{path}:{line} imports {name}"


def test_eapo_env_imports_without_hypothesis_and_the_kit_says_how_to_install_it():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["hypothesis"] = None  # not installed
        import gymnasium as gym, eapo_env, wrappers
        gym.make("EAPO-Math-v0").reset(seed=0)
        try:
            import eapo_env.testing
        except ImportError as exc:
            print(exc)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "pip install 'eapo[testing]'" in run.stdout, run.stdout
