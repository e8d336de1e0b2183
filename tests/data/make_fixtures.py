"""Regenerate the tiny dataset fixtures in this folder, deterministically.

Run ``python tests/data/make_fixtures.py`` (needs ``pyarrow``). Each file follows the published schema
it stands for, with original toy problems (no copied competition text):

* ``dapo_math_17k_tiny.parquet`` — BytedTsinghua-SIA/DAPO-Math-17k: ``data_source``, ``prompt``
  (list of ``{content, role}``), ``ability``, ``reward_model`` ``{ground_truth, style}``,
  ``extra_info`` ``{index}``; the last row repeats the first, as the published file repeats prompts.
* ``aime24_tiny.jsonl`` — math-ai/aime24 / HuggingFaceH4/aime_2024: ``id`` (int), ``problem``,
  ``solution``, ``answer`` (str), ``url``, ``year``.
* ``aime25_tiny.parquet`` — math-ai/aime25: ``problem``, ``answer``, ``id`` (str).
* ``aimo_tiny.csv`` — Kaggle AIMO ``reference.csv``: ``id``, ``problem``, ``answer``.
* ``problems_tiny.jsonl`` — our own schema: ``id``, ``question``, ``answer``, ``solution``, ``meta``.

Example:
    >>> import tempfile
    >>> sorted(write_all(tempfile.mkdtemp()))[:2]
    ['aime24_tiny.jsonl', 'aime25_tiny.parquet']
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the "
    "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'

#: (question, answer) pairs shared by the fixtures; the tests read them from here.
DAPO_ROWS = [
    ("Find the sum of all positive divisors of $36$.", "91"),
    ("How many positive integers less than $100$ are divisible by $3$ or $5$?", "47"),
    ("Let $f(x) = x^2 - 4x + 7$. Find the minimum value of $f(x)$.", "3"),
    ("What is the remainder when $2^{20}$ is divided by $7$?", "4"),
    ("A square has diagonal $10$. Its area is $A$. Find $A$.", "50"),
    ("Answer: is not part of the instruction here. Compute $7 \\cdot 8$.", "56"),
]
AIME24_ROWS = [
    (60, "Find the number of ordered pairs $(a,b)$ of positive integers with $a+b=20$.", "19"),
    (61, "Find the largest prime factor of $2024$.", "23"),
    (62, "The product of two consecutive positive integers is $506$. Find the larger one.", "23"),
    (63, "Find the number of subsets of $\\{1,2,\\dots,10\\}$ with exactly $3$ elements.", "120"),
    (64, "Find $1+2+\\cdots+40$.", "820"),
]
AIME25_ROWS = [
    ("0", "Find the number of positive divisors of $2025$.", "15"),
    ("1", "Find the last three digits of $5^{5}$.", "125"),
    ("2", "Find the least positive integer $n$ with $n^2 > 2025$.", "46"),
    ("3", "A triangle has sides $13$, $14$, $15$. Find its area.", "84"),
    ("4", "Find $\\binom{9}{4}$.", "126"),
]
AIMO_ROWS = [
    ("229ee8", "Find the value of $3^4 - 4^3$.", "17"),
    ("246d26", "How many two-digit primes have a units digit of $7$?", "5"),
    ("2fc4ad", "Find the sum of the first $10$ odd positive integers.", "100"),
    ("430b63", "What is $\\gcd(84, 126)$?", "42"),
    ("5277ed", "Find the number of zeros at the end of $30!$.", "7"),
]
OURS_ROWS = [
    {
        "id": "toy/1",
        "question": "What is $2+3$?",
        "answer": "5",
        "solution": "$2+3=5$.\nThe answer is \\boxed{5}.",
        "meta": {"topic": "addition"},
    },
    {
        "id": "toy/2",
        "question": "Simplify $\\frac{6}{8}$.",
        "answer": "\\frac{3}{4}",
        "solution": "Divide by $2$.\nThe answer is \\boxed{\\frac{3}{4}}.",
    },
    {"id": "toy/3", "question": "Solve $2x = -8$.", "answer": "-4"},
    {"id": "toy/4", "question": "What is $10 \\div 4$?", "answer": "\\frac{5}{2}", "solution": ""},
    {"id": "toy/5", "question": "What is $7 \\times 6$?", "answer": "42", "meta": {"level": 1}},
]


def _dapo_table():  # noqa: ANN202 - pyarrow is optional at import time
    import pyarrow as pa

    rows = []
    for i, (question, answer) in enumerate(DAPO_ROWS + DAPO_ROWS[:1]):
        index = f"{(i % len(DAPO_ROWS)) * 7919 + 1000003:08x}-dapo-tiny"
        rows.append(
            {
                "data_source": "math_dapo",
                "prompt": [{"content": DAPO_PREFIX + question + DAPO_SUFFIX, "role": "user"}],
                "ability": "MATH",
                "reward_model": {"ground_truth": answer, "style": "rule-lighteval/MATH_v2"},
                "extra_info": {"index": index},
            }
        )
    schema = pa.schema(
        [
            ("data_source", pa.string()),
            ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
            ("ability", pa.string()),
            ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
            ("extra_info", pa.struct([("index", pa.string())])),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def write_all(folder: str | Path) -> list[str]:
    """Write every fixture into ``folder``; returns the file names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    # Fixed writer options so the same pyarrow version writes byte-identical files.
    opts = {"compression": "none", "use_dictionary": False, "write_statistics": False}
    pq.write_table(_dapo_table(), out / "dapo_math_17k_tiny.parquet", **opts)
    aime25 = pa.Table.from_pylist(
        [{"problem": p, "answer": a, "id": i} for i, p, a in AIME25_ROWS],
        schema=pa.schema([("problem", pa.string()), ("answer", pa.string()), ("id", pa.string())]),
    )
    pq.write_table(aime25, out / "aime25_tiny.parquet", **opts)
    with open(out / "aime24_tiny.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for ident, problem, answer in AIME24_ROWS:
            solution = f"... so the answer is $\\boxed{{{answer}}}$."
            row = {
                "id": ident,
                "problem": problem,
                "solution": solution,
                "answer": answer,
                "url": f"https://example.org/aime/2024/{ident}",
                "year": "2024",
            }
            f.write(json.dumps(row, sort_keys=False) + "\n")
    with open(out / "aimo_tiny.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "problem", "answer"])
        writer.writerows(AIMO_ROWS)
    with open(out / "problems_tiny.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for row in OURS_ROWS:
            f.write(json.dumps(row) + "\n")
    qa_spec = importlib.util.spec_from_file_location(
        "make_qa_fixtures", Path(__file__).with_name("make_qa_fixtures.py")
    )
    assert qa_spec is not None and qa_spec.loader is not None
    qa_module = importlib.util.module_from_spec(qa_spec)
    qa_spec.loader.exec_module(qa_module)  # the QA / multiple-choice fixtures live in their own script
    return [
        "dapo_math_17k_tiny.parquet",
        "aime25_tiny.parquet",
        "aime24_tiny.jsonl",
        "aimo_tiny.csv",
        "problems_tiny.jsonl",
        *qa_module.write_qa_fixtures(out),
    ]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for name in write_all(target):
        print(target / name)
