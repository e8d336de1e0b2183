"""The env side of a training step's rollout (DESIGN §7): its share, and its cost in vs out of the rollout.

The path ``eapo train`` takes: a config's (default: the quickstart's) vector env
(``agents.trainer.make_envs``), engine (``build_engine``) and ``rollout_episodes``, the policy as the
config names it (or ``--policy``), at the progress steps given (their p(t) and turn budget; the
policy is not trained in between). A recorder around the vector env logs every call the engine
makes (``reset_envs``, ``submit``, ``collect``); the same calls are then replayed on the same envs
(same seeds, problems, actions: the same env states and replies). Columns:

* ``env CPU in rollout``: CPU time of the engine's thread inside those calls during the rollout
  (``time_env_cpu_s`` of ``metrics.jsonl``); ``share``: that plus every other thread's CPU (the
  expert client's event loop: ``time_other_threads_cpu_s``) over the rollout's wall time, i.e. the
  ``env_cpu_share`` ``eapo train`` logs, split by ``agents.trainer.rollout_env_cpu`` as there (the
  goal of DESIGN §7 is < 1 %);
* ``replayed alone``: the same calls back to back (warm caches);
* ``replayed after a forward``: the same calls, each after one policy forward on a batch of
  ``--forward-rows`` x 24 tokens (what the engine runs between two env calls: decode evicts the
  env's data and code from the CPU caches);
* ``in rollout / alone``: how much more the env costs inside the rollout than on its own.

    python benchmarks/bench_env_share.py                                   # quickstart, shipped tiny base
    python benchmarks/bench_env_share.py --policy runs/small --steps 2 6   # another policy
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.config import load_config  # noqa: E402
from agents.trainer import build_engine, make_envs, rollout_env_cpu, rollout_episodes, step_rng  # noqa: E402


class RecordingVectorEnv:
    """Forwards everything to ``vec``; logs ``reset_envs`` / ``submit`` / ``collect`` calls for a replay."""

    def __init__(self, vec: Any) -> None:
        self.vec = vec
        self.calls: list[tuple[str, Any, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.vec, name)

    def reset_envs(self, indices: Any, seeds: Any = None, options: Any = None) -> Any:
        self.calls.append(("reset_envs", (list(indices), None if seeds is None else list(seeds), options), None))
        return self.vec.reset_envs(indices, seeds, options)

    def submit(self, indices: Any, actions: Any) -> Any:
        pending = self.vec.submit(indices, actions)
        self.calls.append(("submit", (list(indices), list(actions)), id(pending)))
        return pending

    def collect(self, pending: Any) -> Any:
        self.calls.append(("collect", (), id(pending)))
        return self.vec.collect(pending)


def replay(vec: Any, calls: list[tuple[str, Any, Any]], between: Any = None) -> float:
    """Run ``calls`` on ``vec`` again; CPU seconds of this thread inside them (``between()`` not counted)."""
    pending: dict[int, Any] = {}
    cpu = 0.0
    for name, args, key in calls:
        if between is not None:
            between()
        c0 = time.thread_time()
        if name == "reset_envs":
            vec.reset_envs(*args)
        elif name == "submit":
            pending[key] = vec.submit(*args)
        else:
            vec.collect(pending.pop(key))
        cpu += time.thread_time() - c0
    for left in pending.values():  # never happens after a complete rollout; keeps the envs usable
        vec.collect(left)
    return cpu


def measure_step(config: Any, source: Any, vec: Any, engine: Any, model: Any, step: int, args: Any) -> dict[str, Any]:
    recorder = RecordingVectorEnv(vec)
    t0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
    trajs = rollout_episodes(config, source, recorder, engine, step, step_rng(config.seed, step))
    wall = time.perf_counter() - t0
    cpu = rollout_env_cpu(engine, cpu0, main0)  # the split train() logs every step
    tokens = torch.randint(0, model.config.vocab_size, (args.forward_rows, 24))

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=tokens)

    alone = statistics.median(replay(vec, recorder.calls) for _ in range(args.replays))
    after_forward = statistics.median(replay(vec, recorder.calls, forward) for _ in range(args.replays))
    return {
        "step": step,
        "p": vec.acceptance_probs.mean(),
        "episodes": len(trajs),
        "env_steps": sum(len(t.infos) for t in trajs),
        "calls": len(recorder.calls),
        "wall_s": wall,
        "in_rollout_s": cpu["time_env_cpu_s"],
        "other_threads_s": cpu["time_other_threads_cpu_s"],
        "alone_s": alone,
        "after_forward_s": after_forward,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="quickstart", help="a config name or TOML path, as for `eapo train`")
    p.add_argument("--policy", default=None, help="a policy directory or shipped name (default: the config's)")
    p.add_argument("--steps", type=int, nargs="+", default=[3, 6, 9, 12], help="progress steps measured")
    p.add_argument("--warmup", type=int, default=2, help="untimed rollouts first (caches, lazy imports)")
    p.add_argument("--replays", type=int, default=3, help="replays per column (median)")
    p.add_argument("--forward-rows", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: the env shares no core with torch)")
    p.add_argument("--quick", action="store_true", help="one step, one replay each (smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.replays = args.steps[:1], 1, 1
    from agents.policy import load_policy, resolve_policy_path
    from eapo_env.problems import load_problems

    torch.set_num_threads(args.threads)
    config = load_config(args.config, tensorboard=False, progress_bar=False)
    if args.policy:
        config = config.replace(policy=args.policy)
    model, tok = load_policy(resolve_policy_path(config.policy))
    model.eval()
    source = load_problems(config.problems, seed=config.problems_seed)
    vec = make_envs(config, config.batch_episodes, source)
    engine = build_engine(config, model, tok, torch.device("cpu"))
    for k in range(args.warmup):
        rollout_episodes(config, source, vec, engine, args.steps[0], step_rng(config.seed + 1, k))
    rows = [measure_step(config, source, vec, engine, model, step, args) for step in args.steps]
    vec.close()
    report(rows, config, args)
    return rows


def report(rows: list[dict[str, Any]], config: Any, args: Any) -> None:
    print(
        f"{args.config}: policy {config.policy}, {rows[0]['episodes']} episodes per step, torch threads {args.threads}"
    )
    print(
        "| step | p(t) | env steps (calls) | rollout | env CPU in rollout | share | replayed alone "
        "| replayed after a forward | in rollout / alone |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['step']} | {r['p']:.2f} | {r['env_steps']} ({r['calls']}) | {r['wall_s']:.2f}s "
            f"| {1e3 * r['in_rollout_s']:.1f} ms | {100 * (r['in_rollout_s'] + r['other_threads_s']) / r['wall_s']:.2f}% "
            f"| {1e3 * r['alone_s']:.1f} ms | {1e3 * r['after_forward_s']:.1f} ms "
            f"| {r['in_rollout_s'] / max(r['alone_s'], 1e-9):.2f}x |"
        )


if __name__ == "__main__":
    main()
