"""``eapo quickstart``: the whole EAPO loop on CPU in minutes (DESIGN §9).

1. The starting policy: the shipped tiny base (``agents/assets/tiny_base``, loaded by the name
   ``tiny-base``; rebuilt with ``eapo build-policy``), so the minutes go to RL.
2. Held-out evaluation of the starting policy (consultation off).
3. EAPO RL: p(t) annealed from 1.0 to 0, a consult penalty, the turn budget annealed toward the
   evaluation budget; several optimizer steps per rollout batch; the consult-collapse monitor.
4. Held-out evaluation of the trained policy (same problems: a paired comparison).
5. Plots (held-out and training accuracy, consult / expert call rate with p(t), reward of consulted
   vs unconsulted episodes, response length) and a summary that says plainly what improved.

Reading the call-rate plot honestly: the **expert call rate** (episodes where an expert actually
answered) falls with p(t) by construction; the **consult rate** (episodes where the policy chose
to consult) is the policy's own behaviour: it falls only if the policy learns to do without experts.

Budget: the packaged ``agents/configs/quickstart.toml`` measured 362 s on 2 CPU cores (one
intra-op thread: with two, a busy machine runs the tiny model's small matmuls ~10x slower).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.config import TrainConfig, load_config, read_toml

QUICKSTART_CONFIG = Path(__file__).parent / "configs" / "quickstart.toml"


def quickstart_config(config_path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """The packaged quickstart config with the keys of ``config_path`` (a TOML file), then
    ``overrides``, on top: ``seed = 1`` in that file changes the seed and nothing else.

    >>> quickstart_config(seed=1).seed, quickstart_config(seed=1).policy
    (1, 'tiny-base')
    """
    keys = read_toml(config_path) if config_path is not None else {}
    return load_config(QUICKSTART_CONFIG, **{**keys, **overrides})


def run_quickstart(
    out_dir: str | Path = "runs/quickstart",
    log: Callable[[str], None] = print,
    config_path: str | Path | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the quickstart into ``out_dir``; returns a JSON-ready summary (its ``text`` key is the
    printed human summary)."""
    import torch

    from agents.evaluation import evaluate_config
    from agents.metrics import read_metrics
    from agents.plots import plot_metrics
    from agents.policy import load_policy
    from agents.run_setup import resolve_policy
    from agents.trainer import train

    t_all = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = quickstart_config(config_path, **overrides)
    if config.threads:
        torch.set_num_threads(config.threads)
    phases: dict[str, float] = {}

    # 1) the starting policy: the shipped base (or one built now when the config names none)
    t0 = time.perf_counter()
    policy_dir = resolve_policy(config, out, lambda msg: log(f"[1/5] {msg}"))
    log(f"[1/5] starting policy: {config.policy or policy_dir} ({policy_dir})")
    phases["policy"] = time.perf_counter() - t0
    config = config.replace(policy=str(policy_dir))

    def held_out(policy: Path, name: str) -> Any:
        t = time.perf_counter()
        model, tokenizer = load_policy(policy)
        result = evaluate_config(model, tokenizer, config, out_dir=out / name)
        phases[name] = time.perf_counter() - t
        log(f"      {result.describe()}")
        return result

    log(
        f"[2/5] held-out eval of the starting policy: {config.eval_problems} (seed {config.eval_problems_seed}), "
        f"{config.eval_num_problems} problems x {config.eval_k} samples, no consultation"
    )
    before = held_out(policy_dir, "eval_before")

    t0 = time.perf_counter()
    log(
        f"[3/5] EAPO RL: {config.steps} steps x {config.prompts_per_step} problems x G={config.group_size}, "
        f"{config.mini_batches}x{config.ppo_epochs} optimizer steps per rollout, p(t) {config.acceptance()}, "
        f"turns {config.turns()}, consult penalty {config.consult_penalty}"
    )
    res = train(config, out / "train", log=log)
    phases["rl"] = time.perf_counter() - t0

    log("[4/5] held-out eval of the trained policy")
    after = held_out(res.policy_dir, "eval_after")

    t0 = time.perf_counter()
    records = read_metrics(out / "train")
    heldout = {"start": (before.score_mean, *before.ci95), "after EAPO": (after.score_mean, *after.ci95)}
    plots = plot_metrics(records, out / "plots", heldout=heldout)
    phases["plots"] = time.perf_counter() - t0
    phases["total"] = time.perf_counter() - t_all
    summary = build_summary(config, out, policy_dir, res, before, after, records, phases, plots)
    (out / "quickstart_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["text"] = format_summary(summary)
    return summary


def paired_difference(before: Any, after: Any) -> dict[str, Any]:
    """After minus before on the same held-out problems: mean and a paired 95% bootstrap CI."""
    from agents.evaluation import ci95_bootstrap

    by_id = {row.problem_id: row.mean_score for row in before.problems}
    diffs = [row.mean_score - by_id[row.problem_id] for row in after.problems if row.problem_id in by_id]
    if not diffs:
        return {"mean": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    return {"mean": sum(diffs) / len(diffs), "ci95": list(ci95_bootstrap(diffs)), "n": len(diffs)}


def build_summary(
    config: Any,
    out: Path,
    policy_dir: Path,
    res: Any,
    before: Any,
    after: Any,
    records: list[dict[str, Any]],
    phases: dict[str, float],
    plots: list[Path],
) -> dict[str, Any]:
    """The JSON summary: held-out before/after with CIs, paired gain, training first vs last steps."""
    from agents.metrics import mean_of

    n = max(1, min(10, len(records) // 5))
    first, last = records[:n], records[-n:]
    keys = (
        "consult_rate",
        "expert_call_rate",
        "p_t",
        "accuracy",
        "policy_tokens",
        "reward_consulted",
        "reward_unconsulted",
        "clipfrac",
        "approx_kl",
    )
    warned = [r["step"] for r in records if r.get("collapse_consult_rising") or r.get("collapse_unconsulted_lag")]
    return {
        "command": "quickstart",
        "out_dir": str(out),
        "policy_dir": str(policy_dir),
        "trained_policy_dir": str(res.policy_dir),
        "rl_steps": config.steps,
        "eval_before": before.summary(),
        "eval_after": after.summary(),
        "heldout_gain": paired_difference(before, after),
        "train_first_vs_last": {
            "steps_averaged": n,
            **{k: {"first": mean_of(first, k), "last": mean_of(last, k)} for k in keys},
        },
        "collapse_warning_steps": warned,
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        "train_seconds": {k: round(v, 1) for k, v in res.seconds.items()},
        "plots": [str(p) for p in plots],
    }


def _verdict(name: str, first: float, last: float, better: str, tol: float = 0.02) -> str:
    """One plain line: did ``name`` move the way we want (``better``: "up" or "down")?"""
    delta = last - first
    if abs(delta) < tol:
        return f"{name}: no real change ({first:.2f} -> {last:.2f})"
    good = (delta > 0) == (better == "up")
    return f"{name}: {'improved' if good else 'got worse'} ({first:.2f} -> {last:.2f})"


def format_summary(s: dict[str, Any]) -> str:
    b, a, gain = s["eval_before"], s["eval_after"], s["heldout_gain"]
    c = s["train_first_vs_last"]
    n = c["steps_averaged"]
    apart = a["ci95"][0] > b["ci95"][1]
    lo, hi = gain["ci95"]
    held = (
        "IMPROVED" if lo > 0 else "did NOT improve significantly"
    ) + f": {gain['mean']:+.3f} (paired 95% CI {lo:+.3f}..{hi:+.3f})"

    def pair(key: str) -> str:
        return f"{c[key]['first']:.2f} -> {c[key]['last']:.2f}"

    lines = [
        f"EAPO quickstart ({s['out_dir']})",
        f"  held-out mean score over {b['num_problems']} problems x {b['k']} samples, consultation off:",
        f"    starting policy : {b['score_mean']:.3f}  [95% CI {b['ci95'][0]:.3f}-{b['ci95'][1]:.3f}]",
        f"    after EAPO      : {a['score_mean']:.3f}  [95% CI {a['ci95'][0]:.3f}-{a['ci95'][1]:.3f}]"
        + ("  (CIs apart)" if apart else "  (CIs overlap)"),
        f"    held-out accuracy {held}",
        f"  training, first {n} vs last {n} of {s['rl_steps']} steps:",
        f"    p(t) acceptance probability          {pair('p_t')}",
        f"    expert call rate (accepted consults) {pair('expert_call_rate')}   <- falls with p(t) by construction",
        f"    consult rate (the policy's choice)   {pair('consult_rate')}   <- learned behaviour",
        f"    reward consulted / unconsulted       {pair('reward_consulted')} / {pair('reward_unconsulted')}",
        f"    clipfrac, approx_kl (last steps)     {c['clipfrac']['last']:.3f}, {c['approx_kl']['last']:.4f}",
        "  verdicts:",
        "    " + _verdict("training accuracy", c["accuracy"]["first"], c["accuracy"]["last"], "up"),
        "    "
        + _verdict("the policy's own consult rate", c["consult_rate"]["first"], c["consult_rate"]["last"], "down"),
        "    "
        + _verdict(
            "policy tokens per episode", c["policy_tokens"]["first"], c["policy_tokens"]["last"], "down", tol=1.0
        ),
        "    consult collapse: "
        + (f"WARNED at steps {s['collapse_warning_steps'][:5]}" if s["collapse_warning_steps"] else "no warning"),
        "  wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in s["phase_seconds"].items()),
        f"  plots: {', '.join(Path(p).name for p in s['plots'])} in {Path(s['plots'][0]).parent if s['plots'] else '-'}",
    ]
    return "\n".join(lines)


def main() -> None:  # python -m agents.quickstart [OUT]
    import sys

    print(run_quickstart(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart")["text"])


if __name__ == "__main__":
    main()
