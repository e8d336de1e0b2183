"""Statistics of the learning benchmark: per-row scores over seeds and problems, CIs, claims and verdicts.

A row's result is a matrix ``means[seed, problem]`` (each problem's mean score over its k samples, the
paper's per-problem "Pass@k") and ``variances[seed, problem]`` (the per-problem variance of the k
scores). Every row is evaluated on the same held-out problems, so rows pair by problem.

**CIs** are 95 % percentile bootstraps over **seeds and problems** (two levels: seeds resampled with
replacement, then problems; seeds pair across rows by index, problems by id). With one seed this is a
bootstrap over problems only, which ignores training-seed variance: the report says so.

Example:
    >>> import numpy as np
    >>> a = RowScores("a", np.array([[1.0, 0.5, 0.0]]), np.zeros((1, 3)))
    >>> b = RowScores("b", np.array([[0.5, 0.5, 0.0]]), np.zeros((1, 3)))
    >>> round(difference(a, b).value, 4)
    0.1667
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPS = 2000


@dataclass(frozen=True)
class RowScores:
    key: str
    means: np.ndarray  # [seeds, problems]
    variances: np.ndarray  # [seeds, problems]
    ids: tuple[str, ...] = ()  # problem ids, in column order

    @property
    def seeds(self) -> int:
        return int(self.means.shape[0])

    def subset(self, columns: list[int]) -> RowScores:
        """The same row restricted to some problems (e.g. one difficulty level)."""
        return RowScores(
            self.key, self.means[:, columns], self.variances[:, columns], tuple(self.ids[i] for i in columns)
        )


_LEVEL = re.compile(r"/L(\d+)/")


def levels(row: RowScores) -> dict[str, list[int]]:
    """Column indices of each difficulty level of generated problems (ids ``gen/<family>/L<level>/...``).

    >>> levels(RowScores("r", np.zeros((1, 3)), np.zeros((1, 3)), ("gen/a/L1/0", "gen/a/L2/1", "gen/a/L1/2")))
    {'L1': [0, 2], 'L2': [1]}
    """
    out: dict[str, list[int]] = {}
    for i, pid in enumerate(row.ids):
        m = _LEVEL.search(pid)
        out.setdefault(f"L{m.group(1)}" if m else "other", []).append(i)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Estimate:
    value: float
    lo: float
    hi: float

    def fmt(self, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
        sign = "+" if signed else ""
        return (
            f"{self.value * scale:{sign}.{digits}f} [{self.lo * scale:{sign}.{digits}f}, "
            f"{self.hi * scale:{sign}.{digits}f}]"
        )


def read_problem_csv(path: str | Path) -> dict[str, tuple[float, float]]:
    """``problem_id -> (mean_score, variance)`` from an ``eval_problems.csv``."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return {r["problem_id"]: (float(r["mean_score"]), float(r["variance"])) for r in csv.DictReader(f)}


def row_scores(key: str, csv_paths: list[Path]) -> RowScores:
    """Stack one ``eval_problems.csv`` per seed into a :class:`RowScores` (problems in the first file's order)."""
    tables = [read_problem_csv(p) for p in csv_paths]
    ids = list(tables[0])
    for t in tables[1:]:
        if set(t) != set(ids):
            raise ValueError(f"{key}: seeds were evaluated on different problems")
    means = np.array([[t[i][0] for i in ids] for t in tables])
    variances = np.array([[t[i][1] for i in ids] for t in tables])
    return RowScores(key, means, variances, tuple(ids))


def _draws(seeds: int, problems: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, seeds, size=(REPS, seeds)), rng.integers(0, problems, size=(REPS, problems))


def _boot(matrix: np.ndarray, s_idx: np.ndarray, p_idx: np.ndarray) -> np.ndarray:
    """Mean of ``matrix[seeds, problems]`` under each bootstrap draw: [REPS]."""
    seed_rows = matrix[s_idx]  # [REPS, seeds, problems]
    picked = np.take_along_axis(seed_rows, p_idx[:, None, :].repeat(seed_rows.shape[1], axis=1), axis=2)
    return picked.mean(axis=(1, 2))


def _estimate(value: float, draws: np.ndarray) -> Estimate:
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return Estimate(float(value), float(lo), float(hi))


def mean_score(row: RowScores, seed: int = 0) -> Estimate:
    """Pass@k mean with its 95 % CI."""
    s, p = _draws(row.seeds, row.means.shape[1], seed)
    return _estimate(row.means.mean(), _boot(row.means, s, p))


def mean_variance(row: RowScores, seed: int = 0) -> Estimate:
    """The paper's Var (per-problem variance of the k scores, averaged) with its 95 % CI."""
    s, p = _draws(row.seeds, row.variances.shape[1], seed)
    return _estimate(row.variances.mean(), _boot(row.variances, s, p))


def difference(a: RowScores, b: RowScores, what: str = "means", seed: int = 0) -> Estimate:
    """``a - b`` of the mean score (or of the mean variance), paired by problem and by seed index."""
    ma, mb = getattr(a, what), getattr(b, what)
    n = min(a.seeds, b.seeds)  # pair seed i with seed i; extra seeds of one row are left out
    ma, mb = ma[:n], mb[:n]
    s, p = _draws(n, ma.shape[1], seed)
    return _estimate(ma.mean() - mb.mean(), _boot(ma - mb, s, p))


@dataclass(frozen=True)
class Claim:
    """A claim of the paper as a difference ``a - b`` with an expected sign (0: "no real difference")."""

    table: str
    text: str
    a: str
    b: str
    sign: int
    paper: float  # the paper's a - b (points of Pass@32, or of Var when ``what == "variances"``)
    what: str = "means"


CLAIMS: tuple[Claim, ...] = (
    Claim("1", "EAPO beats self-exploratory RL", "eapo", "self_explore", +1, 64.07 - 59.16),
    Claim("1", "EAPO beats the base model", "eapo", "base", +1, 64.07 - 42.53),
    Claim("1", "Self-exploratory RL beats the base model", "self_explore", "base", +1, 59.16 - 42.53),
    Claim("1", "EAPO beats the expert-assisted workflow", "eapo", "expert_workflow", +1, 64.07 - 49.39),
    Claim("1", "The expert-assisted workflow beats the base model", "expert_workflow", "base", +1, 49.39 - 42.53),
    Claim("1", "Self-collaboration does not beat the base model", "self_collab", "base", 0, 41.83 - 42.53),
    Claim("1", "Full distillation SFT falls below the base model", "distill_full", "base", -1, 35.31 - 42.53),
    Claim("1", "LoRA distillation stays near the base model", "distill_lora", "base", 0, 43.24 - 42.53),
    Claim("1", "EAPO beats LoRA distillation", "eapo", "distill_lora", +1, 64.07 - 43.24),
    Claim(
        "1",
        "EAPO has a lower per-problem variance than self-exploratory RL",
        "eapo",
        "self_explore",
        -1,
        0.0643 - 0.0727,
        "variances",
    ),
    Claim("9", "The default schedule beats a budget-matched constant p", "eapo", "sched_const", +1, 64.07 - 59.65),
    Claim("9", "The default schedule beats a slower decay", "eapo", "sched_slow", +1, 64.07 - 62.82),
    Claim("9", "The default schedule beats a faster decay", "eapo", "sched_fast", +1, 64.07 - 59.76),
    Claim(
        "3", "A stronger (heterogeneous) expert beats homogeneous replicas", "eapo", "expert_self", +1, 64.07 - 58.85
    ),
    Claim("3", "Homogeneous replicas give about self-exploratory RL", "expert_self", "self_explore", 0, 58.85 - 59.16),
    Claim(
        "3", "Informative experts beat noisy (error-sampling) experts in EAPO", "eapo", "expert_noisy", +1, float("nan")
    ),
    Claim("3", "Informative experts beat meaningless guidance in EAPO", "eapo", "expert_constant", +1, float("nan")),
    Claim(
        "2",
        "Parallel consults (K=3) beat sequential (K=1) at the same turn budget",
        "expert_noisy",
        "noisy_k1",
        +1,
        64.07 - 61.79,
    ),
    Claim("E", "Error-sampling experts hurt the workflow", "workflow_noisy", "expert_workflow", -1, 42.82 - 49.39),
    Claim("E", "Meaningless guidance hurts the workflow", "workflow_constant", "expert_workflow", -1, 42.92 - 49.39),
)


def verdict(claim: Claim, est: Estimate) -> str:
    """``supported`` / ``contradicted`` / ``inconclusive`` from the CI of ``a - b`` and the claim's sign."""
    above, below = est.lo > 0, est.hi < 0
    if claim.sign == 0:
        return "supported (no difference detected)" if not (above or below) else "contradicted (they differ)"
    if (claim.sign > 0 and above) or (claim.sign < 0 and below):
        return "supported"
    if (claim.sign > 0 and below) or (claim.sign < 0 and above):
        return "contradicted"
    return "inconclusive (CI spans 0)"
