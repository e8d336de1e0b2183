"""Vector-env speed: ``EAPOVectorEnv`` vs Gymnasium's ``SyncVectorEnv`` over the same single env.

Both run the same actions in the same process: at vector step t env i plays
``ACTIONS[(t + i) % 4]`` (the ~200-character reason / consult / reason / answer cycle of
``bench_env_step``), so every step mixes all turn kinds; the ``reference`` expert answers, every
answer is verified, ended envs autoreset (NEXT_STEP). ``SyncVectorEnv`` wraps
``gym.make("EAPO-Math-v0", ...)`` — exactly what ``gym.make_vec(..., vectorization_mode="sync")``
builds. Reported: env-steps/s (= N x vector steps / time) and ours / sync.

Time is CPU time of this process (``time.process_time``) by default: "per core", and robust on a
shared machine; ``--wall`` uses wall-clock time instead (the two agree on an idle machine — every
env here runs in-process, nothing is waited for).

Problems: ``--problems list`` (default) materialises 20k generated problems into a list first (a
dataset file behaves the same: O(1) lookup), so the numbers are the env's own cost;
``--problems generated`` draws from the lazy generator, which then also pays problem generation on
every reset.

Usage:
    python benchmarks/bench_vector_env.py                   # N = 1, 64, 1024, 4096
    python benchmarks/bench_vector_env.py --quick           # fewer steps, N up to 1024
    python benchmarks/bench_vector_env.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.vector import SyncVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eapo_env  # noqa: E402, F401  (registers the ids)
from eapo_env.problems import SequenceSource  # noqa: E402
from bench_env_step import ACTIONS  # noqa: E402


class SharedSource(SequenceSource):
    """A read-only problem list shared by every env: ``gym.make`` deep-copies its keyword arguments,
    which for 20k problems x 4096 envs would take minutes (and measure nothing about the env)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedSource:
        return self


def problem_spec(kind: str, count: int = 20_000) -> Any:
    """``"list"``: ``count`` generated problems in memory; ``"generated"``: the lazy source."""
    if kind == "generated":
        return "generated"
    source = eapo_env.load_problems("generated")
    step = max(1, len(source) // count)
    return SharedSource([source[i * step] for i in range(count)], name="generated-list")


def action_rows(n: int, steps: int) -> list[list[str]]:
    return [[ACTIONS[(t + i) % len(ACTIONS)] for i in range(n)] for t in range(steps)]


def timed(vec: Any, rows: list[list[str]], clock: Any) -> float:
    """Env-steps/s over ``rows`` (one vector step each), after a seeded reset."""
    vec.reset(seed=0)
    step = vec.step
    start = clock()
    for row in rows:
        step(row)
    elapsed = clock() - start
    return len(rows) * len(rows[0]) / elapsed


def bench_one(n: int, steps: int, problems: Any, repeats: int, clock: Any) -> dict[str, Any]:
    kwargs = dict(problems=problems, expert="reference")
    ours = gym.make_vec("EAPO-Math-v0", num_envs=n, **kwargs)
    sync = SyncVectorEnv([lambda: gym.make("EAPO-Math-v0", **kwargs) for _ in range(n)])
    rows = action_rows(n, steps)
    timed(ours, rows[:4], clock), timed(sync, rows[:4], clock)  # warm-up
    ours_rate = statistics.median(timed(ours, rows, clock) for _ in range(repeats))
    sync_steps = max(4, steps // 4)  # the baseline is slow: fewer steps, same action cycle
    sync_rate = statistics.median(timed(sync, rows[:sync_steps], clock) for _ in range(repeats))
    ours.close(), sync.close()
    return {"num_envs": n, "ours_steps_per_s": ours_rate, "sync_steps_per_s": sync_rate, "ratio": ours_rate / sync_rate}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, N up to 1024 (CI smoke test)")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    parser.add_argument("--problems", choices=("list", "generated"), default="list")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1, 64, 1024] if args.quick else [1, 64, 1024, 4096])
    env_steps = 20_000 if args.quick else 120_000  # per N, for ours
    clock = time.perf_counter if args.wall else time.process_time
    problems = problem_spec(args.problems)
    rows = []
    for n in sizes:
        steps = max(8, env_steps // n)
        rows.append(bench_one(n, steps, problems, 1 if args.quick else 3, clock))
    if args.json:
        print(json.dumps({"benchmark": "vector_env", "clock": "wall" if args.wall else "cpu",
                          "problems": args.problems, "rows": rows}))
        return 0
    print(f"env-steps/s ({'wall' if args.wall else 'CPU'} time), reference expert, verified answers, "
          f"problems={args.problems}, NEXT_STEP autoreset")
    print(f"{'N':>6} {'EAPOVectorEnv':>14} {'SyncVectorEnv':>14} {'ratio':>7}")
    for r in rows:
        print(f"{r['num_envs']:>6} {r['ours_steps_per_s']:>14,.0f} {r['sync_steps_per_s']:>14,.0f} {r['ratio']:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
