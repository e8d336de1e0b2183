"""The mechanism report (issue 20): does EAPO's expert help transfer once the policy can use it?

Rows (``learning_rows.MECH_ROWS``): ``self_explore`` (p(t) = 0), ``eapo_hint``, ``eapo_answer``,
``eapo_placebo`` and ``distill_full``, all from the expert-reader base, one update budget, the same
training prompt and caps, evaluated on the same held-out problems with consultation off. The report
states its prediction before any number, then the rows per level, the dose (share of episodes with an
accepted reply) and the densification (share of groups with a correct episode) over the first half of
training, the own consult rate at the end, and the verdicts with 95 % CIs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from learning_rows import MECH_ROWS, describe_schedule

from agents.metrics import read_metrics
from agents.stats import Estimate, RowScores, difference, levels, mean_score, row_scores

TARGET_LEVEL = "L2"
#: Pre-registered: written into the report above every result, and never edited after a run.
PREDICTION = [
    "## Pre-registered prediction",
    "",
    "Supports the paper: on the target level (arithmetic level 2, where the base alone scores 1-10 %),",
    "`eapo_hint` − `self_explore` ≥ +3 points with its 95 % CI above 0, **and** `eapo_hint` > `eapo_placebo`",
    "(CI above 0). Falsifies it: the CI of `eapo_hint` − `self_explore` includes 0 or lies below it, or",
    "`eapo_hint` does not beat `eapo_placebo` (then any gain is the schedule or the consult penalty, not",
    "the expert's content). Also reported, not part of the verdict: `eapo_answer` vs `eapo_hint` (does",
    "handing over the answer teach copying?) and `distill_full`.",
]


def _first_half_mean(records: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in records[: max(1, len(records) // 2)] if isinstance(r.get(key), (int, float))]
    return float(np.mean(vals)) if vals else float("nan")


def _last_tenth_mean(records: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return float(np.mean(vals[-max(1, len(vals) // 10) :])) if vals else float("nan")


def dose_table(out: Path, by_row: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Dose, densification (first half) and own consult rate (last 10 %) of every RL row, per seed mean."""
    lines = [
        "## Dose and densification",
        "",
        "| row | p(t) | dose: episodes with an accepted reply, first half | groups with ≥ 1 correct episode, "
        "first half | own consult rate, last 10 % (seeds) |",
        "|---|---|---|---|---|",
    ]
    for key, recs in by_row.items():
        metrics = [read_metrics(out / r["metrics"]) for r in recs if r.get("metrics")]
        if not metrics:
            continue
        dose = [_first_half_mean(m, "dose") for m in metrics]
        dense = [_first_half_mean(m, "solved_group_frac") for m in metrics]
        consult = [_last_tenth_mean(m, "consult_rate") for m in metrics]
        lines.append(
            f"| `{key}` | {describe_schedule(recs[0]['config']['acceptance_schedule'])} | {np.mean(dose):.1%} | "
            f"{np.mean(dense):.1%} | {np.mean(consult):.1%} ({', '.join(f'{v:.1%}' for v in consult)}) |"
        )
    return lines


def level_scores(scores: dict[str, RowScores]) -> list[str]:
    first = next(iter(scores.values()))
    lv = levels(first) or {"all": list(range(first.means.shape[1]))}
    lines = [
        "## Held-out Pass@k per level",
        "",
        "| row | " + " | ".join(lv) + " | all |",
        "|---|" + "---|" * (len(lv) + 1),
    ]
    for row in MECH_ROWS:
        if row.key in scores:
            cells = [mean_score(scores[row.key].subset(c)).fmt() for c in lv.values()]
            lines.append(
                f"| {row.label} (`{row.key}`) | " + " | ".join(cells) + f" | {mean_score(scores[row.key]).fmt()} |"
            )
    return lines


def _target(scores: dict[str, RowScores], key: str) -> RowScores:
    lv = levels(scores[key])
    return scores[key].subset(lv[TARGET_LEVEL]) if TARGET_LEVEL in lv else scores[key]


def verdict_lines(scores: dict[str, RowScores]) -> list[str]:
    need = {"eapo_hint", "self_explore", "eapo_placebo"}
    if not need <= scores.keys():
        return ["## Verdict", "", f"Not reached: rows {sorted(need - scores.keys())} did not run."]
    vs_self: Estimate = difference(_target(scores, "eapo_hint"), _target(scores, "self_explore"))
    vs_placebo: Estimate = difference(_target(scores, "eapo_hint"), _target(scores, "eapo_placebo"))
    ok = vs_self.value >= 0.03 and vs_self.lo > 0 and vs_placebo.lo > 0
    return [
        "## Verdict",
        "",
        f"On {TARGET_LEVEL}: `eapo_hint` − `self_explore` = {vs_self.fmt(signed=True)} points; "
        f"`eapo_hint` − `eapo_placebo` = {vs_placebo.fmt(signed=True)} points. "
        f"The prediction is **{'supported' if ok else 'not supported'}**.",
    ]


def write_mechanism_report(out: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """``<out>/report.md``: the prediction first, then the rows, dose/densification and the verdict."""
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_row[r["row"]].append(r)
    scores = {
        k: row_scores(k, [out / r["eval_csv"] for r in sorted(recs, key=lambda r: r["seed"])])
        for k, recs in by_row.items()
    }
    lines = [
        "# EAPO's mechanism: a base that can use an expert, hints it must carry out (issue 20)",
        "",
        f"Command: `{meta.get('command', '')}` · commit {meta.get('commit', '?')} · {meta.get('date', '')} · "
        f"policy `{meta.get('policy', '')}` · {meta.get('seconds', 0):.0f} s",
        "",
        *PREDICTION,
        "",
        *level_scores(scores),
        "",
        *dose_table(out, by_row),
        "",
        *verdict_lines(scores),
        *meta.get("notes", []),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
