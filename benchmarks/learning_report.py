"""The learning benchmark's markdown report and PNG plots (see ``benchmarks/learning.py``).

Example:
    >>> tail_mean([{"step": i, "consult_rate": float(i < 5)} for i in range(10)], "consult_rate", 0.2)
    0.0
"""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from learning_claims import CLAIMS
from learning_rows import ROW_BY_KEY, ROWS, describe_schedule

from agents.metrics import read_metrics
from agents.stats import RowScores, difference, levels, mean_score, mean_variance, row_scores, verdict

RL_METHODS = ("eapo", "self_explore")
TABLE_TITLES = {
    "1": "Table 1: methods",
    "9": "Table 9: consultation schedules",
    "3": "Table 3: expert quality",
    "2": "Table 2: parallel vs sequential consults",
    "E": "Appendix E: noisy and meaningless experts",
}


def tail_mean(records: list[dict[str, Any]], key: str, frac: float = 0.1) -> float:
    """Mean of ``key`` over the last ``frac`` of the steps (at least one step)."""
    vals = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    if not vals:
        return float("nan")
    n = max(1, int(round(len(vals) * frac)))
    return float(np.mean(vals[-n:]))


def _by_row(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["row"]].append(r)
    return out


def _metrics(out: Path, recs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [read_metrics(out / r["metrics"]) for r in recs if r.get("metrics")]


def _paper(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


#: Rows shown under each paper table, with the paper's (Pass@32, Var) in that table's context when it
#: differs from the row's own (e.g. Table 2 compares K at the paper's main expert).
TABLE_ROWS: dict[str, tuple[tuple[str, float | None, float | None] | str, ...]] = {
    "1": ("base", "self_collab", "expert_workflow", "distill_full", "distill_lora", "self_explore", "eapo"),
    "9": ("eapo", "sched_const", "sched_slow", "sched_fast"),
    "3": ("self_explore", ("eapo", 64.07, 0.0643), "expert_self", "expert_noisy", "expert_constant"),
    "2": (("expert_noisy", 64.07, 0.0643), "noisy_k1"),
    "E": (("expert_workflow", 49.39, 0.2039), "workflow_noisy", "workflow_constant"),
}


def _consult_change(out: Path, recs: list[dict[str, Any]]) -> str:
    """The policy's own consult rate over the first and the last 10 % of EAPO training (seed mean)."""
    ms = [m for m in _metrics(out, recs) if m]
    if recs[0]["method"] != "eapo" or not ms:
        return ""
    first = np.nanmean([tail_mean(m[: max(1, len(m) // 10)], "consult_rate", 1.0) for m in ms])
    last = np.nanmean([tail_mean(m, "consult_rate") for m in ms])
    return f"{first:.2f} → {last:.2f}"


def results_table(out: Path, table: str, by_row: dict[str, list], scores: dict[str, RowScores]) -> list[str]:
    lines = [
        "| row | paper Pass@32 | paper Var | ours Pass@k [95% CI] | ours Var [95% CI] | seeds | "
        "own consult rate: first → last 10% | time/seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entry in TABLE_ROWS[table]:
        key, paper_pass, paper_var = (entry, None, None) if isinstance(entry, str) else entry
        row = ROW_BY_KEY[key]
        paper_pass = row.paper_pass if paper_pass is None else paper_pass
        paper_var = row.paper_var if paper_var is None else paper_var
        head = f"| {row.label} (`{key}`) | {_paper(paper_pass)} | {_paper(paper_var, 4)} |"
        if key not in scores:
            lines.append(f"{head} not run | | 0 | | |")
            continue
        s, recs = scores[key], by_row[key]
        secs = np.mean([r["seconds"] for r in recs])
        lines.append(
            f"{head} {mean_score(s).fmt()} | {mean_variance(s).fmt(1.0, 4)} | {s.seeds} | "
            f"{_consult_change(out, recs)} | {secs:.0f}s |"
        )
    return lines


def level_table(scores: dict[str, RowScores]) -> list[str]:
    """Pass@k per difficulty level for every row, and EAPO − self-exploratory RL per level."""
    first = next(iter(scores.values()))
    lv = levels(first)
    if len(lv) < 2:
        return []
    lines = [
        "## Per difficulty level",
        "",
        "| row | " + " | ".join(f"{k} ({len(v)} problems)" for k, v in lv.items()) + " |",
        "|---|" + "---|" * len(lv),
    ]
    for row in ROWS:
        if row.key in scores:
            cells = [mean_score(scores[row.key].subset(cols)).fmt() for cols in lv.values()]
            lines.append(f"| `{row.key}` | " + " | ".join(cells) + " |")
    if "eapo" in scores and "self_explore" in scores:
        diffs = [
            difference(scores["eapo"].subset(c), scores["self_explore"].subset(c)).fmt(signed=True) for c in lv.values()
        ]
        lines.append("| **`eapo` − `self_explore`** | " + " | ".join(diffs) + " |")
    return lines + [""]


def claims_table(scores: dict[str, RowScores]) -> list[str]:
    lines = ["| table | claim (a − b) | paper a − b | ours a − b [95% CI] | verdict |", "|---|---|---|---|---|"]
    for c in CLAIMS:
        if c.a not in scores or c.b not in scores:
            continue
        est = difference(scores[c.a], scores[c.b], c.what)
        var = c.what == "variances"
        ours = est.fmt(1.0, 4, signed=True) if var else est.fmt(signed=True) + " pts"
        paper = "—" if np.isnan(c.paper) else (f"{c.paper:+.4f}" if var else f"{c.paper:+.2f} pts")
        lines.append(
            f"| {c.table} | {c.text} (`{c.a}` − `{c.b}`{', Var' if var else ''}) | {paper} | {ours} | "
            f"**{verdict(c, est)}** |"
        )
    return lines


def plot_all(out: Path, by_row: dict[str, list], scores: dict[str, RowScores]) -> list[str]:
    """Write the PNGs; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    rl = [k for k, recs in by_row.items() if recs[0]["method"] in RL_METHODS]
    base = float(np.mean(scores["base"].means)) if "base" in scores else None
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in rl:
        pts: dict[int, list[float]] = defaultdict(list)
        for r in by_row[k]:
            for step, v in r["curve"]:
                pts[int(step)].append(v)
        xs = ([0] if base is not None else []) + sorted(pts)
        ys = ([base] if base is not None else []) + [float(np.mean(pts[x])) for x in sorted(pts)]
        ax.plot(xs, ys, marker="o", label=k)
    ax.set(xlabel="RL step", ylabel="held-out Pass@k (consultation off)", title="Held-out accuracy during training")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "heldout.png", dpi=110)
    names.append("heldout.png")
    for key, ylabel, fname, title in (
        ("consult_rate", "policy's own consult rate", "call_rate.png", "Consult rate (the policy's choice) and p(t)"),
        ("policy_tokens", "policy tokens / episode", "length.png", "Response length"),
        ("accuracy", "training accuracy", "train_accuracy.png", "Training accuracy (with experts where allowed)"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        for k in rl:
            ms = _metrics(out, by_row[k])
            if not ms:
                continue
            n = min(len(m) for m in ms)
            ys = np.nanmean([[float(m[i].get(key) or 0.0) for i in range(n)] for m in ms], axis=0)
            w = max(1, n // 20)
            csum = np.concatenate([[0.0], np.cumsum(ys)])  # trailing mean over the last w steps (no padding)
            ax.plot(range(n), [(csum[i + 1] - csum[max(0, i + 1 - w)]) / min(i + 1, w) for i in range(n)], label=k)
            if key == "consult_rate" and by_row[k][0]["method"] == "eapo":
                ax.plot(
                    range(n),
                    [float(ms[0][i].get("p_schedule") or 0.0) for i in range(n)],
                    ls=":",
                    lw=1,
                    color=ax.lines[-1].get_color(),
                )
        ax.set(xlabel="RL step", ylabel=ylabel, title=title + (" (dotted: p(t))" if key == "consult_rate" else ""))
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        names.append(fname)
    fig, ax = plt.subplots(figsize=(8, 4))
    keys = [r.key for r in ROWS if r.key in scores]
    ests = [mean_score(scores[k]) for k in keys]
    ax.bar(
        range(len(keys)),
        [e.value for e in ests],
        yerr=[[e.value - e.lo for e in ests], [e.hi - e.value for e in ests]],
        capsize=3,
    )
    ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=7)
    ax.set(ylabel="held-out Pass@k", title="Final held-out Pass@k with 95% CI")
    fig.tight_layout()
    fig.savefig(out / "pass_bars.png", dpi=110)
    names.append("pass_bars.png")
    plt.close("all")
    return names


def header(meta: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    prof = meta["profile"]
    cfgs = {r["row"]: r["config"] for r in records}
    eapo = cfgs.get("eapo") or next(iter(cfgs.values()))
    one_seed = prof["seeds"] == 1
    return [
        f"# EAPO learning benchmark — `{prof['name']}` profile",
        "",
        f"- command: `{meta['command']}`",
        f"- commit: `{meta['commit']}`",
        f"- date: {meta.get('date') or f'{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC'}; run time summed over "
        f"the {len(records)} (row, seed) runs: {sum(r['seconds'] for r in records) / 60:.1f} min, each on one "
        f"thread of {os.cpu_count()} CPU cores (rows may run in parallel streams into one `--out`; load "
        f"average at the end: {meta.get('load', os.getloadavg()[0]):.1f}; the machine is shared)",
        f"- starting policy: `{meta['policy']}`",
        f"- problems (training and held-out): `{meta['problems']}`; "
        f"held-out: {eapo['eval_num_problems']} problems × k = {eapo['eval_k']} samples, problem seed "
        f"{eapo['eval_problems_seed']} (training draws seed {eapo['problems_seed']}), consultation off",
        f"- update budget: {prof['steps']} RL steps × {eapo['prompts_per_step']} prompts × G {eapo['group_size']}; "
        f"distillation SFT: as many optimizer steps; lr {eapo['lr']}; seeds per row: {prof['seeds']}",
        f"- EAPO: p(t) {describe_schedule(eapo['acceptance_schedule'])}; turn budget "
        f"{describe_schedule(eapo['turn_schedule'])}; consult penalty {eapo['consult_penalty']}; "
        f"K = {eapo['max_experts']}",
        "- CIs: 95 % percentile bootstrap over "
        + (
            "**problems only** (one seed: training-seed variance is not in these intervals)"
            if one_seed
            else "seeds and problems (two levels)"
        )
        + "; differences are paired by "
        "problem (and seed index). Pass@k here is the paper's Pass@32 definition (mean of the k scores per "
        "problem) with our k; Var is the per-problem variance of the k scores, averaged.",
        "",
    ]


def design_section(
    meta: dict[str, Any], scores: dict[str, RowScores], group_size: int, explore_method: str | None
) -> list[str]:
    """Why these problems, experts and K: the experiment's design, with the base's measured sparsity.
    ``explore_method``: the method ``self_explore`` ran (``eapo`` with p(t) = 0 on the expert-reader base)."""
    lines = ["## Design (why this is a fair test of the paper's claim)", ""]
    if "base" in scores:
        m = scores["base"].means.mean(axis=0)
        no_signal = float(np.mean((1 - m) ** group_size))
        lines.append(
            f"- **Problems.** `{meta['problems']}` for training and held-out (different seeds). The paper's "
            "mechanism (§2.2) is that experts densify reward where self-exploration rarely finds a correct "
            f"answer. Here the starting policy scores {100 * m.mean():.1f} % held-out (sampled, T = 1), "
            f"{100 * float(np.mean(m == 0)):.0f} % of problems were never solved in k samples, and an estimated "
            f"{100 * no_signal:.0f} % of groups of G = {group_size} samples hold no correct sample "
            "(mean of (1 − p_i)^G over problems): such groups give self-exploratory RL no gradient, while a "
            "consulting EAPO rollout can still reach the answer. A level where the base is already good would "
            "test sharpening, not exploration; one where it never succeeds would leave self-exploration "
            "nothing at all and make the comparison trivial."
        )
    lines += [
        "- **Experts.** `reference` returns the problem's worked solution: the strong, different expert "
        "(the role of QwQ-32B for a 7B policy). `policy` samples frozen replicas of the starting policy "
        "(homogeneous, Table 3). `noisy` is the reference with half of the final answers made wrong "
        "(App. E's error sampling had > 50 % wrong), `constant` returns App. E's content-free sentence. "
        "The `hint` expert (the worked steps without the answer) and the test of what the reply teaches are "
        "the mechanism report's (`benchmarks/results/mechanism/report.md`).",
        "- **K.** With the reference expert every reply is the same text, so K cannot matter there; Table 2 "
        "therefore compares K = 3 with K = 1 under the noisy expert, where three independent replies carry "
        "more evidence than one (a majority is right more often), at the same turn budget.",
        "- **One update budget.** Every RL row runs the same steps × prompts × G with the same learner; "
        "distillation SFT takes as many optimizer steps as an RL row; base and workflows train nothing. All "
        "rows start from the same policy and are evaluated on the same held-out problems, k samples each, "
        "at one turn budget (the end of the turn schedule), consultation off (workflows put their expert "
        "replies in the prompt, by definition).",
    ]
    if explore_method == "eapo":
        lines.append(
            "- **No prompt confound.** `self_explore` is EAPO with p(t) = 0: it trains on EAPO's prompt and "
            "caps and its consults are answered `unavailable`, so it differs from `eapo` only in whether "
            "experts answer (the same row as the mechanism report's)."
        )
    lines += [
        "- **Scale.** A sub-1M-parameter policy on generated arithmetic, minutes per run on 2 CPU cores, is not "
        "a 7B model on AIME: the verdicts say whether the paper's *direction* holds in this regime, not its "
        "size.",
        "",
    ]
    return lines


def weaning_section(out: Path, by_row: dict[str, list]) -> list[str]:
    """EAPO's own consult rate at the end of training (its choice, not the accepted calls) vs the 5 % bar."""
    recs = by_row.get("eapo")
    ms = [m for m in _metrics(out, recs or []) if m]
    if not ms:
        return []
    last = [tail_mean(m, "consult_rate") for m in ms]
    first = [tail_mean(m[: max(1, len(m) // 10)], "consult_rate", 1.0) for m in ms]
    p_end = [tail_mean(m, "p_t") for m in ms]
    ok = max(last) < 0.05
    lines = [
        "",
        "## Weaning: EAPO's own consult rate",
        "",
        f"Over the last 10 % of EAPO training the policy chose to consult in {np.mean(last):.1%} of episodes "
        f"(per seed: {', '.join(f'{v:.1%}' for v in last)}; first 10 %: {np.mean(first):.1%}; p(t) there: "
        f"{np.nanmean(p_end):.2f}). The paper's claim (and this project's bar) is that the policy weans "
        f"itself: below 5 % in every seed at the end — **{'met' if ok else 'not met'}**. The expert call rate "
        "(accepted calls) falls with p(t) by construction and is not the measure here.",
        "",
        "What weans it, across the EAPO rows (the consult rate falls once p(t) reaches 0, so the steps left "
        "after that matter most):",
        "",
        "| row | p(t) | consult penalty | own consult rate, last 10 % (seeds) |",
        "|---|---|---|---|",
    ]
    for key, recs in by_row.items():
        rates = [tail_mean(m, "consult_rate") for m in _metrics(out, recs) if m]
        if recs[0]["method"] != "eapo" or not rates:
            continue
        config = recs[0]["config"]
        lines.append(
            f"| `{key}` | {describe_schedule(config['acceptance_schedule'])} | {config['consult_penalty']:g} "
            f"| {np.mean(rates):.1%} ({', '.join(f'{v:.1%}' for v in rates)}) |"
        )
    return lines


def export_data(out: Path, by_row: dict[str, list], scores: dict[str, RowScores]) -> Path:
    """``data.json``: per-problem scores and per-step curves of every row, enough to recompute the report's
    numbers after ``runs/`` (policies, checkpoints; git-ignored) is gone."""
    import json

    keys = ("accuracy", "consult_rate", "expert_call_rate", "p_t", "policy_tokens", "reward")
    data = {
        k: {
            "problem_ids": list(s.ids),
            "means": s.means.round(6).tolist(),
            "variances": s.variances.round(6).tolist(),
            "curves": [{c: [m.get(c) for m in ms] for c in keys} for ms in _metrics(out, by_row[k])],
            "heldout_curve": [r["curve"] for r in by_row[k]],
        }
        for k, s in scores.items()
    }
    path = out / "data.json"
    path.write_text(json.dumps(data) + "\n")
    return path


def write_report(out: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    by_row = _by_row(records)
    scores = {
        k: row_scores(k, [out / r["eval_csv"] for r in sorted(recs, key=lambda r: r["seed"])])
        for k, recs in by_row.items()
    }
    group = next(iter(records))["config"]["group_size"]
    explore = next((r["config"]["method"] for r in records if r["row"] == "self_explore"), None)
    lines = header(meta, records) + design_section(meta, scores, group, explore)
    for table, title in TABLE_TITLES.items():
        shown = [e if isinstance(e, str) else e[0] for e in TABLE_ROWS[table]]
        if sum(k in scores for k in shown) >= (1 if table == "1" else 2):
            lines += ["", f"## {title}", "", *results_table(out, table, by_row, scores)]
    lines += ["", *level_table(scores)]
    lines += [
        "## Claims and verdicts",
        "",
        "Verdict: *supported* when the 95 % CI of a − b excludes 0 on the paper's side, *contradicted* when "
        "it excludes 0 on the other side, *inconclusive* otherwise; for “no difference” claims, supported "
        "when the CI contains 0.",
        "",
        *claims_table(scores),
    ]
    lines += weaning_section(out, by_row)
    lines += ["", "## Plots", ""] + [f"![{n}]({n})" for n in plot_all(out, by_row, scores)]
    lines += ["", f"Per-problem scores and per-step curves of every row: `{export_data(out, by_row, scores).name}`."]
    lines += ["", "## Not run in this report", ""]
    missing = [r for r in ROWS if r.key not in scores]
    lines += [f"- {r.label} (`{r.key}`, Table {r.table})" for r in missing] or ["- nothing: every row ran"]
    lines += meta.get("notes", [])
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
