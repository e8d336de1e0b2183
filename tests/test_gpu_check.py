"""The CPU-checkable parts of ``scripts/gpu_check.sh`` (no GPU in CI): a dry run builds the ~0.5B model
on the meta device and validates the ``engine = "vllm"`` training config, and every ``eapo bench rollout``
call it would make parses with the benchmark's own parser. (``tests/test_rollout.py`` checks its two
``bench_rollout.py`` calls.)"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def test_gpu_check_dry_run(tmp_path: Path) -> None:
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "0.5B model: 0.4" in out and "meta device: dry run" in out  # 0.4x billion parameters
    assert "training config ok: vllm colocate bfloat16" in out
    assert "SKIPPED" not in out  # a dry run prints every vLLM command too
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_rollout

    calls = [
        shlex.split(line.split("bench rollout", 1)[1])
        for line in out.splitlines()
        if "agents.cli bench rollout" in line
    ]
    parsed = [bench_rollout.build_parser().parse_args(argv) for argv in calls]
    engines = sorted(tuple(a.engines) for a in parsed)
    assert engines == [("ours", "hf"), ("vllm",), ("vllm",)]
    assert all(a.device == "cuda" and a.batch == [256, 1024] and a.turns == [3] for a in parsed)
    assert sum(a.dtype == "bfloat16" for a in parsed) == 2  # the 0.5B model's rows
    train = [line for line in out.splitlines() if "agents.cli train" in line]
    assert len(train) == 1 and 'engine="vllm"' in train[0] and "steps=2" in train[0]


def test_bench_rollout_names_the_vllm_python_when_vllm_is_missing() -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:  # the vLLM venv: the command would really run
        return
    cmd = [sys.executable, "-m", "agents.cli", "bench", "rollout", "--engines", "vllm", "--policy", "tiny-base"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no vLLM in this Python" in proc.stderr
