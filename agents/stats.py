"""Statistics for comparing trained policies: per-row scores over seeds and problems, paired
bootstrap CIs, and verdicts on signed claims.

A row's result is a matrix ``means[seed, problem]`` (each problem's mean score over its k samples, the
paper's per-problem "Pass@k") and ``variances[seed, problem]`` (the per-problem variance of the k
scores), read from the ``eval_problems.csv`` that ``eapo eval`` writes per run. Every row is evaluated
on the same held-out problems, so rows pair by problem.

**CIs** are 95 % percentile bootstraps over **seeds and problems** (two levels: seeds resampled with
replacement, then problems; seeds pair across rows by index, problems by id). With one seed this is a
bootstrap over problems only, which ignores training-seed variance: a report should say so.

This lives in the library (not in ``benchmarks/``) because the learning benchmark, its tests and a
user comparing their own runs all read the same files the same way.

Example:
    >>> import numpy as np
    >>> a = RowScores("a", np.array([[1.0, 0.5, 0.0]]), np.zeros((1, 3)))
    >>> b = RowScores("b", np.array([[0.5, 0.5, 0.0]]), np.zeros((1, 3)))
    >>> round(difference(a, b).value, 4)
    0.1667
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "REPS",
    "Claim",
    "Estimate",
    "RowScores",
    "ci95_bootstrap",
    "ci95_normal",
    "difference",
    "levels",
    "mean_score",
    "mean_variance",
    "read_problem_csv",
    "row_scores",
    "verdict",
]

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


def ci95_bootstrap(values: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap CI of the mean of ``values`` (resampling the values)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return (float("nan"), float("nan"))
    if v.size == 1:
        return (float(v[0]), float(v[0]))
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(reps, v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def ci95_normal(values: Sequence[float]) -> tuple[float, float]:
    """``mean ± 1.96 * sd / sqrt(n)`` (sample sd, ddof 1), clipped to [0, 1] for scores."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        m = float(v.mean()) if v.size else float("nan")
        return (m, m)
    half = 1.96 * float(v.std(ddof=1)) / math.sqrt(v.size)
    m = float(v.mean())
    return (max(0.0, m - half), min(1.0, m + half))
