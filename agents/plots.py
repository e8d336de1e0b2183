"""PNG plots of a run's ``metrics.jsonl`` (matplotlib, Agg backend; no display needed).

* ``accuracy.png`` — training accuracy (raw correctness) and reward per step, with a moving average.
* ``call_rate.png`` — the **consult rate** (episodes where the policy chose to consult) and the
  **expert call rate** (episodes where at least one consult was accepted, i.e. an expert actually
  answered), with p(t) on the same axis. The expert call rate falls with p(t) by construction; the
  consult rate is the policy's own choice and only falls if the policy learns to rely on itself.
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


def plot_metrics(metrics: str | Path | Sequence[dict[str, Any]], out_dir: str | Path, smooth: int = 0) -> list[Path]:
    """Write the three PNGs into ``out_dir``; returns their paths.

    Args:
        metrics: a ``metrics.jsonl`` path, its run directory, or the records themselves.
        smooth: moving-average window (0: about a tenth of the run, at least 1).
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

    # accuracy
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, color in (("accuracy", "tab:blue"), ("reward", "tab:gray")):
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, color=color, alpha=0.3, lw=1)
            ax.plot(xs, _smooth(ys, w), color=color, lw=2, label=f"{key} (moving avg {w})")
    ax.set_xlabel("training step")
    ax.set_ylabel("training accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Training accuracy (verified correctness of the final answer)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "accuracy.png"))

    # call rate with p(t)
    fig, ax = plt.subplots(figsize=(7, 4))
    xs, ys = _series(records, "consult_rate")
    if xs:
        ax.plot(xs, ys, color="tab:orange", alpha=0.3, lw=1)
        ax.plot(xs, _smooth(ys, w), color="tab:orange", lw=2, label="consult rate (policy's choice)")
    xs, ys = _series(records, "expert_call_rate")
    if xs:
        ax.plot(xs, ys, color="tab:red", alpha=0.3, lw=1)
        ax.plot(xs, _smooth(ys, w), color="tab:red", lw=2, label="expert call rate (accepted consults)")
    xs, ys = _series(records, "p_t")
    if xs:
        ax.plot(xs, ys, color="black", ls="--", lw=1.5, label="p(t) acceptance probability")
    ax.set_xlabel("training step")
    ax.set_ylabel("share of episodes / probability")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Expert consultation over training")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out / "call_rate.png"))

    # response length
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, color, label in (("policy_tokens", "tab:green", "policy tokens / episode"),
                              ("response_tokens", "tab:purple", "response tokens / episode (incl. observations)")):
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, color=color, alpha=0.3, lw=1)
            ax.plot(xs, _smooth(ys, w), color=color, lw=2, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("tokens")
    ax.grid(alpha=0.3)
    xs, ys = _series(records, "turn_budget")
    if xs:
        ax2 = ax.twinx()
        ax2.plot(xs, ys, color="black", ls="--", lw=1.2, label="turn budget")
        ax2.set_ylabel("turn budget")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Response length over training")
    paths.append(_save(fig, out / "response_length.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
