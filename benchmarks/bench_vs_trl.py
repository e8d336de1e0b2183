"""Our learner vs TRL's ``GRPOTrainer`` driving the same EAPO rollout: speed, memory, held-out accuracy.

The first question a TRL user asks: what does ``eapo train`` buy over ``GRPOTrainer`` +
:class:`agents.integrations.trl.EAPORollout`? Both sides get the same :class:`~agents.config.TrainConfig`:
the shipped tiny base, the same problems per step (``eapo_dataset`` replays our trainer's draws), group
size, prompts per step, learning rate, clip range, and the same number of AdamW updates per rollout
(ours: ``mini_batches x ppo_epochs``; TRL: ``steps_per_generation x num_iterations``, see
:func:`agents.integrations.trl.grpo_config`). Rows: self-exploratory RL (consultation off) and EAPO
(reference expert, p(t) 1 -> 0 over the first half), each over several seeds.

Columns (each run in a fresh process, one after another, 1 torch thread):

* ``rollout s`` / ``update s``: seconds per step (one rollout + its updates), mean over the steps
  after the first (the first builds envs and engines and warms caches). TRL's update is the step's
  wall time minus its rollout: loss, backward, AdamW, and its own extra passes (old log-probs, logging);
* ``tok/s``: policy tokens sampled per second of training step;
* ``import MB`` / ``peak MB``: the process's peak RSS after the side's imports (TRL brings
  ``datasets``/``pandas``/``pyarrow``) and at the end of training;
* ``held-out``: mean score on held-out problems after training, consultation off, evaluated by the
  same code for both (:func:`agents.evaluation.evaluate_config`);
* ``trained``: share of each step's episodes in the loss. Our dynamic sampling drops groups whose
  episodes are all right or all wrong (zero advantage); TRL keeps them in its batch (they add no
  gradient but cost their forward and backward). The ``ours_all`` row is our trainer with
  ``dynamic_sampling = false``: the like-for-like update cost.

The TRL side samples with our engine on TRL's model (``--trl-engine ours``, the default, so the
rollout columns compare like with like); ``--trl-engine hf`` uses ``generate`` as TRL itself would.

Usage:
    python benchmarks/bench_vs_trl.py --quick            # 2 seeds x 10 steps, a few minutes
    python benchmarks/bench_vs_trl.py [--seeds 0 1 2] [--steps 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("ours", "ours_all", "trl")  # ours_all: our trainer with dynamic sampling off (every group trained on)
METHODS = ("self_explore", "eapo")


def bench_config(method: str, seed: int, steps: int, quick: bool, dynamic_sampling: bool = True) -> Any:
    from agents.config import TrainConfig

    return TrainConfig(
        dynamic_sampling=dynamic_sampling,
        method=method, policy="tiny-base", problems="generated:arithmetic:1", eval_problems="generated:arithmetic:1",
        eval_problems_seed=1, eval_num_problems=64 if quick else 100, eval_k=2 if quick else 4,
        expert="reference", max_turns=4, acceptance_schedule="linear:1.0:0.0:50%", turn_schedule="linear:4:2:50%",
        consult_penalty=0.1, group_size=4 if quick else 8, prompts_per_step=8 if quick else 16, steps=steps,
        lr=3e-5, warmup_steps=0, mini_batches=2, ppo_epochs=2, max_turn_tokens=64, max_total_tokens=320,
        device="cpu", threads=1, seed=seed, tensorboard=False, progress_bar=False, checkpoint_every=10**6,
    )  # fmt: skip


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_ours(config: Any, out: Path) -> tuple[list[dict[str, float]], Any, Any]:
    """Our trainer; per step: rollout and update seconds, policy tokens sampled."""
    from agents.policy import load_policy
    from agents.trainer import train

    steps: list[dict[str, float]] = []

    def on_step(step: int, record: dict[str, Any]) -> None:
        tokens = float(record["policy_tokens"]) * float(record["episodes"])
        steps.append({"rollout": record["time_rollout_s"], "update": record["time_train_s"], "tokens": tokens,
                      "kept": float(record["kept_episode_frac"])})  # fmt: skip

    result = train(config, out, log=lambda _: None, on_step=on_step)
    model, tokenizer = load_policy(result.policy_dir, device="cpu")
    return steps, model, tokenizer


def run_trl(config: Any, out: Path, engine: str) -> tuple[list[dict[str, float]], Any, Any]:
    """TRL's GRPOTrainer with our rollout; a step is one rollout and the updates until the next one."""
    from agents.integrations.trl import build_grpo_trainer

    trainer, rollout = build_grpo_trainer(config, out, engine=engine)
    starts: list[float] = []
    rollouts: list[float] = []
    tokens: list[float] = []

    def timed(prompts: Any, trl_trainer: Any) -> dict[str, Any]:
        starts.append(time.perf_counter())
        output = rollout(prompts, trl_trainer)
        rollouts.append(time.perf_counter() - starts[-1])
        assert rollout.last is not None
        tokens.append(float(sum(t.num_policy_tokens for t in rollout.last.trajectories)))
        return output

    trainer.rollout_func = timed  # what TRL calls once per generation batch
    trainer.train()
    ends = starts[1:] + [time.perf_counter()]
    rollout.close()
    steps = [
        {"rollout": r, "update": (end - start) - r, "tokens": n}
        for start, end, r, n in zip(starts, ends, rollouts, tokens)
    ]
    return steps, trainer.model, rollout.tokenizer


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One (side, method, seed) run in this process; returns its measurements."""
    import torch

    from agents.evaluation import evaluate_config

    torch.set_num_threads(1)
    import agents.trainer  # noqa: F401  (the side's imports first: the memory baseline)

    if spec["side"] == "trl":
        from trl import GRPOTrainer  # noqa: F401
    import_mb = peak_rss_mb()
    config = bench_config(spec["method"], spec["seed"], spec["steps"], spec["quick"], spec["side"] != "ours_all")
    with tempfile.TemporaryDirectory(prefix="eapo_vs_trl_") as tmp:
        if spec["side"] != "trl":
            steps, model, tokenizer = run_ours(config, Path(tmp))
        else:
            steps, model, tokenizer = run_trl(config, Path(tmp), spec["trl_engine"])
        peak = peak_rss_mb()
        model.eval()
        heldout = evaluate_config(model, tokenizer, config).score_mean
    steady = steps[1:] or steps
    rollout = statistics.mean(s["rollout"] for s in steady)
    update = statistics.mean(s["update"] for s in steady)
    tokens = statistics.mean(s["tokens"] for s in steady)
    return {
        **spec, "rollout_s": rollout, "update_s": update, "tokens_per_s": tokens / max(rollout + update, 1e-9),
        "peak_rss_mb": peak, "import_rss_mb": import_mb, "heldout": heldout, "steps_run": len(steps),
        "kept_episode_frac": statistics.mean(s.get("kept", 1.0) for s in steady),
    }  # fmt: skip


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}  # fmt: skip
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{") and '"side"' in line]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"worker {spec} failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


COLUMNS = (("rollout_s", "rollout s", "{:.3f}"), ("update_s", "update s", "{:.3f}"),
           ("tokens_per_s", "tok/s", "{:.0f}"), ("import_rss_mb", "import MB", "{:.0f}"),
           ("peak_rss_mb", "peak MB", "{:.0f}"), ("heldout", "held-out", "{:.3f}"),
           ("kept_episode_frac", "trained", "{:.2f}"))  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """method -> side -> column -> mean over seeds."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for method in METHODS:
        for side in SIDES:
            rows = [r for r in results if r["method"] == method and r["side"] == side]
            if rows:
                table.setdefault(method, {})[side] = {k: statistics.mean(r[k] for r in rows) for k, _, _ in COLUMNS}
    return table


def print_table(table: dict[str, dict[str, dict[str, float]]], seeds: list[int], steps: int, trl_engine: str) -> None:
    print(f"ours (agents.trainer) vs TRL GRPOTrainer + EAPORollout (engine {trl_engine}); tiny base, "
          f"{steps} steps, seeds {seeds}, mean over seeds; per-step columns exclude step 1")  # fmt: skip
    header = f"{'method':<13} {'trainer':<12}" + "".join(f" {title:>10}" for _, title, _ in COLUMNS)
    print(header)
    print("-" * len(header))
    for method, sides in table.items():
        for side, values in sides.items():
            print(f"{method:<13} {side:<12}" + "".join(f" {fmt.format(values[k]):>10}" for k, _, fmt in COLUMNS))
        for base in ("ours", "ours_all"):
            if "trl" in sides and base in sides:
                ratios = [sides["trl"][k] / sides[base][k] if sides[base][k] else float("nan") for k, _, _ in COLUMNS]
                print(f"{method:<13} {'TRL/' + base:<12}" + "".join(f" {r:>9.2f}x" for r in ratios))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds x 10 steps, 8 problems x 4 samples per step")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--trl-engine", default="ours", choices=["ours", "hf"])
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2])
    steps = args.steps or (10 if args.quick else 40)
    results = []
    for method in args.methods:
        for seed in seeds:
            for side in SIDES:
                spec = {"side": side, "method": method, "seed": seed, "steps": steps, "quick": args.quick,
                        "trl_engine": args.trl_engine}  # fmt: skip
                results.append(run_worker(spec))
                if not args.json:
                    r = results[-1]
                    print(f"  {side:<5} {method:<13} seed {seed}: rollout {r['rollout_s']:.3f} s, update "
                          f"{r['update_s']:.3f} s, held-out {r['heldout']:.3f}", file=sys.stderr, flush=True)  # fmt: skip
    table = summarize(results)
    if args.json:
        print(json.dumps({"table": table, "runs": results}))
    else:
        print_table(table, seeds, steps, args.trl_engine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
