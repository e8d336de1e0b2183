"""TRL's ``GRPOTrainer`` trains the shipped tiny base on EAPO episodes, with expert consultation (CPU, seconds).

TRL runs its own loop (data, GRPO loss, optimizer, logging; accelerate / DeepSpeed / FSDP / vLLM when
configured); :class:`agents.integrations.trl.EAPORollout` replaces its generation: every prompt row is
one EAPO episode (``EAPO-Math-v0`` here; any EAPO env id through ``TrainConfig.env_id``), all rows of a
generation batch live in one vector env, consults go to the ``reference`` expert in one batched call per
turn, expert and env tokens are masked out of TRL's loss (``env_mask``), and p(t) and the turn budget
follow TRL's global step. TRL's log lines carry ``eapo/consult_rate``, ``eapo/dose`` and ``eapo/p_t``.

Usage:
    pip install -e '.[agents,trl]'
    python examples/trl_grpo.py [--steps 4] [--engine ours|hf] [--out runs/trl_grpo] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agents.config import TrainConfig
from agents.integrations.trl import RolloutRecord, build_grpo_trainer


def example_config(steps: int, seed: int = 0, method: str = "eapo") -> TrainConfig:
    """The quickstart's env and learner settings, scaled down: 2 problems x 4 samples per step, one
    AdamW step per rollout (so one TRL step is one rollout), p(t) 1 -> 0 over the run.
    ``method = "self_explore"``: the same with consultation off (the evaluation env and prompt)."""
    return TrainConfig(
        method=method, policy="tiny-base", problems="generated:arithmetic:1", expert="reference", max_experts=3, max_turns=4,
        acceptance_schedule="linear:1.0:0.0:100%", turn_schedule="const:4", consult_penalty=0.1,
        group_size=4, prompts_per_step=2, steps=steps, lr=3e-5, warmup_steps=0, mini_batches=1, ppo_epochs=1,
        max_turn_tokens=64, max_total_tokens=320, device="cpu", threads=1, progress_bar=False, seed=seed,
    )  # fmt: skip


def run(
    steps: int = 4,
    out_dir: str | None = None,
    engine: str = "auto",
    trainer_cls: Any = None,
    callbacks: Sequence[Any] = (),
    on_rollout: Callable[[RolloutRecord], None] | None = None,
    method: str = "eapo",
) -> dict[str, Any]:
    """Train ``steps`` TRL steps; returns the trainer, the rollout and a summary of TRL's logs."""
    torch.set_num_threads(1)
    config = example_config(steps, method=method)
    out = out_dir or tempfile.mkdtemp(prefix="eapo_trl_")
    start = time.perf_counter()
    trainer, rollout = build_grpo_trainer(
        config, out, engine=engine, trainer_cls=trainer_cls, callbacks=callbacks, on_rollout=on_rollout
    )
    trainer.train()
    rollout.close()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "trainer": trainer,
        "rollout": rollout,
        "logs": logs,
        "summary": {
            "steps": int(trainer.state.global_step),
            "seconds": time.perf_counter() - start,
            "reward": [h["reward"] for h in logs],
            "consult_rate": [h.get("eapo/consult_rate", math.nan) for h in logs],
            "dose": [h.get("eapo/dose", math.nan) for h in logs],
            "p_t": [h.get("eapo/p_t", math.nan) for h in logs],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--engine", default="auto", choices=["auto", "ours", "hf", "vllm"])
    parser.add_argument("--method", default="eapo", choices=["eapo", "self_explore"])
    parser.add_argument("--out", default=None, help="TRL's output_dir (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    summary = run(args.steps, args.out, args.engine, method=args.method)["summary"]
    if args.json:
        print(json.dumps(summary))
    else:
        for i, (r, c, d, p) in enumerate(
            zip(summary["reward"], summary["consult_rate"], summary["dose"], summary["p_t"])
        ):
            print(f"TRL step {i + 1}: reward {r:.3f}  consult rate {c:.2f}  accepted-reply dose {d:.2f}  p(t) {p:.2f}")
        print(f"{summary['steps']} GRPOTrainer steps in {summary['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
