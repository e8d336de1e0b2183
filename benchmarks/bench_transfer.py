"""Train on math, evaluate on QA and multiple choice (the shape of the paper's Table 4), at toy scale.

The starting policy and the same policy after ``--steps`` of EAPO on generated arithmetic (the packaged
``eapo`` config, shortened) are each evaluated with consultation off on the math held-out set and on
the QA and choice tasks: their generated families and the tiny fixtures in the published HotpotQA,
SimpleQA, MMLU and GPQA schemas (``tests/data``; a few toy rows, not the real sets). At this scale the
numbers say that the pipeline runs end to end and how far a math-only toy policy is from the other
tasks (it writes numbers, not letters or names), not that transfer happens.

Usage::

    python benchmarks/bench_transfer.py --steps 20 --out /tmp/transfer      # ~2-4 min on 2 cores
    python benchmarks/bench_transfer.py --steps 0                            # the base alone
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
#: (label, eval env id, problem spec)
EVAL_SETS = [
    ("math (generated arithmetic 1-2)", "EAPO-Math-Eval-v0", "generated:arithmetic:1-2"),
    ("QA: generated facts", "EAPO-QA-Eval-v0", "generated"),
    ("QA: HotpotQA fixture", "EAPO-QA-Eval-v0", f"hotpotqa:{DATA / 'hotpotqa_tiny.json'}"),
    ("QA: SimpleQA fixture", "EAPO-QA-Eval-v0", f"simpleqa:{DATA / 'simpleqa_tiny.csv'}"),
    ("choice: generated arithmetic", "EAPO-Choice-Eval-v0", "generated"),
    ("choice: MMLU fixture", "EAPO-Choice-Eval-v0", f"mmlu:{DATA / 'mmlu_tiny.parquet'}"),
    ("choice: GPQA fixture", "EAPO-Choice-Eval-v0", f"gpqa:{DATA / 'gpqa_tiny.csv'}"),
]


def train_on_math(policy: str, steps: int, out: Path, seed: int) -> str:
    """``steps`` of the packaged ``eapo`` config from ``policy``; the trained policy's directory."""
    from agents.config import load_config
    from agents.trainer import FINAL_POLICY_DIR, train

    cfg = load_config(
        "eapo",
        policy=policy,
        steps=steps,
        seed=seed,
        final_eval=False,
        tensorboard=False,
        progress_bar=False,
        checkpoint_every=10**6,
    )
    train(cfg, out / "train", log=lambda m: None)
    return str(out / "train" / FINAL_POLICY_DIR)


def evaluate_all(policy: str, k: int, num_problems: int, seed: int) -> list[dict[str, object]]:
    from agents.eval_config import EvalConfig
    from agents.evaluation import evaluate_policy_dir

    rows = []
    for label, env_id, spec in EVAL_SETS:
        settings = EvalConfig(
            k=k, num_problems=num_problems, env_id=env_id, max_turns=2, max_total_tokens=1024, seed=seed
        )
        res = evaluate_policy_dir(policy, spec, settings)
        rows.append(
            {
                "set": label,
                "env_id": res.env_id,
                "problems": res.num_problems,
                "score_mean": res.score_mean,
                "ci95": list(res.ci95),
                "pass@1": res.pass_at.get("1"),
                "answered_rate": res.answered_rate,
            }
        )
    return rows


def table(base: list[dict[str, object]], trained: list[dict[str, object]] | None) -> str:
    head = "| eval set | env id | n | base score [95% CI] | answered |"
    head += " math-trained score [95% CI] | answered |" if trained else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for i, row in enumerate(base):
        lo, hi = row["ci95"]  # type: ignore[misc]
        cells = [row["set"], row["env_id"], row["problems"], f"{row['score_mean']:.3f} [{lo:.3f}, {hi:.3f}]"]
        cells.append(f"{row['answered_rate']:.2f}")
        if trained:
            t = trained[i]
            tlo, thi = t["ci95"]  # type: ignore[misc]
            cells += [f"{t['score_mean']:.3f} [{tlo:.3f}, {thi:.3f}]", f"{t['answered_rate']:.2f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--policy", default="tiny-base")
    p.add_argument("--steps", type=int, default=20, help="EAPO steps on math (0: evaluate the base only)")
    p.add_argument("-k", type=int, default=8)
    p.add_argument("--num-problems", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="/tmp/eapo_transfer")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = evaluate_all(args.policy, args.k, args.num_problems, args.seed)
    trained = None
    if args.steps > 0:
        trained_dir = train_on_math(args.policy, args.steps, out, args.seed)
        trained = evaluate_all(trained_dir, args.k, args.num_problems, args.seed)
    seconds = time.perf_counter() - t0
    (out / "transfer.json").write_text(json.dumps({"args": vars(args), "base": base, "trained": trained}, indent=2))
    print(table(base, trained))
    print(
        f"\n{args.policy}, {args.steps} EAPO steps on math, k={args.k}, <= {args.num_problems} problems/set, {seconds:.0f}s"
    )


if __name__ == "__main__":
    main()
