"""The QA task (issue 22): SQuAD/HotpotQA scoring, the HotpotQA and SimpleQA loaders on their published
schemas, the generated ``facts`` family, and ``EAPO-QA-v0`` / ``EAPO-QA-Eval-v0`` under Gymnasium."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo_env.problems import Problem
from eapo_env.problems.qa_generated import IndexedSource
from eapo_env.problems.qa_sets import load_hotpotqa, load_simpleqa
from eapo_env.tasks import resolve_task
from eapo_env.tasks.qa import QA, gold_answers
from eapo_env.verify import best_qa_match, normalize_text, qa_match
from tests import task_env_checks as checks

DATA = Path(__file__).parent / "data"
_spec = importlib.util.spec_from_file_location("make_qa_fixtures", DATA / "make_qa_fixtures.py")
assert _spec is not None and _spec.loader is not None
FX = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FX)
QA_IDS = ["EAPO-QA-v0", "EAPO-QA-Eval-v0"]


# ------------------------------------------------------------------------------ scoring
@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an  apple, a pear! ", "apple pear"),
        ("Theory of the Atom", "theory of atom"),  # "the" as a word only, not inside "Theory"
        ("U.S.A.", "usa"),
        ("A", ""),
    ],
)
def test_squad_normalisation(text, normal):
    assert normalize_text(text) == normal


def test_f1_values_by_hand():
    # pred "paris france" vs gold "paris": common 1, P = 1/2, R = 1 -> F1 = 2/3
    assert qa_match("Paris, France", "Paris") == (False, pytest.approx(2 / 3))
    # multiset overlap: "cat cat dog" vs "cat dog dog" share one cat and one dog: common 2, P = R = 2/3
    assert qa_match("cat cat dog", "cat dog dog").f1 == pytest.approx(2 / 3)
    # "new york city" vs "york city": common 2, P = 2/3, R = 1 -> 0.8
    assert qa_match("new york city", "York City").f1 == pytest.approx(0.8)
    assert qa_match("Lyon", "Paris") == (False, 0.0)
    assert qa_match("the Paris!", "paris") == (True, 1.0)


def test_hotpotqa_yes_no_rule():
    assert qa_match("yes", "yes") == (True, 1.0)
    assert qa_match("yes", "no") == (False, 0.0)
    assert qa_match("yes it is", "yes") == (False, 0.0)  # partial F1 would be 2/3 without the rule
    assert qa_match("no", "no answer here").f1 == 0.0
    assert qa_match("noanswer", "something").f1 == 0.0


def test_best_over_golds_takes_each_metric_on_its_own():
    m = best_qa_match("big red house", ["red house", "the big red house", "barn"])
    assert m.exact_match and m.f1 == 1.0
    m = best_qa_match("red barn", ["red house", "barn"])
    assert not m.exact_match and m.f1 == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        best_qa_match("x", [])


def test_task_score_verdict_is_em_status_and_f1_score():
    p = Problem("p", "q?", "Ada Lovelace", meta={"gold_answers": ("Ada Lovelace", "Lovelace")})
    assert QA.score("lovelace", p).status == "correct"
    v = QA.score("Ada Byron", p)
    assert (v.status, v.score) == ("incorrect", pytest.approx(0.5))
    assert QA.score(r"It is \boxed{Ada Lovelace}", p).correct
    assert QA.score("", p).score == 0.0
    assert gold_answers(Problem("q", "q?", "x")) == ("x",)


WORDS = st.text(alphabet=st.sampled_from(list("abc XYZ,.!'-")), max_size=20)


@settings(max_examples=200, deadline=None)
@given(pred=WORDS, gold=WORDS)
def test_properties_em_implies_f1_one_and_bounds(pred, gold):
    m = qa_match(pred, gold)
    assert 0.0 <= m.f1 <= 1.0
    if m.exact_match:
        assert m.f1 == 1.0
    assert qa_match(pred, gold).f1 == pytest.approx(qa_match(gold, pred).f1)  # F1 is symmetric
    assert normalize_text(normalize_text(pred)) == normalize_text(pred)


# ------------------------------------------------------------------------------ loaders
def test_hotpotqa_fixture_raw_json_schema():
    problems = load_hotpotqa(DATA / "hotpotqa_tiny.json")
    assert len(problems) == len(FX.HOTPOT_ROWS)
    for p, (ident, question, answer, kind, level, facts, context) in zip(problems, FX.HOTPOT_ROWS):
        assert p.id == f"hotpotqa/{ident}" and p.answer == answer
        assert p.question.endswith(f"Question: {question}") and p.question.startswith("Context:\n[1] ")
        assert all(title in p.question for title, _ in context)
        assert (p.meta["type"], p.meta["level"], p.meta["answer_type"]) == (kind, level, "text")
        assert p.meta["supporting_facts"] == tuple((t, s) for t, s in facts)
        for title, sent in facts:  # the reference solution quotes each supporting sentence
            sentence = dict((t, s) for t, s in context)[title][sent].strip()
            assert sentence in p.solution
        assert QA.score(answer, p).correct


def test_hotpotqa_hf_dict_schema(tmp_path):
    row = {
        "id": "h1",
        "question": "Who?",
        "answer": "Bo",
        "type": "bridge",
        "level": "easy",
        "supporting_facts": {"title": ["T"], "sent_id": [1]},
        "context": {"title": ["T", "U"], "sentences": [["First.", " Bo did it."], ["Other."]]},
    }
    path = tmp_path / "hotpot.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (p,) = QA.problems(f"hotpotqa:{path}")
    assert p.id == "hotpotqa/h1" and "[1] T: First. Bo did it.\n[2] U: Other." in p.question
    assert 'T: "Bo did it."' in p.solution and p.solution.endswith("The answer is \\boxed{Bo}.")


def test_simpleqa_fixture():
    problems = QA.problems(f"simpleqa:{DATA / 'simpleqa_tiny.csv'}")
    assert len(problems) == len(FX.SIMPLEQA_ROWS)
    for i, (metadata, question, answer) in enumerate(FX.SIMPLEQA_ROWS):
        p = problems[i]
        assert (p.id, p.question, p.answer) == (f"simpleqa/{i}", question, answer)
        assert p.meta["metadata"] == metadata and p.meta["topic"] == metadata["topic"]
        assert p.meta["answer_type"] == "text"  # the SimpleQA "answer_type" stays inside meta["metadata"]


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.parametrize(
    ("loader", "rows", "message"),
    [
        (
            "hotpot",
            [{"_id": "a", "question": "q", "answer": "x", "context": []}, {"_id": "b", "question": "q"}],
            "row 1",
        ),
        ("hotpot", [{"_id": "a", "question": "q", "answer": "x", "context": "text"}], "row 0: context"),
        (
            "hotpot",
            [{"_id": "a", "question": "q", "answer": "x", "context": [], "supporting_facts": [["T", "z"]]}],
            "row 0",
        ),
        ("hotpot", [{"_id": "a", "question": "q", "answer": "x", "context": []}] * 2, "duplicate id"),
        ("simple", [["{'topic': 'A'}", "q?", "x"], ["{not a dict", "q?", "y"]], "row 1: metadata"),
        ("simple", [["{'topic': 'A'}", "q?", ""]], "row 0: has no 'answer'"),
        ("simple", [["[1, 2]", "q?", "x"]], "row 0: metadata is a list"),
    ],
)
def test_malformed_rows_name_the_row(tmp_path, loader, rows, message):
    if loader == "hotpot":
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(rows))
        call = load_hotpotqa
    else:
        path = tmp_path / "bad.csv"
        _write_csv(path, ["metadata", "problem", "answer"], rows)
        call = load_simpleqa
    with pytest.raises(ValueError, match=message):
        call(path)


def test_spec_errors():
    with pytest.raises(ValueError, match="names no file"):
        QA.problems("hotpotqa:")
    with pytest.raises(ValueError, match="not found"):
        QA.problems("simpleqa:/nonexistent/simple.csv")
    with pytest.raises(ValueError, match="unknown generated family 'nope'"):
        QA.problems("generated:nope")
    with pytest.raises(ValueError, match="bad seed"):
        QA.problems("generated@x")
    assert QA.problems("generated:facts@3")[0].id == "gen/facts/0@3" == QA.problems("generated@3")[0].id


# ------------------------------------------------------------------------------ generated family
def test_generated_facts_are_deterministic_and_scored_one_by_their_reference():
    a, b = IndexedSource("facts", seed=3, size=50), IndexedSource("facts", seed=3, size=50)
    assert [a[i] for i in range(50)] == [b[i] for i in range(50)]
    assert a[0].id == "gen/facts/0@3" and IndexedSource("facts")[7].id == "gen/facts/7"
    assert a[0] != IndexedSource("facts", seed=4)[0]
    kinds = {a[i].meta["type"] for i in range(50)}
    assert kinds == {"city", "profession", "year", "yesno", "comparison"}
    for i in range(50):
        p = a[i]
        assert p.answer in p.question or p.meta["type"] == "yesno"
        assert f"\\boxed{{{p.answer}}}" in p.solution and QA.score(p.answer, p).correct
        assert a.get(p.id) == p
    with pytest.raises(KeyError):
        a.get("gen/facts/0")  # seed 0's id is not in the seed-3 source
    with pytest.raises(IndexError):
        a[50]


def test_task_resolves_by_name():
    assert resolve_task("qa") is QA and QA.problems(None)[0].id == "gen/facts/0"


# ------------------------------------------------------------------------------ the env ids
@pytest.mark.parametrize("env_id", QA_IDS)
def test_gymnasium_checks_pass(env_id):
    checks.gymnasium_checks(env_id)


def test_reference_expert_episode_scores_one_and_a_wrong_answer_zero():
    checks.reference_episode("EAPO-QA-v0", wrong="zzz qqq")


def test_eval_id_never_consults_and_loads_fixture_specs():
    checks.eval_id_never_consults("EAPO-QA-Eval-v0")
    import gymnasium as gym

    env = gym.make("EAPO-QA-Eval-v0", problems=f"hotpotqa:{DATA / 'hotpotqa_tiny.json'}")
    obs, info = env.reset(seed=0, options={"problem_id": f"hotpotqa/{FX.HOTPOT_ROWS[1][0]}"})
    assert "Morrow House" in obs
    _, reward, *_ = env.step("<answer>No</answer>")
    assert reward == 1.0


@settings(max_examples=12, deadline=None)
@given(
    env_id=st.sampled_from(QA_IDS),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    steps=st.lists(st.lists(st.sampled_from(checks.PARITY_ACTIONS), min_size=3, max_size=3), min_size=1, max_size=5),
)
def test_vector_env_matches_single_envs(env_id, n, seed, steps):
    checks.vector_parity(env_id, n, seed, steps)
