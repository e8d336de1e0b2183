"""Single-env speed: ``EAPO-Math-v0`` steps per second with the ``reference`` expert.

The policy side is a fixed cycle of ~200-character actions — reason, consult (two queries),
reason, answer — so an episode is four turns, with one reset (a fresh generated problem) per
episode and the answer verified (the default ``RewardVerification``). Timed: ``reset`` + ``step``
time, reported as env-steps/s (resets are counted in the time, not as steps). Time is process CPU
time by default (robust on a shared machine; ``--wall`` for wall-clock). Problems: 20k generated
problems held in memory (``--problems list``, default; a dataset file behaves the same) or the lazy
generator (``--problems generated``, which adds problem generation to every reset). Two ways of
building the env: the raw :class:`envs.EAPOMathEnv` plus ``RewardVerification`` (what the entry
point builds) and ``gym.make`` (adds Gymnasium's ``OrderEnforcing``/``PassiveEnvChecker``).

Usage:
    python benchmarks/bench_env_step.py            # 3 runs of 30k steps, median
    python benchmarks/bench_env_step.py --quick    # 1 run of 5k steps
    python benchmarks/bench_env_step.py --json     # one JSON line

Example:
    >>> [len(a) for a in ACTIONS]  # ~200 characters each
    [200, 200, 200, 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

import eapo_env  # noqa: F401  (registers the ids)


def _pad(text: str, n: int = 200) -> str:
    """``text`` prefixed with reasoning filler up to ``n`` characters."""
    filler = "Let me think about this carefully, step by step, checking each intermediate value. "
    room = n - len(text)
    return (filler * (room // len(filler) + 1))[:room] + text


ACTIONS: tuple[str, ...] = (
    _pad("So far so good."),
    _pad("<consult><query>What is the first step?</query><query>Check my sum.</query></consult>"),
    _pad("Now combine the partial results."),
    _pad("<answer>42</answer>"),
)
KWARGS: dict[str, Any] = dict(problems="generated", expert="reference")
CLOCK: Callable[[], float] = time.process_time


def steps_per_second(env: gym.Env, steps: int, actions: Sequence[str] = ACTIONS, seed: int = 0) -> float:
    """Env-steps/s over ``steps`` steps of the action cycle (reset on every episode end)."""
    env.reset(seed=seed)
    step, reset = env.step, env.reset
    n_act = len(actions)
    start = CLOCK()
    for t in range(steps):
        _, _, terminated, truncated, _ = step(actions[t % n_act])
        if terminated or truncated:
            reset()
    return steps / (CLOCK() - start)


def builders() -> dict[str, Callable[[], gym.Env]]:
    from envs import EAPOMathEnv
    from wrappers import RewardVerification

    return {
        "EAPOMathEnv + RewardVerification": lambda: RewardVerification(EAPOMathEnv(**KWARGS)),
        'gym.make("EAPO-Math-v0")': lambda: gym.make("EAPO-Math-v0", **KWARGS),
    }


def run(steps: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for name, build in builders().items():
        env = build()
        steps_per_second(env, min(2000, steps))  # warm-up: imports, caches, first allocations
        rates = [steps_per_second(env, steps, seed=r) for r in range(repeats)]
        rows.append({"env": name, "steps": steps, "repeats": repeats, "steps_per_s": statistics.median(rates)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run (CI smoke test)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    parser.add_argument("--problems", choices=("list", "generated"), default="list")
    args = parser.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.wall else time.process_time
    if args.problems == "list":
        from bench_vector_env import problem_spec

        KWARGS["problems"] = problem_spec("list")
    steps = args.steps or (5_000 if args.quick else 30_000)
    rows = run(steps, 1 if args.quick else 3)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "env_step",
                    "clock": "wall" if args.wall else "cpu",
                    "problems": args.problems,
                    "rows": rows,
                }
            )
        )
        return 0
    print(
        f"single-env speed ({'wall' if args.wall else 'CPU'} time), reference expert, cycle of "
        f"{len(ACTIONS)} ~200-char actions, problems={args.problems}"
    )
    print(f"{'env':<36} {'steps':>8} {'steps/s':>10}")
    for row in rows:
        print(f"{row['env']:<36} {row['steps']:>8} {row['steps_per_s']:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
