"""Vector-env speed: ``EAPOVectorEnv`` vs Gymnasium's ``SyncVectorEnv`` over the same single env.

Both run the same actions in the same process: at vector step t env i plays
``MIXES[mix][(t + i) % 4]`` (``cycle``: the ~200-character reason / consult / reason / answer cycle of
``bench_env_step``; ``answer-heavy``: answer / consult / answer / reason), so every step mixes turn kinds; the ``reference`` expert answers, every
answer is verified, ended envs autoreset (NEXT_STEP). ``SyncVectorEnv`` wraps
``gym.make("EAPO-Math-v0", ...)`` — exactly what ``gym.make_vec(..., vectorization_mode="sync")``
builds. Reported: env-steps/s (= N x vector steps / time) and ours / sync, as the median over
``--repeats`` back-to-back pairs of timings (with the spread of the pairs' ratios).

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
    python benchmarks/bench_vector_env.py --sizes 4096 --loop   # also vs a bare loop of single envs
    python benchmarks/bench_vector_env.py --sizes 4096 --mix answer-heavy --repeats 3
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
from bench_env_step import ACTIONS  # noqa: E402

import eapo_env  # noqa: E402, F401  (registers the ids)
from eapo_env.problems import SequenceSource  # noqa: E402


def problem_spec(kind: str, count: int = 20_000) -> Any:
    """``"list"``: ``count`` generated problems in memory; ``"generated"``: the lazy source."""
    if kind == "generated":
        return "generated"
    source = eapo_env.load_problems("generated")
    step = max(1, len(source) // count)
    return SequenceSource([source[i * step] for i in range(count)], name="generated-list")


#: Action cycles: ``cycle`` is bench_env_step's reason / consult / reason / answer; ``answer-heavy``
#: answers every other turn (each answer is verified; the env autoresets on its next step).
MIXES: dict[str, tuple[str, ...]] = {
    "cycle": ACTIONS,
    "answer-heavy": (ACTIONS[3], ACTIONS[1], ACTIONS[3], ACTIONS[0]),
}


def action_rows(n: int, steps: int, actions: Sequence[str] = ACTIONS) -> list[list[str]]:
    return [[actions[(t + i) % len(actions)] for i in range(n)] for t in range(steps)]


def timed(vec: Any, rows: list[list[str]], clock: Any, warmup: int = 4) -> float:
    """Env-steps/s over ``rows[warmup:]`` (one vector step each), after a seeded reset and ``warmup``
    untimed steps (so both envs are timed over the same steady-state window of the action cycle)."""
    vec.reset(seed=0)
    step = vec.step
    for row in rows[:warmup]:
        step(row)
    timed_rows = rows[warmup:]
    start = clock()
    for row in timed_rows:
        step(row)
    elapsed = clock() - start
    return len(timed_rows) * len(timed_rows[0]) / elapsed


class LoopOfEnvs:
    """A bare Python loop over N single envs (``env.step`` each; an ended env resets on its next
    step, as NEXT_STEP autoreset) with no ``info`` merge: the floor of what batching can beat."""

    def __init__(self, envs: list[Any]) -> None:
        self.envs = envs
        self.ended = [False] * len(envs)

    def reset(self, seed: int) -> None:
        for i, env in enumerate(self.envs):
            env.reset(seed=seed + i)
        self.ended = [False] * len(self.envs)

    def step(self, actions: list[str]) -> None:
        ended = self.ended
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            if ended[i]:
                env.reset()
                ended[i] = False
            else:
                _, _, terminated, truncated, _ = env.step(action)
                ended[i] = terminated or truncated

    def close(self) -> None:
        for env in self.envs:
            env.close()


def bench_one(
    n: int, steps: int, problems: Any, repeats: int, clock: Any, loop: bool = False, mix: str = "cycle"
) -> dict[str, Any]:
    """``repeats`` back-to-back pairs (ours, then sync); the ratio is the median of the pairs' ratios.

    Both are timed over the same whole periods of the 4-action cycle after the same warm-up, so they
    step the same mix of turns.
    """
    kwargs = dict(problems=problems, expert="reference")
    ours = gym.make_vec("EAPO-Math-v0", num_envs=n, **kwargs)
    sync = SyncVectorEnv([lambda: gym.make("EAPO-Math-v0", **kwargs) for _ in range(n)])
    steps = -(-steps // 4) * 4  # whole periods of the action cycle
    rows = action_rows(n, steps + 4, MIXES[mix])
    pairs = []
    for _ in range(repeats):
        pairs.append((timed(ours, rows, clock), timed(sync, rows, clock)))
    ours.close(), sync.close()
    ratios = sorted(o / s for o, s in pairs)
    extra: dict[str, Any] = {}
    if loop:  # the bare loop, paired with ours the same way
        bare = LoopOfEnvs([gym.make("EAPO-Math-v0", **kwargs) for _ in range(n)])
        ours = gym.make_vec("EAPO-Math-v0", num_envs=n, **kwargs)
        loop_pairs = [(timed(ours, rows, clock), timed(bare, rows, clock)) for _ in range(repeats)]
        ours.close(), bare.close()
        extra = {
            "loop_steps_per_s": statistics.median(b for _, b in loop_pairs),
            "loop_ratio": statistics.median(o / b for o, b in loop_pairs),
        }
    return {
        "num_envs": n,
        "ours_steps_per_s": statistics.median(o for o, _ in pairs),
        "sync_steps_per_s": statistics.median(s for _, s in pairs),
        "ratio": statistics.median(ratios),
        "ratio_min": ratios[0],
        "ratio_max": ratios[-1],
        "repeats": repeats,
        **extra,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, N up to 1024 (CI smoke test)")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    parser.add_argument("--wall", action="store_true", help="wall-clock time instead of process CPU time")
    parser.add_argument("--problems", choices=("list", "generated"), default="list")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--mix", choices=sorted(MIXES), default="cycle", help="the action cycle (see MIXES)")
    parser.add_argument("--repeats", type=int, default=5, help="back-to-back (ours, sync) pairs per N")
    parser.add_argument(
        "--loop", action="store_true", help="also pair ours with a bare Python loop over N single envs (no info merge)"
    )
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1, 64, 1024] if args.quick else [1, 64, 1024, 4096])
    env_steps = 20_000 if args.quick else 100_000  # per N and repeat, for sync
    clock = time.perf_counter if args.wall else time.process_time
    problems = problem_spec(args.problems)
    rows = []
    for n in sizes:
        steps = max(16, env_steps // n)  # timed vector steps of each
        rows.append(bench_one(n, steps, problems, 1 if args.quick else args.repeats, clock, args.loop, args.mix))
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "vector_env",
                    "clock": "wall" if args.wall else "cpu",
                    "problems": args.problems,
                    "mix": args.mix,
                    "rows": rows,
                }
            )
        )
        return 0
    print(
        f"env-steps/s ({'wall' if args.wall else 'CPU'} time), reference expert, verified answers, "
        f"problems={args.problems}, mix={args.mix}, NEXT_STEP autoreset"
    )
    print(f"{'N':>6} {'EAPOVectorEnv':>14} {'SyncVectorEnv':>14} {'ratio':>7} {'(min-max of pairs)':>19}")
    for r in rows:
        print(
            f"{r['num_envs']:>6} {r['ours_steps_per_s']:>14,.0f} {r['sync_steps_per_s']:>14,.0f} "
            f"{r['ratio']:>6.1f}x {r['ratio_min']:>9.1f}-{r['ratio_max']:.1f}x"
        )
        if "loop_ratio" in r:
            print(
                f"{'':>6} {'':>14} {'bare loop':>14} {r['loop_steps_per_s']:>12,.0f}/s  ours / loop {r['loop_ratio']:.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
