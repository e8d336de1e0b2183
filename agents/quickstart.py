"""``eapo quickstart``: the whole EAPO loop on CPU in minutes (DESIGN §9).

1. Build the tiny policy (tokenizer + model built locally, SFT warm start on protocol traces).
2. Held-out evaluation of the SFT policy (consultation off).
3. EAPO RL: p(t) annealed from 1.0 toward 0, turn budget annealed toward the evaluation budget.
4. Held-out evaluation of the trained policy.
5. Plots (accuracy, consult / expert call rate with p(t), response length) and a printed summary.

Reading the call-rate plot honestly: the **expert call rate** (episodes where an expert actually
answered) falls with p(t) by construction; the **consult rate** (episodes where the policy chose
to consult) is the policy's own behaviour and need not fall in a few minutes of RL on a 1M-parameter
model. The summary reports both, first vs last steps.

Budget: the packaged ``agents/configs/quickstart.toml`` targets ~6-7 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.config import load_config

QUICKSTART_CONFIG = Path(__file__).parent / "configs" / "quickstart.toml"


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
    from agents.metrics import mean_of, read_metrics
    from agents.plots import plot_metrics
    from agents.policy import build_policy, load_policy, read_policy_info
    from agents.trainer import train

    t_all = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = load_config(config_path or QUICKSTART_CONFIG, **overrides)
    if config.threads:
        torch.set_num_threads(config.threads)
    phases: dict[str, float] = {}

    # 1) policy: tokenizer, tiny model, SFT warm start
    t0 = time.perf_counter()
    policy_dir = Path(config.policy) if config.policy else out / "policy"
    if not config.policy:
        log(f"[1/5] building the {config.policy_size} policy with SFT warm start -> {policy_dir}")
        build_policy(policy_dir, config.policy_size, None if config.policy_sft_steps < 0 else config.policy_sft_steps,
                     seed=config.seed, threads=config.threads or None, verbose=False)
    info = read_policy_info(policy_dir) or {}
    phases["build_policy"] = time.perf_counter() - t0
    config = config.replace(policy=str(policy_dir))

    # 2) held-out evaluation of the SFT policy
    t0 = time.perf_counter()
    log(f"[2/5] held-out eval of the SFT policy: {config.eval_num_problems} problems x {config.eval_k} samples, no consultation")
    model, tokenizer = load_policy(policy_dir)
    before = evaluate_config(model, tokenizer, config, out_dir=out / "eval_before")
    del model
    phases["eval_before"] = time.perf_counter() - t0
    log(f"      {before.describe()}")

    # 3) EAPO RL
    t0 = time.perf_counter()
    log(f"[3/5] EAPO RL: {config.steps} steps x {config.prompts_per_step} problems x G={config.group_size}, "
        f"p(t) {config.acceptance_schedule}, turns {config.turn_schedule}")
    res = train(config, out / "train", log=log)
    phases["rl"] = time.perf_counter() - t0

    # 4) held-out evaluation after RL
    t0 = time.perf_counter()
    log("[4/5] held-out eval of the trained policy")
    model, tokenizer = load_policy(res.policy_dir)
    after = evaluate_config(model, tokenizer, config, out_dir=out / "eval_after")
    phases["eval_after"] = time.perf_counter() - t0
    log(f"      {after.describe()}")

    # 5) plots and summary
    t0 = time.perf_counter()
    records = read_metrics(out / "train")
    plots = plot_metrics(records, out / "plots")
    phases["plots"] = time.perf_counter() - t0
    phases["total"] = time.perf_counter() - t_all

    n = max(1, min(5, len(records) // 4))
    first, last = records[:n], records[-n:]
    calls = {
        key: {"first": mean_of(first, key), "last": mean_of(last, key)}
        for key in ("consult_rate", "expert_call_rate", "p_t", "accuracy", "policy_tokens")
    }
    summary: dict[str, Any] = {
        "command": "quickstart",
        "out_dir": str(out),
        "policy_dir": str(policy_dir),
        "trained_policy_dir": str(res.policy_dir),
        "sft_steps": (info.get("sft") or {}).get("steps"),
        "rl_steps": config.steps,
        "eval_before": before.summary(),
        "eval_after": after.summary(),
        "train_first_vs_last": {"steps_averaged": n, **calls},
        "phase_seconds": {k: round(v, 1) for k, v in phases.items()},
        "train_seconds": {k: round(v, 1) for k, v in res.seconds.items()},
        "plots": [str(p) for p in plots],
    }
    (out / "quickstart_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["text"] = format_summary(summary)
    return summary


def format_summary(s: dict[str, Any]) -> str:
    b, a = s["eval_before"], s["eval_after"]
    c = s["train_first_vs_last"]
    ph = s["phase_seconds"]
    n = c["steps_averaged"]

    def pair(key: str) -> str:
        return f"{c[key]['first']:.2f} -> {c[key]['last']:.2f}"

    return "\n".join([
        f"EAPO quickstart ({s['out_dir']})",
        f"  held-out Pass@{b['k']} (mean score over {b['num_problems']} problems, consultation off):",
        f"    SFT policy : {b['score_mean']:.3f}  [95% CI {b['ci95'][0]:.3f}-{b['ci95'][1]:.3f}]  per-problem variance {b['score_variance']:.3f}",
        f"    after EAPO : {a['score_mean']:.3f}  [95% CI {a['ci95'][0]:.3f}-{a['ci95'][1]:.3f}]  per-problem variance {a['score_variance']:.3f}",
        f"  training, first {n} vs last {n} of {s['rl_steps']} steps:",
        f"    p(t) acceptance probability          {pair('p_t')}",
        f"    expert call rate (accepted consults) {pair('expert_call_rate')}   <- falls with p(t) by construction",
        f"    consult rate (the policy's choice)   {pair('consult_rate')}   <- learned behaviour",
        f"    training accuracy                    {pair('accuracy')}",
        f"    policy tokens / episode              {c['policy_tokens']['first']:.1f} -> {c['policy_tokens']['last']:.1f}",
        "  wall time: " + ", ".join(f"{k} {v:.0f}s" for k, v in ph.items()),
        f"  plots: {', '.join(Path(p).name for p in s['plots'])} in {Path(s['plots'][0]).parent if s['plots'] else '-'}",
    ])


def main() -> None:  # python -m agents.quickstart [OUT]
    import sys

    print(run_quickstart(sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart")["text"])


if __name__ == "__main__":
    main()
