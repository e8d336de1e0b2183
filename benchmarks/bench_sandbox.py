"""Benchmark the code sandbox: programs scored per second through ``eapo_env.sandbox.run_program``
vs a bare ``subprocess`` per program (``python -I -S -c program+tests``, no namespaces, no judge,
scored by its exit code: the unsafe lower bound), side by side, with 1 and 2 workers (threads, each
running one program at a time).

The programs are the generated code family's reference solutions (all pass), so both sides do the
same work; the bare side's "score" is the exit code, which is exactly what the sandbox refuses to
trust. Usage:

    python benchmarks/bench_sandbox.py            # 60 programs per cell
    python benchmarks/bench_sandbox.py --n 20     # quicker
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from eapo_env.problems.code_generated import GeneratedCodeSource
from eapo_env.problems.code_sets import code_spec
from eapo_env.sandbox import run_program, sandbox_unavailable_reason


def programs(n: int) -> list[tuple[str, str, tuple]]:
    src = GeneratedCodeSource(seed=0)
    out = []
    for i in range(n):
        spec = code_spec(src[i])
        out.append((spec.reference, spec.entry_point, spec.tests))
    return out


def sandboxed(item: tuple[str, str, tuple]) -> bool:
    program, entry, tests = item
    return run_program(program, tests, entry_point=entry).passed


def bare(item: tuple[str, str, tuple]) -> bool:
    program, _, tests = item
    source = program + "\n" + "\n".join(t.code for t in tests) + "\n"
    return subprocess.run([sys.executable, "-I", "-S", "-c", source], capture_output=True, timeout=30).returncode == 0


def rate(fn: Callable[[tuple[str, str, tuple]], bool], items: list[tuple[str, str, tuple]], workers: int) -> float:
    fn(items[0])  # warm the page cache
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ok = list(pool.map(fn, items))
    elapsed = time.perf_counter() - start
    if not all(ok):
        raise SystemExit(f"{fn.__name__}: {ok.count(False)} reference programs did not pass")
    return len(items) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="programs per cell")
    args = ap.parse_args()
    reason = sandbox_unavailable_reason()
    if reason:
        raise SystemExit(f"the sandbox is unavailable here: {reason}")
    items = programs(args.n)
    print(f"Programs scored per second ({args.n} generated-family reference programs, 4-6 tests each)")
    print(f"  {'workers':>7} {'sandbox':>9} {'bare':>9} {'sandbox/bare':>13} {'ms/program (sandbox)':>22}")
    for workers in (1, 2):
        ours, theirs = rate(sandboxed, items, workers), rate(bare, items, workers)
        print(f"  {workers:7d} {ours:9.1f} {theirs:9.1f} {ours / theirs:12.2f}x {1000 * workers / ours:22.1f}")


if __name__ == "__main__":
    main()
