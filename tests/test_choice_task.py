"""The multiple-choice task (issue 22): letter extraction, the seeded choice order, the MMLU and GPQA
loaders on their published schemas, the generated family, and ``EAPO-Choice-v0`` / ``-Eval-v0``."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo_env.problems import Problem
from eapo_env.problems.qa_generated import IndexedSource
from eapo_env.problems.qa_sets import LETTERS, choice_order, choice_problem, load_gpqa, load_mmlu
from eapo_env.tasks import resolve_task
from eapo_env.tasks.choice import CHOICE, extract_choice
from tests import task_env_checks as checks

DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("make_qa_fixtures", DATA / "make_qa_fixtures.py")
assert _spec is not None and _spec.loader is not None
FX = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FX)
CHOICE_IDS = ["EAPO-Choice-v0", "EAPO-Choice-Eval-v0"]


# ------------------------------------------------------------------------------ letter extraction
@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("b", "B"),  # lower case counts
        (" (C) ", "C"),
        ("D.", "D"),
        ("[A]", "A"),
        (r"\boxed{C}", "C"),
        ("Reasoning first.\nAnswer: c", "C"),
        ("Answer: $B$", "B"),
        ("Answer:(D) because", "D"),
        ("So the answer is (A).", "A"),
        ("The answer is B because", "B"),
        ("(B) the second one", "B"),
        ("C) 131", "C"),
        ("A. Mercury", "A"),
        ("Answer: A\nAnswer: B", "A"),  # the first match
        ("Answer: B, not (A) as some say", "B"),
        ("<answer>D</answer> and later <answer>A</answer>", "D"),  # a whole completion: its first body
        ("E", "E"),  # a letter, out of range for four choices (the scorer decides)
    ],
)
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


@pytest.mark.parametrize("text", ["", "no idea", "I think so", "the answer is a guess", "Answers vary", "BC"])
def test_no_letter(text):
    assert extract_choice(text) is None


def _four(answer: str = "B") -> Problem:
    return Problem("p", "q\n\nA) w\nB) x\nC) y\nD) z", answer, meta={"num_choices": 4})


def test_scoring_statuses():
    p = _four("B")
    assert (CHOICE.score("B", p).status, CHOICE.score("B", p).score) == ("correct", 1.0)
    assert (CHOICE.score("Answer: b", p).status, CHOICE.score("c", p).score) == ("correct", 0.0)
    assert (CHOICE.score("A", p).status, CHOICE.score("A", p).score) == ("incorrect", 0.0)
    assert (CHOICE.score("no letter", p).status, CHOICE.score("no letter", p).score) == ("unparseable", 0.0)
    assert CHOICE.score("E", p).status == "unparseable"  # beyond the four choices
    six = Problem("q", "q", "F", meta={"num_choices": 6})
    assert CHOICE.score("F", six).correct and CHOICE.score("G", six).status == "unparseable"


# ------------------------------------------------------------------------------ the seeded order
@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(2, len(LETTERS)),
    correct=st.integers(0, len(LETTERS) - 1),
    seed=st.integers(0, 2**31),
    key=st.text(min_size=1, max_size=12),
)
def test_permutation_keeps_the_correct_choice_findable(n, correct, seed, key):
    correct %= n
    order = choice_order(n, seed=seed, key=key)
    assert sorted(order) == list(range(n)) and order == choice_order(n, seed=seed, key=key)
    choices = [f"choice-{k}" for k in range(n)]
    p = choice_problem(key, "Pick one.", choices, correct, seed=seed)
    letter = p.answer
    assert p.meta["choices"][LETTERS.index(letter)] == f"choice-{correct}"
    assert f"{letter}) choice-{correct}" in p.question
    assert CHOICE.score(letter, p).correct and CHOICE.score(extract_choice(p.solution) or "", p).correct


def test_order_depends_on_seed_and_key():
    orders = {tuple(choice_order(4, seed=s, key=k)) for s in range(6) for k in ("a", "b", "c")}
    assert len(orders) > 6  # not a fixed order


# ------------------------------------------------------------------------------ loaders
def test_mmlu_parquet_fixture():
    problems = CHOICE.problems(f"mmlu:{DATA / 'mmlu_tiny.parquet'}")
    assert len(problems) == len(FX.MMLU_ROWS)
    for i, (question, subject, choices, answer) in enumerate(FX.MMLU_ROWS):
        p = problems[i]
        assert p.id == f"mmlu/{i}" and p.meta["subject"] == subject and p.question.startswith(question)
        assert sorted(p.meta["choices"]) == sorted(choices)
        assert p.meta["choices"][LETTERS.index(p.answer)] == choices[answer] == p.meta["correct_text"]
        assert CHOICE.score(p.answer, p).correct


def test_gpqa_csv_fixture_shuffles_the_first_column():
    problems = load_gpqa(DATA / "gpqa_tiny.csv")
    assert [p.id for p in problems] == [f"gpqa/{row[-1]}" for row in FX.GPQA_ROWS]
    for p, row in zip(problems, FX.GPQA_ROWS):
        assert p.meta["correct_text"] == row[1].strip() and p.meta["domain"] == row[7]
        assert row[5].strip() in p.solution and CHOICE.score(p.answer, p).correct
    assert load_gpqa(DATA / "gpqa_tiny.csv") == problems  # the same order every load
    assert {p.answer for p in load_gpqa(DATA / "gpqa_tiny.csv", seed=5) + problems} != {"A"}


def test_mmlu_jsonl_and_letter_answers(tmp_path):
    path = tmp_path / "mmlu.jsonl"
    rows = [{"question": "q1", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 3}]
    rows.append({"question": "q2", "subject": "s", "choices": json.dumps(["a", "b"]), "answer": "B"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p1, p2 = load_mmlu(path)
    assert p1.meta["correct_text"] == "d" and p2.meta["correct_text"] == "b" and p2.meta["num_choices"] == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question": "q", "choices": ["a", "b"], "answer": 2}, "answer index 2 is outside"),
        ({"question": "q", "choices": ["a", "b"], "answer": "x"}, "not a choice index"),
        ({"question": "q", "choices": "oops", "answer": 0}, "not a list"),
        ({"question": "q", "choices": ["a"], "answer": 0}, "1 choices"),
        ({"question": "q", "choices": ["a", " "], "answer": 0}, "empty choice"),
        ({"question": "", "choices": ["a", "b"], "answer": 0}, "no 'question'"),
    ],
)
def test_malformed_mmlu_rows_name_the_row(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"question": "ok", "choices": ["a", "b"], "answer": 0}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=f"row 1: .*{message}"):
        load_mmlu(path)


def test_malformed_gpqa_row_names_the_row(tmp_path):
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FX.GPQA_COLUMNS)
        w.writerow(FX.GPQA_ROWS[0])
        w.writerow(["q?", "1", "2", "", "4", "", "", "", "r2"])
    with pytest.raises(ValueError, match="row 1: has no 'Incorrect Answer 2'"):
        load_gpqa(path)


# ------------------------------------------------------------------------------ generated family
def test_generated_family_is_deterministic_with_distinct_choices():
    a, b = IndexedSource("arithmetic_choice", seed=2, size=60), IndexedSource("arithmetic_choice", seed=2, size=60)
    assert [a[i] for i in range(60)] == [b[i] for i in range(60)] and a[0].id == "gen/arithmetic_choice/0@2"
    letters = set()
    for i in range(60):
        p = a[i]
        choices = p.meta["choices"]
        assert len(choices) == 4 == len(set(choices)), choices
        assert CHOICE.score(p.answer, p).correct and a.get(p.id) == p
        letters.add(p.answer)
    assert letters == set("ABCD")  # the seeded order spreads the correct letter


def test_task_resolves_by_name_and_spec_errors():
    assert resolve_task("choice") is CHOICE
    with pytest.raises(ValueError, match="unknown generated family 'nope'"):
        CHOICE.problems("generated:nope")
    assert CHOICE.problems("generated@4")[1].id == "gen/arithmetic_choice/1@4"
    with pytest.raises(ValueError, match="names no file"):
        CHOICE.problems("gpqa:")


# ------------------------------------------------------------------------------ the env ids
@pytest.mark.parametrize("env_id", CHOICE_IDS)
def test_gymnasium_checks_pass(env_id):
    checks.gymnasium_checks(env_id)


def test_reference_expert_episode_scores_one_and_a_wrong_letter_zero():
    env = gym.make("EAPO-Choice-v0")
    env.reset(seed=1)
    wrong = next(c for c in "ABCD" if c != env.unwrapped.problem.answer)
    checks.reference_episode("EAPO-Choice-v0", wrong=wrong, seed=0)  # seed 0 + 1 is the episode above


def test_eval_id_never_consults_and_reads_gpqa():
    checks.eval_id_never_consults("EAPO-Choice-Eval-v0")
    env = gym.make("EAPO-Choice-Eval-v0", problems=f"gpqa:{DATA / 'gpqa_tiny.csv'}")
    obs, _ = env.reset(seed=0)
    problem = env.unwrapped.problem
    assert problem.id.startswith("gpqa/") and "A) " in obs and "D) " in obs
    _, reward, *_ = env.step(f"<answer>Answer: {problem.answer.lower()}</answer>")
    assert reward == 1.0


@settings(max_examples=12, deadline=None)
@given(
    env_id=st.sampled_from(CHOICE_IDS),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    steps=st.lists(st.lists(st.sampled_from(checks.PARITY_ACTIONS), min_size=3, max_size=3), min_size=1, max_size=5),
)
def test_vector_env_matches_single_envs(env_id, n, seed, steps):
    checks.vector_parity(env_id, n, seed, steps)
