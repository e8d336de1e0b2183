"""Published-schema loaders: the tiny fixtures in tests/data load through ``load_problems(path)``."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from eapo_env.problems import SequenceSource, load_problems
from eapo_env.problems.datasets import (
    DAPO_PREFIX,
    DAPO_SUFFIX,
    detect_schema,
    read_problems,
    strip_dapo_prompt,
)

DATA = Path(__file__).parent / "data"


def _fixture_module():  # the fixture script owns the expected rows
    spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


FX = _fixture_module()


def test_instruction_text_matches_the_fixture_script() -> None:
    # Two copies of the DAPO instruction exist (library, fixture writer); they must agree.
    assert (FX.DAPO_PREFIX, FX.DAPO_SUFFIX) == (DAPO_PREFIX, DAPO_SUFFIX)


def test_dapo_parquet() -> None:
    src = load_problems(DATA / "dapo_math_17k_tiny.parquet")
    assert isinstance(src, SequenceSource)
    assert len(src) == len(FX.DAPO_ROWS), "the repeated last row is the same problem, kept once"
    for i, (question, answer) in enumerate(FX.DAPO_ROWS):
        p = src[i]
        assert p.id == f"dapo/{(i * 7919 + 1000003):08x}-dapo-tiny"
        assert (p.question, p.answer, p.solution) == (question, answer, "")
        assert "Answer:" not in p.question or p.question.startswith("Answer: is not part")
        assert p.meta["source"] == "dapo" and p.meta["data_source"] == "math_dapo"
        assert p.meta["ability"] == "MATH" and p.meta["answer_type"] == "math"
    assert src.get(src[2].id) is src[2]


def test_strip_dapo_prompt_is_exact() -> None:
    q = "Answer the following: what is $1+1$?\n\nAnswer: 2?"
    assert strip_dapo_prompt(DAPO_PREFIX + q + DAPO_SUFFIX) == q
    assert strip_dapo_prompt("  plain question  ") == "plain question"
    # A character-set strip (str.lstrip(prefix)) would eat the leading "Solve" letters here.
    assert strip_dapo_prompt(DAPO_PREFIX + "Solve x=1.") == "Solve x=1."


def test_aime24_jsonl() -> None:
    src = load_problems(str(DATA / "aime24_tiny.jsonl"))
    assert [p.id for p in src] == [f"aime24/{i}" for i, _, _ in FX.AIME24_ROWS]
    assert [(p.question, p.answer) for p in src] == [(q, a) for _, q, a in FX.AIME24_ROWS]
    first = src[0]
    assert first.solution.endswith("$\\boxed{19}$.")
    assert first.meta["year"] == "2024" and first.meta["url"].endswith("/60")


def test_aime25_parquet() -> None:
    src = load_problems(DATA / "aime25_tiny.parquet")
    assert [(p.id, p.question, p.answer) for p in src] == [(f"aime25/{i}", q, a) for i, q, a in FX.AIME25_ROWS]


def test_aimo_csv() -> None:
    src = load_problems(DATA / "aimo_tiny.csv")
    assert [(p.id, p.question, p.answer) for p in src] == [(f"aimo/{i}", q, a) for i, q, a in FX.AIMO_ROWS]
    assert src.get("aimo/430b63").question == "What is $\\gcd(84, 126)$?"  # quoted CSV cell


def test_our_schema_jsonl_and_roundtrip(tmp_path: Path) -> None:
    src = load_problems(DATA / "problems_tiny.jsonl")
    assert [p.id for p in src] == [r["id"] for r in FX.OURS_ROWS]
    assert src.get("toy/2").answer == "\\frac{3}{4}" and src.get("toy/1").meta["topic"] == "addition"
    assert src.get("toy/3").solution == ""
    # Our schema written as JSON, CSV (meta as JSON text) and via Problem.to_dict reads back the same.
    rows = [p.to_dict() for p in src]
    (tmp_path / "mine.json").write_text(json.dumps({"problems": rows}))
    again = load_problems(tmp_path / "mine.json")
    assert [(p.id, p.question, p.answer, p.solution) for p in again] == [
        (p.id, p.question, p.answer, p.solution) for p in src
    ]
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text('id,question,answer,meta\nx1,"What is 3, plus 4?",7,"{""level"": 2}"\n')
    p = load_problems(csv_path)[0]
    assert (p.id, p.question, p.answer, p.meta["level"]) == ("x1", "What is 3, plus 4?", "7", 2)


def test_ids_fall_back_to_name_and_row(tmp_path: Path) -> None:
    path = tmp_path / "Competition-Set.jsonl"
    path.write_text(json.dumps({"Problem": "2+2?", "Answer": 4.0}) + "\n")
    (p,) = read_problems(path)
    assert (p.id, p.answer, p.meta["schema"]) == ("competition-set/0", "4", "problem")
    (p,) = read_problems(path, name="mine")
    assert p.id == "mine/0"
    year = tmp_path / "x.jsonl"
    year.write_text(json.dumps({"id": 3, "problem": "q", "answer": "1", "year": "2024"}) + "\n")
    assert read_problems(year)[0].id == "aime24/3"


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ("", ".jsonl", "no rows"),
        ("\n\n", ".jsonl", "no rows"),
        ('{"question": "q", "answer": "1"}\n{broken\n', ".jsonl", "line 2"),
        ('{"foo": 1, "bar": 2}\n', ".jsonl", r"columns seen: \['bar', 'foo'\]"),
        ('{"question": "q"}\n', ".jsonl", "unknown problem schema"),
        ('{"question": "q", "answer": "1"}\n{"question": "r", "answer": ""}\n', ".jsonl", "row 1.*no answer"),
        (
            '{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "r", "answer": "2"}\n',
            ".jsonl",
            "duplicate id",
        ),
        ("[1, 2]", ".json", "expected a JSON object"),
        ('{"rows": []}', ".json", "JSON list"),
        ("id,problem\n1,q\n", ".csv", "columns seen"),
        ("id,problem,answer\n", ".csv", "no rows"),
        ("whatever", ".txt", "unknown problem spec|unsupported"),
    ],
)
def test_bad_files_raise_value_error(tmp_path: Path, content: str, suffix: str, match: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_problems(str(path))


def test_skip_invalid_rows(tmp_path: Path) -> None:
    path = tmp_path / "some.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n{"question": "r", "answer": null}\n')
    with pytest.warns(UserWarning, match="skipped 1 rows"):
        src = load_problems(path, skip_invalid=True)
    assert [p.id for p in src] == ["some/0"]


def test_missing_file_and_schema_detection() -> None:
    with pytest.raises(ValueError, match="not found"):
        load_problems(DATA / "does_not_exist.parquet")
    with pytest.raises(ValueError, match="not found"):
        load_problems("no/such/file.csv")
    assert detect_schema(["ID", "Problem", "Answer"]) == "problem"
    assert detect_schema(["question", "answer", "problem"]) == "eapo"
    with pytest.raises(ValueError, match="columns seen"):
        detect_schema(["text", "label"])


def test_dataset_directory_needs_the_datasets_package(tmp_path: Path) -> None:
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("the datasets package is installed here; this checks the message without it")
    with pytest.raises(ValueError, match="pip install datasets"):
        load_problems(tmp_path)
