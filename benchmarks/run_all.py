"""Run every CPU speed benchmark in turn (each prints its own table); unknown options such as
``--quick`` or ``--json`` are passed through to every script.

The real-server benchmarks (vLLM consult overhead, GEM, the training-step consult), the verifier's
suite agreement (needs a Math-Verify checkout) and the learning benchmark (minutes to hours) are run
on their own: ``benchmarks/README.md`` lists each with its command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CPU_BENCHMARKS = (
    "bench_env_step.py",
    "bench_verify.py",
    "bench_vector_env.py",
    "bench_rollout.py",
    "bench_env_share.py",
)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # every other option goes through to the scripts untouched
        epilog="scripts run, in order: " + ", ".join(CPU_BENCHMARKS),
    )
    ap.add_argument("--list", action="store_true", help="print the scripts that would run, and exit")
    ap.add_argument("--only", nargs="+", default=None, metavar="SCRIPT", help="run only these scripts")
    return ap.parse_known_args(argv)


def main(argv: list[str]) -> int:
    args, passthrough = parse_args(argv)
    names = tuple(args.only) if args.only else CPU_BENCHMARKS
    unknown = [n for n in names if not (HERE / n).is_file()]
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)} (known: {', '.join(CPU_BENCHMARKS)})", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(names))
        return 0
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / name), *passthrough]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
