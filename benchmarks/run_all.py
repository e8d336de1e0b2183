"""Run every CPU benchmark in turn (each prints its own table). ``--quick`` is passed through.

The real-server benchmarks (vLLM consult overhead, GEM) need their venvs/servers and are run
separately; see each script's docstring.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
    failed = []
    for name in CPU_BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / name), *argv]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
