"""Process-level pieces of the vLLM test server: its command line, environment, log file, and loopback HTTP.

Used by :mod:`servers.vllm_server`, which owns the server's lifecycle and its errors. Standard
library only. Example::

    cmd = server_command(Path("venv/bin/python"), Path("model"), "eapo-expert", "127.0.0.1", free_port())
    spec = LaunchSpec(cmd, server_env(kv_cache_gib=1, single_process=True), Path("server.log"))
    proc, log_file = spawn(spec, cwd=Path("model"))   # own process group, output in server.log
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: Server logs kept in a log folder besides the one being started.
KEPT_LOGS = 9


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a log (or why there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback only)
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post_json(url: str, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    """POST ``payload`` as JSON, return the decoded JSON answer."""
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (loopback only)
        return json.loads(r.read())


def parse_prometheus(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` for every sample line of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def new_log_path(logs: Path, port: int) -> Path:
    """A fresh timestamped log path in ``logs`` (created), after deleting all but the newest logs."""
    logs.mkdir(parents=True, exist_ok=True)
    for old in sorted(logs.glob("vllm-server-*.log"), key=lambda p: p.stat().st_mtime)[:-KEPT_LOGS]:
        old.unlink(missing_ok=True)  # keep the 9 newest logs plus this one
    return logs / f"vllm-server-{time.strftime('%Y%m%d-%H%M%S')}-{port}.log"


def server_command(
    py: Path,
    model_dir: Path,
    model_name: str,
    host: str,
    port: int,
    *,
    dtype: str = "float32",
    single_process: bool = False,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server ...`` for one model on ``host:port``."""
    return [
        str(py),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        model_name,
        "--host",
        host,
        "--port",
        str(port),
        # float32: the served model is saved in float32, and on CPUs without AVX-512 BF16 vLLM's
        # default downcast to bfloat16 makes every matmul several times slower.
        "--enforce-eager",
        "--dtype",
        dtype,
        "--max-model-len",
        "2048",
        "--disable-uvicorn-access-log",
        *(["--distributed-executor-backend", "uni"] if single_process else []),
        *extra_args,
    ]


def server_env(kv_cache_gib: int, single_process: bool, env: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ours without the main venv's python paths, offline, ``env`` last."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    child_env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    if single_process:
        child_env.update({"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": "1"})
    child_env.update(env or {})
    return child_env


@dataclass(frozen=True)
class LaunchSpec:
    """How one server process is started: its command line, its environment, and where its output goes."""

    cmd: list[str]
    env: dict[str, str]
    log: Path


def spawn(spec: LaunchSpec, cwd: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start ``spec.cmd`` in its own process group (``killpg`` at teardown), output to ``spec.log``.

    The log starts with the command line. Returns the process and the open log file, which the
    caller closes when the process is gone.
    """
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(spec.log, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    log_file.write(f"$ {' '.join(spec.cmd)}\n".encode())
    log_file.flush()
    proc = subprocess.Popen(
        spec.cmd,
        cwd=cwd,
        env=spec.env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: killpg at teardown
    )
    return proc, log_file
