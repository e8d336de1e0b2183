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

TARGET_LEVEL = "L3"
#: Pre-registered: written into the report above every result, and never edited after a run.
PREDICTION = [
    "## Pre-registered prediction",
    "",
    "Supports the paper: on the target level (arithmetic level 3, where the base alone scores 1-10 %),",
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


#: Each row's per-step training metrics (``metrics.jsonl``), one list per seed that has them.
RowMetrics = dict[str, list[list[dict[str, Any]]]]


def read_row_metrics(out: Path, by_row: dict[str, list[dict[str, Any]]]) -> RowMetrics:
    """Every row's training metrics, read once for the dose table and the curves."""
    return {key: [read_metrics(out / r["metrics"]) for r in recs if r.get("metrics")] for key, recs in by_row.items()}


def dose_table(by_row: dict[str, list[dict[str, Any]]], row_metrics: RowMetrics) -> list[str]:
    """Dose, densification (first half) and own consult rate (last 10 %) of every RL row, per seed mean."""
    lines = [
        "## Dose and densification",
        "",
        "| row | p(t) | dose: episodes with an accepted reply, first half | groups with ≥ 1 correct episode, "
        "first half | own consult rate, last 10 % (seeds) |",
        "|---|---|---|---|---|",
    ]
    checks: list[str] = []
    for key, recs in by_row.items():
        metrics = row_metrics[key]
        if not metrics:
            continue
        dose = [_first_half_mean(m, "dose") for m in metrics]
        dense = [_first_half_mean(m, "solved_group_frac") for m in metrics]
        consult = [_last_tenth_mean(m, "consult_rate") for m in metrics]
        lines.append(
            f"| `{key}` | {describe_schedule(recs[0]['config']['acceptance_schedule'])} | {np.mean(dose):.1%} | "
            f"{np.mean(dense):.1%} | {np.mean(consult):.1%} ({', '.join(f'{v:.1%}' for v in consult)}) |"
        )
        if key == "eapo_hint":
            dosed, weaned = min(dose) >= 0.25, max(consult) < 0.05
            checks.append(
                f"`eapo_hint`: a real dose (≥ 25 % of the first half's episodes with an accepted reply, every seed) "
                f"**{'met' if dosed else 'not met'}**; weaned (own consult rate < 5 % at the end, every seed) "
                f"**{'met' if weaned else 'not met'}**."
            )
    return lines + ([""] + checks if checks else [])


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


def _by_id(row: RowScores) -> dict[str, np.ndarray]:
    return {pid: row.means[:, i] for i, pid in enumerate(row.ids)}


def newly_solved(scores: dict[str, RowScores]) -> list[str]:
    """Target-level held-out problems the base never solved (0 of k) that a row solves after training."""
    if "base" not in scores:
        return []
    base = _by_id(_target(scores, "base"))
    never = [pid for pid, m in base.items() if float(m.max()) == 0.0]
    lines = [
        "## Problems the base never solved",
        "",
        f"Of the {len(base)} {TARGET_LEVEL} held-out problems the base solved in 0 of k samples: {len(never)}. "
        "Solved after training (≥ 1 of k correct), per seed:",
        "",
        "| row | newly solved (per seed) | mean |",
        "|---|---|---|",
    ]
    for row in MECH_ROWS:
        if row.key == "base" or row.key not in scores:
            continue
        after = _by_id(_target(scores, row.key))
        counts = [sum(float(after[pid][s]) > 0 for pid in never if pid in after) for s in range(scores[row.key].seeds)]
        lines.append(f"| `{row.key}` | {', '.join(map(str, counts))} | {np.mean(counts):.1f} |")
    return lines


def _wall_clock(metrics: list[dict[str, Any]]) -> np.ndarray:
    """Seconds of rollout + update up to each step (the training's own clock, evaluations excluded)."""
    return np.cumsum([float(m.get("time_rollout_s") or 0.0) + float(m.get("time_train_s") or 0.0) for m in metrics])


def curves(out: Path, by_row: dict[str, list[dict[str, Any]]], row_metrics: RowMetrics) -> list[str]:
    """Held-out Pass@k at each curve point against RL steps and training wall-clock, plus a PNG."""
    lines = [
        "## Learning curves",
        "",
        "Held-out Pass@k (all levels, mean over seeds) at each evaluation point; wall-clock is the mean",
        "rollout + update time up to that step (evaluations excluded). Plot: `curves.png`.",
        "",
        "| row | step: Pass@k (wall-clock s) |",
        "|---|---|",
    ]
    plotted: dict[str, tuple[list[int], list[float], list[float], list[list[dict[str, Any]]]]] = {}
    for key, recs in by_row.items():
        if not recs[0].get("curve"):
            continue
        metrics = row_metrics[key]
        clocks = [_wall_clock(m) for m in metrics]
        steps = [int(s) for s, _ in recs[0]["curve"]]
        pts = [float(np.mean([dict(r["curve"]).get(s, np.nan) for r in recs])) for s in steps]
        secs = [float(np.mean([c[min(s, len(c)) - 1] for c in clocks])) if clocks else float("nan") for s in steps]
        plotted[key] = (steps, pts, secs, metrics)
        cells = ", ".join(f"{s}: {v:.3f} ({t:.0f} s)" for s, v, t in zip(steps, pts, secs))
        lines.append(f"| `{key}` | {cells} |")
    _plot_curves(out / "curves.png", plotted)
    return lines


def _plot_curves(path: Path, plotted: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, (steps, pts, secs, ms) in plotted.items():
        axes[0].plot(steps, pts, marker="o", label=key)
        axes[1].plot(secs, pts, marker="o", label=key)
        if not ms:
            continue
        n = min(len(m) for m in ms)
        acc = np.mean([[float(m[i].get("accuracy") or 0.0) for i in range(n)] for m in ms], axis=0)
        axes[2].plot(np.mean([_wall_clock(m)[:n] for m in ms], axis=0), acc, lw=1, label=key)
    axes[0].set(xlabel="RL step", ylabel="held-out Pass@k", title="Held-out vs steps")
    axes[1].set(xlabel="training wall-clock (s)", ylabel="held-out Pass@k", title="Held-out vs wall-clock")
    axes[2].set(xlabel="training wall-clock (s)", ylabel="training accuracy", title="Training accuracy")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_mechanism_report(out: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """``<out>/report.md``: the prediction first, then the rows, dose/densification and the verdict."""
    by_row: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_row[r["row"]].append(r)
    scores = {
        k: row_scores(k, [out / r["eval_csv"] for r in sorted(recs, key=lambda r: r["seed"])])
        for k, recs in by_row.items()
    }
    row_metrics = read_row_metrics(out, by_row)
    lines = [
        "# EAPO's mechanism: a base that can use an expert, hints it must carry out (issue 20)",
        "",
        f"Command: `{meta.get('command', '')}` · commit {meta.get('commit', '?')} · {meta.get('date', '')} · "
        f"policy `{meta.get('policy', '')}` · {meta.get('seconds', 0):.0f} s in this command, "
        f"{sum(float(r.get('seconds') or 0) for r in records):.0f} s of single-thread runs (rows may run as "
        "parallel `--rows` streams into one `--out`; this command then only collects them)",
        "",
        *PREDICTION,
        "",
        *level_scores(scores),
        "",
        *dose_table(by_row, row_metrics),
        "",
        *newly_solved(scores),
        "",
        *curves(out, by_row, row_metrics),
        "",
        *verdict_lines(scores),
        *meta.get("notes", []),
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
