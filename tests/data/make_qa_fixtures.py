"""The tiny QA and multiple-choice fixtures (original toy rows in the published schemas).

Written by ``python tests/data/make_fixtures.py`` (which calls :func:`write_qa_fixtures`), or alone by
``python tests/data/make_qa_fixtures.py``; the tests read the expected rows from here:

* ``hotpotqa_tiny.json`` — the raw HotpotQA distractor JSON: a list of ``_id, question, answer, type,
  level, supporting_facts`` (``[title, sent_id]`` pairs), ``context`` (``[title, [sentences]]`` pairs).
* ``simpleqa_tiny.csv`` — SimpleQA's ``simple_qa_test_set.csv``: ``metadata`` (a Python dict repr),
  ``problem``, ``answer``.
* ``mmlu_tiny.parquet`` — ``cais/mmlu``: ``question``, ``subject``, ``choices`` (list), ``answer`` (int 0-3).
* ``gpqa_tiny.csv`` — GPQA's CSV columns (a subset of its many): ``Question``, ``Correct Answer``,
  ``Incorrect Answer 1..3``, ``Explanation``, ``Subdomain``, ``High-level domain``, ``Record ID``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

#: (_id, question, answer, type, level, supporting_facts, context)
HOTPOT_ROWS = [
    (
        "5a8b57f25542995d1e6f1371",
        "Which river flows through the town where the Velmar bakery was founded?",
        "Ostra",
        "bridge",
        "medium",
        [["Velmar", 0], ["Drennick", 1]],
        [
            ["Velmar", ["Velmar is a bakery founded in Drennick.", " It sells rye bread."]],
            ["Drennick", ["Drennick is a small town.", " The river Ostra flows through Drennick."]],
            ["Pallow", ["Pallow is a village on the river Tane."]],
        ],
    ),
    (
        "5a8c7595554299585d9e36b6",
        "Are Kestrel Hall and Morrow House both museums?",
        "no",
        "comparison",
        "easy",
        [["Kestrel Hall", 0], ["Morrow House", 0]],
        [
            ["Kestrel Hall", ["Kestrel Hall is a museum of clocks."]],
            ["Morrow House", ["Morrow House is a private home."]],
        ],
    ),
    (
        "5a85ea095542994775f606a8",
        "In what year was the author of The Glass Orchard born?",
        "1931",
        "bridge",
        "hard",
        [["The Glass Orchard", 0], ["Ida Fenwright", 0]],
        [
            ["The Glass Orchard", ["The Glass Orchard is a novel by Ida Fenwright."]],
            ["Ida Fenwright", ["Ida Fenwright (born 1931) is a novelist.", " She lives in Harrow."]],
        ],
    ),
]
#: (metadata dict, problem, answer)
SIMPLEQA_ROWS = [
    (
        {"topic": "Geography", "answer_type": "Place", "urls": ["https://example.org/a"]},
        "Where is Mount Tarn?",
        "Osland",
    ),
    (
        {"topic": "Art", "answer_type": "Person", "urls": ["https://example.org/b"]},
        "Who painted Blue Ferns?",
        "Ada Quill",
    ),
    ({"topic": "History", "answer_type": "Date", "urls": []}, "In which year did the Toll Bridge open?", "1874"),
]
#: (question, subject, choices, answer index)
MMLU_ROWS = [
    ("What is 3 + 4?", "elementary_mathematics", ["6", "7", "8", "12"], 1),
    (
        "Which gas do plants take in for photosynthesis?",
        "high_school_biology",
        ["Oxygen", "Nitrogen", "Carbon dioxide", "Helium"],
        2,
    ),
    ("Which planet is closest to the Sun?", "astronomy", ["Mercury", "Venus", "Earth", "Mars"], 0),
    ("What is the chemical symbol for sodium?", "high_school_chemistry", ["S", "So", "Sd", "Na"], 3),
]
#: (Question, Correct Answer, Incorrect 1, 2, 3, Explanation, Subdomain, High-level domain, Record ID)
GPQA_ROWS = [
    (
        "What is the charge of an electron?",
        " -1 e",
        "+1 e",
        "0",
        "+2 e",
        "Electrons are negative.",
        "Physics (general)",
        "Physics",
        "recA1",
    ),
    (
        "How many chromosomes does a typical human cell have?",
        "46",
        "23",
        "44",
        "48",
        "23 pairs.",
        "Genetics",
        "Biology",
        "recB2",
    ),
    (
        "What is the pH of pure water at 25 C?",
        "7",
        "0",
        "14",
        "1",
        "Neutral.\n",
        "Chemistry (general)",
        "Chemistry",
        "recC3",
    ),
]
GPQA_COLUMNS = [
    "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
    "Explanation", "Subdomain", "High-level domain", "Record ID",
]  # fmt: skip


def write_qa_fixtures(out: Path) -> list[str]:
    """Write the four fixtures into ``out``; returns their file names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    hotpot = [
        {"_id": i, "answer": a, "question": q, "supporting_facts": sf, "context": c, "type": t, "level": lv}
        for i, q, a, t, lv, sf, c in HOTPOT_ROWS
    ]
    (out / "hotpotqa_tiny.json").write_text(json.dumps(hotpot, indent=1) + "\n", encoding="utf-8")
    with open(out / "simpleqa_tiny.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["metadata", "problem", "answer"])
        writer.writerows([(repr(m), p, a) for m, p, a in SIMPLEQA_ROWS])
    schema = pa.schema(
        [
            ("question", pa.string()),
            ("subject", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("answer", pa.int64()),
        ]
    )
    table = pa.Table.from_pylist(
        [{"question": q, "subject": s, "choices": c, "answer": a} for q, s, c, a in MMLU_ROWS], schema=schema
    )
    pq.write_table(table, out / "mmlu_tiny.parquet", compression="none", use_dictionary=False, write_statistics=False)
    with open(out / "gpqa_tiny.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(GPQA_COLUMNS)
        writer.writerows(GPQA_ROWS)
    return ["hotpotqa_tiny.json", "simpleqa_tiny.csv", "mmlu_tiny.parquet", "gpqa_tiny.csv"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for name in write_qa_fixtures(target):
        print(target / name)
