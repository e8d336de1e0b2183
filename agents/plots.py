"""PNG plots of a run's ``metrics.jsonl`` (matplotlib, Agg backend; no display needed).

* ``accuracy.png`` — training accuracy (raw correctness) and reward per step, with a moving average.
* ``call_rate.png`` — the **consult rate** (episodes where the policy chose to consult) and the
  **expert call rate** (episodes where at least one consult was accepted, i.e. an expert actually
  answered), with p(t) on the same axis. The expert call rate falls with p(t) by construction; the
  consult rate is the policy's own choice and only falls if the policy learns to rely on itself.
* ``reward_by_consult.png`` — mean reward of the episodes that consulted vs those that did not (the
  gap the consult-collapse monitor watches).
* ``heldout.png`` — held-out mean score with 95% CIs (before / after RL), when given.
* ``response_length.png`` — policy tokens and response tokens (policy + observations) per episode,
  with the turn budget on a second axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.metrics import read_metrics


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(int(r["step"]))
            ys.append(float(v))
    return xs, ys


def _smooth(ys: Sequence[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= window:
            acc -= ys[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _lines(ax: Any, records: Sequence[dict[str, Any]], series: Sequence[tuple[str, str, str]], w: int) -> None:
    """Raw (faint) and moving-average (bold) lines of ``(key, color, label)`` series."""
    for key, color, label in series:
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, color=color, alpha=0.3, lw=1)
            ax.plot(xs, _smooth(ys, w), color=color, lw=2, label=f"{label} (moving avg {w})")


def _finish(ax: Any, title: str, ylabel: str, unit_range: bool = True) -> None:
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    if unit_range:
        ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)


def plot_metrics(
    metrics: str | Path | Sequence[dict[str, Any]],
    out_dir: str | Path,
    smooth: int = 0,
    heldout: dict[str, tuple[float, float, float]] | None = None,
) -> list[Path]:
    """Write the PNGs into ``out_dir``; returns their paths.

    Args:
        metrics: a ``metrics.jsonl`` path, its run directory, or the records themselves.
        smooth: moving-average window (0: about a tenth of the run, at least 1).
        heldout: ``{label: (mean, ci_low, ci_high)}`` of held-out evaluations (e.g. before/after RL):
            adds ``heldout.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = list(metrics) if not isinstance(metrics, (str, Path)) else read_metrics(metrics)
    records = sorted(records, key=lambda r: r["step"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not records:
        raise ValueError("no metrics records to plot")
    w = smooth or max(1, len(records) // 10)
    paths: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(ax, records, [("accuracy", "tab:blue", "accuracy"), ("reward", "tab:gray", "reward")], w)
    _finish(ax, "Training accuracy (verified correctness of the final answer)", "training accuracy")
    paths.append(_save(fig, out / "accuracy.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(
        ax,
        records,
        [
            ("consult_rate", "tab:orange", "consult rate (policy's choice)"),
            ("expert_call_rate", "tab:red", "expert call rate (accepted consults)"),
        ],
        w,
    )
    xs, ys = _series(records, "p_t")
    if xs:
        ax.plot(xs, ys, color="black", ls="--", lw=1.5, label="p(t) acceptance probability")
    _finish(ax, "Expert consultation over training", "share of episodes / probability")
    paths.append(_save(fig, out / "call_rate.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(
        ax,
        records,
        [
            ("reward_consulted", "tab:orange", "episodes that consulted"),
            ("reward_unconsulted", "tab:blue", "episodes that did not"),
        ],
        w,
    )
    _finish(ax, "Reward of consulted vs unconsulted episodes", "mean reward")
    paths.append(_save(fig, out / "reward_by_consult.png"))

    paths.append(_length_plot(records, out, w))
    if heldout:
        paths.append(_heldout_plot(heldout, out))
    return paths


def _length_plot(records: Sequence[dict[str, Any]], out: Path, w: int) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    _lines(
        ax,
        records,
        [
            ("policy_tokens", "tab:green", "policy tokens / episode"),
            ("response_tokens", "tab:purple", "response tokens / episode (incl. observations)"),
        ],
        w,
    )
    xs, ys = _series(records, "turn_budget")
    if xs:
        ax2 = ax.twinx()
        ax2.plot(xs, ys, color="black", ls="--", lw=1.2, label="turn budget")
        ax2.set_ylabel("turn budget")
        ax2.legend(loc="upper right", fontsize=8)
    _finish(ax, "Response length over training", "tokens", unit_range=False)
    return _save(fig, out / "response_length.png")


def _heldout_plot(heldout: dict[str, tuple[float, float, float]], out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    labels = list(heldout)
    means = [heldout[k][0] for k in labels]
    errs = [[m - heldout[k][1] for k, m in zip(labels, means)], [heldout[k][2] - m for k, m in zip(labels, means)]]
    ax.bar(labels, means, yerr=errs, capsize=6, color=["tab:gray", "tab:blue", "tab:green"][: len(labels)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out mean score (consultation off)")
    ax.set_title("Held-out accuracy with 95% CIs")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, out / "heldout.png")


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
