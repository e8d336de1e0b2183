"""Traces of the expert-reader recipe (issue 20): the policy re-derives the solution after a reply."""

from __future__ import annotations

import random

from agents.baselines import with_expert_replies
from agents.policy.recipes import BASE_TRACES, READER_TRACES, RECIPES
from agents.traces import hint_reply_fn, make_traces, solution_steps, workflow_trace
from eapo_env import prompts
from eapo_env.problems import load_problems
from eapo_env.protocol import ANSWER_OPEN

WORKFLOW_MARK = "\n<experts>\n<expert index="  # replies inside the prompt (the train prompt only names the tag)
PROBLEMS = [load_problems("generated:arithmetic:1-3")[i] for i in range(600)]


def _policy_turn_after_experts(trace: list[tuple[str, str]]) -> str | None:
    for i, (source, _) in enumerate(trace):
        if source == "expert":
            return trace[i + 1][1]
    return None


def test_the_shipped_recipe_still_answers_bare_after_a_reply() -> None:
    traces = make_traces(PROBLEMS, seed=0, config=BASE_TRACES)
    turns = [t for t in (_policy_turn_after_experts(x) for x in traces) if t is not None]
    assert turns and all(t.startswith(ANSWER_OPEN) for t in turns)  # "consult, copy": what issue 20 replaces
    assert not any(WORKFLOW_MARK in x[0][1] for x in traces)  # no workflow traces


def test_reader_writes_its_own_solution_after_every_reply() -> None:
    traces = make_traces(PROBLEMS, seed=0, config=READER_TRACES)
    by_id = {p.question: p for p in PROBLEMS}
    n_consult = 0
    for trace in traces:
        turn = _policy_turn_after_experts(trace)
        if turn is None:
            continue
        n_consult += 1
        question = trace[0][1].split("Problem: ", 1)[1].rstrip("\n")
        problem = by_id[question]
        assert turn == f"{solution_steps(problem)} {ANSWER_OPEN}{problem.answer}</answer>"
    assert n_consult > 150


def test_reader_mix_has_hints_unavailable_replies_and_workflows() -> None:
    traces = make_traces(PROBLEMS, seed=0, config=READER_TRACES)
    blocks = [text for trace in traces for source, text in trace if source == "expert"]
    workflows = [t for t in traces if WORKFLOW_MARK in t[0][1]]
    assert any("unavailable" in b for b in blocks)
    assert any("\\boxed" not in b and "unavailable" not in b for b in blocks)  # hint replies
    assert any("\\boxed" in b for b in blocks)  # reference replies
    assert 0.35 < len(workflows) / len(traces) < 0.55
    assert all(t[0][1].startswith("Solve the problem. Give the final answer") for t in workflows)  # eval prompt


def test_workflow_trace_is_what_eval_expert_shows() -> None:
    """The SFT prompt of a workflow trace is byte for byte the eval env's prompt under ``--expert hint``."""
    problem = PROBLEMS[4]
    hint = hint_reply_fn()
    trace = workflow_trace(problem, random.Random(0), READER_TRACES.__class__(unavailable_prob=0.0), hint)
    (shown,) = with_expert_replies([problem], [[hint(problem, problem.question)]])
    assert trace[0] == ("prompt", prompts.render_prompt(shown.question, eval_mode=True, max_experts=3, max_turns=8))


def test_level_two_and_three_solutions_keep_their_steps() -> None:
    for p in PROBLEMS:
        if p.meta["level"] in (2, 3):
            assert len(solution_steps(p)) <= READER_TRACES.max_reason_chars, p.solution


def test_recipes_are_named() -> None:
    assert RECIPES["base"][0] is BASE_TRACES and RECIPES["expert-reader"][0] is READER_TRACES
    assert RECIPES["expert-reader"][1] >= 400  # a level-3 trace with a reply fits the SFT window


def test_continue_turn_carries_out_only_what_the_reply_leaves_undone() -> None:
    """``reply_turn="continue"``: after a hint the unfinished step restated and done; after a
    first-step hint the remaining steps; after the full solution the answer; with no reply all steps."""
    from agents.policy.recipes import READER_CONTINUE_TRACES
    from agents.traces import _reply_turn, continuation

    problem = next(p for p in PROBLEMS if p.meta["level"] == 3)
    steps, answer = solution_steps(problem), f"{ANSWER_OPEN}{problem.answer}</answer>"
    hint, first = hint_reply_fn()(problem, ""), hint_reply_fn(True)(problem, "")
    last = steps.rsplit("$, $", 1)[1]  # "-57 + 17 = -40$."
    assert _reply_turn(problem, [hint], READER_CONTINUE_TRACES) == f"${last} {answer}"
    assert _reply_turn(problem, [None, first], READER_CONTINUE_TRACES) == f"{steps.split(chr(10), 1)[1]} {answer}"
    assert _reply_turn(problem, [problem.solution], READER_CONTINUE_TRACES) == answer
    assert _reply_turn(problem, [None], READER_CONTINUE_TRACES) == f"{steps} {answer}"
    assert continuation(steps, "unrelated text") == steps
    assert problem.answer not in hint.rsplit("=", 1)[-1]  # the hint withholds what the turn computes
