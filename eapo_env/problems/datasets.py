r"""Loaders for problem files: our own schema and published ones, from LOCAL files only.

Formats: JSONL, JSON (a list of rows, or ``{"problems": [...]}``), Parquet (needs ``pyarrow``), CSV
(stdlib), or a directory written by Hugging Face ``datasets.save_to_disk`` (needs ``datasets``). The
schema is detected from the column names (case-insensitively):

=============  ==========================================================  =========================
schema         columns                                                     ids
=============  ==========================================================  =========================
``eapo``       ``question``, ``answer`` (+ ``id``, ``solution``, ``meta``)  ``id`` (else ``<name>/<row>``)
``dapo``       ``prompt`` (chat list), ``reward_model.ground_truth``        ``dapo/<extra_info.index>``
``aime/aimo``  ``problem``, ``answer`` (+ ``id``/``problem_idx``, ...)      ``<name>/<id>``
=============  ==========================================================  =========================

``<name>`` is ``aime24``/``aime25``/``aimo``/``dapo`` when the file name says so (else the ``year``
column for AIME-style rows, else the file stem). Rows are validated strictly: a row without a question
or answer raises ``ValueError`` naming the row, unless ``skip_invalid=True`` (then it is dropped, and
one warning gives the count). Exact duplicate rows (same id and content, as in the published
DAPO parquet, which repeats prompts) are kept once; same id with different content is an error.

Example:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write(json.dumps({"id": "q1", "question": "1+1?", "answer": 2}) + "\n")
    >>> [(p.id, p.answer, p.meta["schema"]) for p in read_problems(path)]
    [('q1', '2', 'eapo')]
"""

from __future__ import annotations

import csv
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eapo_env.problems.base import Problem

__all__ = ["DAPO_PREFIX", "DAPO_SUFFIX", "detect_schema", "read_problems", "read_rows", "strip_dapo_prompt"]

#: The fixed instruction DAPO-Math-17k wraps around every question (stripped to recover it).
DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the "
    "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def _lazy(module: str, why: str) -> Any:
    # Optional dependencies are imported only when a file needs them, with an actionable message.
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ValueError(f"{why} needs the optional package {module!r}: pip install {module}") from exc


def read_rows(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of a local file (or ``save_to_disk`` directory) and its column names."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"problem file not found: {str(p)!r}")
    suffix = p.suffix.lower()
    if p.is_dir():
        datasets = _lazy("datasets", f"loading the dataset directory {str(p)!r}")
        ds = datasets.load_from_disk(str(p))
        if hasattr(ds, "keys"):  # a DatasetDict: take "train", or the only split
            splits = list(ds.keys())
            ds = ds["train"] if "train" in splits else ds[splits[0]] if len(splits) == 1 else None
            if ds is None:
                raise ValueError(f"{str(p)!r} holds several splits {splits}; pass one split's directory")
        rows = [dict(r) for r in ds]
        columns = list(ds.column_names)
    elif suffix == ".jsonl":
        rows = []
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{str(p)!r} line {lineno}: invalid JSON ({exc.msg})") from exc
        columns = _union_keys(rows, p)
    elif suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(p)!r}: invalid JSON ({exc.msg} at line {exc.lineno})") from exc
        if isinstance(data, Mapping) and isinstance(data.get("problems"), list):
            data = data["problems"]
        if not isinstance(data, list):
            raise ValueError(f"{str(p)!r}: expected a JSON list of rows or {{'problems': [...]}}")
        rows, columns = data, _union_keys(data, p)
    elif suffix == ".parquet":
        pq = _lazy("pyarrow.parquet", f"reading {str(p)!r}")
        table = pq.read_table(str(p))
        rows, columns = table.to_pylist(), list(table.column_names)
    elif suffix == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), list(reader.fieldnames or [])
    else:
        raise ValueError(f"unsupported problem file {str(p)!r}: expected one of {', '.join(_SUFFIXES)}")
    if not rows:
        raise ValueError(f"problem file {str(p)!r} has no rows")
    return rows, columns


def _union_keys(rows: Iterable[Any], path: Path) -> list[str]:
    seen: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"{str(path)!r} row {i}: expected a JSON object, got {type(row).__name__}")
        seen.update(dict.fromkeys(row))
    return list(seen)


def detect_schema(columns: Iterable[str]) -> str:
    """``"dapo"``, ``"eapo"`` or ``"problem"`` (AIME/AIMO style) from column names.

    >>> detect_schema(["data_source", "prompt", "ability", "reward_model", "extra_info"])
    'dapo'
    >>> detect_schema(["ID", "Problem", "Answer"])
    'problem'
    """
    cols = {c.lower() for c in columns}
    if {"prompt", "reward_model"} <= cols:
        return "dapo"
    if {"question", "answer"} <= cols:
        return "eapo"
    if {"problem", "answer"} <= cols:
        return "problem"
    raise ValueError(
        f"unknown problem schema; columns seen: {sorted(columns)}. Expected our schema "
        "(question, answer[, id, solution, meta]), DAPO (prompt, reward_model, ...) or "
        "AIME/AIMO (problem, answer[, id, solution])"
    )


def strip_dapo_prompt(content: str) -> str:
    """The question inside a DAPO-Math-17k user prompt (the fixed instruction removed).

    >>> strip_dapo_prompt(DAPO_PREFIX + "What is $1+1$?" + DAPO_SUFFIX)
    'What is $1+1$?'
    """
    text = content.strip()
    # Exact prefix/suffix only (str.lstrip/rstrip would strip *characters* and eat the question).
    if text.startswith(DAPO_PREFIX.strip()):
        text = text[len(DAPO_PREFIX.strip()) :]
    if text.endswith(DAPO_SUFFIX.strip()):
        text = text[: -len(DAPO_SUFFIX.strip())]
    return text.strip()


def _name_for(path: Path, schema: str, rows: list[dict[str, Any]]) -> str:
    stem = path.stem.lower() if path.suffix else path.name.lower()
    flat = re.sub(r"[-_ ]", "", stem)
    for key, name in (
        ("aime2024", "aime24"),
        ("aime2025", "aime25"),
        ("aime24", "aime24"),
        ("aime25", "aime25"),
        ("aimo", "aimo"),
        ("dapo", "dapo"),
    ):
        if key in flat:
            return name
    if schema == "dapo":
        return "dapo"
    year = str(_get(rows[0], "year") or "")
    if schema == "problem" and re.fullmatch(r"(19|20)\d\d", year.strip()):
        return f"aime{year.strip()[2:]}"
    return re.sub(r"[^a-z0-9_.-]+", "_", stem) or "problems"


def _get(row: Mapping[str, Any], key: str) -> Any:
    # Column names vary in case across mirrors ("Problem", "ID"): look up case-insensitively.
    if key in row:
        return row[key]
    for k, v in row.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 204.0 from a CSV/pandas round trip is the integer answer 204
    return str(value).strip()


def _row_to_problem(row: Mapping[str, Any], schema: str, name: str, i: int) -> Problem:
    meta: dict[str, Any] = {"source": name, "schema": schema, "answer_type": "math", "row": i}
    if schema == "dapo":
        prompt = _get(row, "prompt") or []
        user = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        question = strip_dapo_prompt(str(user[-1].get("content") or "")) if user else ""
        reward = _get(row, "reward_model") or {}
        answer = _text(reward.get("ground_truth") if isinstance(reward, Mapping) else None)
        extra = _get(row, "extra_info") or {}
        index = extra.get("index") if isinstance(extra, Mapping) else None
        pid = f"dapo/{_text(index) or i}"
        meta.update(data_source=_get(row, "data_source"), ability=_get(row, "ability"))
        solution = ""
    elif schema == "eapo":
        question, answer = _text(_get(row, "question")), _text(_get(row, "answer"))
        pid = _text(_get(row, "id")) or f"{name}/{i}"
        solution = _text(_get(row, "solution"))
        extra_meta = _get(row, "meta")
        if isinstance(extra_meta, str) and extra_meta.strip():  # CSV cells hold meta as JSON text
            try:
                extra_meta = json.loads(extra_meta)
            except json.JSONDecodeError:
                extra_meta = None
        if isinstance(extra_meta, Mapping):
            meta.update(extra_meta)
    else:
        question, answer = _text(_get(row, "problem")), _text(_get(row, "answer"))
        ident = _get(row, "id")
        ident = _get(row, "problem_idx") if ident is None else ident
        pid = f"{name}/{_text(ident) if _text(ident) else i}"
        solution = _text(_get(row, "solution"))
        meta.update({k: _get(row, k) for k in ("url", "year") if _get(row, k) is not None})
    if not question or not answer:
        missing = "question" if not question else "answer"
        raise ValueError(f"row {i} ({pid}) has no {missing}")
    return Problem(pid, question, answer, solution, meta)


def read_problems(
    path: str | os.PathLike[str], *, name: str | None = None, skip_invalid: bool = False
) -> list[Problem]:
    """The problems of a local file, schema auto-detected (see the module docs).

    Args:
        path: a ``.jsonl``/``.json``/``.parquet``/``.csv`` file or a ``save_to_disk`` directory.
        name: the id prefix for schemas without their own ids (default: inferred from the file name).
        skip_invalid: drop rows without a question or answer instead of raising ``ValueError``.
    """
    rows, columns = read_rows(path)
    schema = detect_schema(columns)
    label = name or _name_for(Path(path), schema, rows)
    problems: dict[str, Problem] = {}
    skipped = 0
    for i, row in enumerate(rows):
        try:
            problem = _row_to_problem(row, schema, label, i)
        except ValueError as exc:
            if not skip_invalid:
                raise ValueError(f"{str(path)!r}: {exc} (pass skip_invalid=True to drop such rows)") from exc
            skipped += 1
            continue
        old = problems.get(problem.id)
        if old is not None and (old.question, old.answer) != (problem.question, problem.answer):
            raise ValueError(f"{str(path)!r}: duplicate id {problem.id!r} with different content (row {i})")
        problems.setdefault(problem.id, problem)
    if not problems:
        raise ValueError(f"{str(path)!r}: no valid rows ({skipped} skipped)")
    if skipped:
        warnings.warn(f"{str(path)!r}: skipped {skipped} rows without a question or answer", stacklevel=2)
    return list(problems.values())
