"""``run_program``: run one Python program against its tests inside a fresh sandbox (DESIGN §11).

The layout of one run::

    parent (this process)            | new net/pid/ipc/mount/uts namespaces (util-linux unshare)
      unshare --fork --kill-child ---+-> launcher.py  pid 1, root: mounts read-only, private /tmp
                                     |     +- child.py  program's uid: runs the program, answers calls
                                     |     +- judge.py  judge's uid: runs the tests, writes the result

The parent hands over four memfds: the job (tests, trusted setup/reference code, a fresh random nonce;
only the judge gets it), the program's source (only the program's process gets it), the result (only
the judge writes it) and the status (only the launcher writes it). It reads stdout/stderr without
blocking, up to a cap, and enforces the wall-clock bound by SIGKILL of the namespace's pid 1 (which
kills every process in the namespace), of ``unshare`` and of its process group, then reaps.

The score is the judge's record, accepted only with this run's nonce and one outcome per test: an
exit code, anything printed, or an early ``os._exit(0)`` never passes a test. Policy code never runs
in this process (not even ``compile``).
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from eapo_env.sandbox.records import SandboxLimits, SandboxResult, TestCase, TestOutcome
from eapo_env.sandbox.verdict import classify

INSIDE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "inside")
UNSHARE_FLAGS = ("--net", "--pid", "--ipc", "--mount", "--uts", "--fork", "--mount-proc", "--kill-child")
#: The only environment ``unshare`` and the launcher get (nothing of the parent's).
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
_RESULT_BYTES = 1 << 20


def _interpreter() -> tuple[str, str, str]:
    """``(executable, install prefix, executable relative to it)`` of the sandbox's Python (ours)."""
    exe = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if os.path.commonpath([exe, prefix]) != prefix:
        prefix = os.path.dirname(os.path.dirname(exe))
    return exe, prefix, os.path.relpath(exe, prefix)


def missing_tools() -> list[str]:
    """The util-linux tools and kernel features a run needs that this machine lacks."""
    missing = [tool for tool in ("unshare",) if shutil.which(tool, path=BASE_ENV["PATH"]) is None]
    if not hasattr(os, "memfd_create"):
        missing.append("memfd_create")
    if os.geteuid() != 0:
        missing.append("root (namespaces, mounts and uid changes need it)")
    return missing


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, 0)
    if data:
        os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _kill_namespace(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the namespace's init (all of the namespace dies with it), ``unshare`` and its group; reap."""
    try:
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            inits = [int(p) for p in f.read().split()]
    except OSError:
        inits = []
    for pid in inits:  # still unshare's unreaped children: these pids cannot have been reused
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=2.0)  # unshare exits once its child is gone
    except subprocess.TimeoutExpired:
        pass
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()


class _Output:
    """A capped reader of one pipe: counts every byte, keeps the last ``tail`` of them."""

    def __init__(self, tail: int) -> None:
        self.tail, self.total, self.data = tail, 0, bytearray()

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.tail:
            del self.data[: len(self.data) - self.tail]

    def text(self) -> str:
        return bytes(self.data[-self.tail :]).decode("utf-8", "replace") if self.tail else ""


def _pump(proc: subprocess.Popen[bytes], limits: SandboxLimits, deadline: float) -> tuple[str, _Output, _Output]:
    """Read stdout/stderr until both close and ``proc`` ends; ``"ok"``, ``"timeout"`` or ``"output_limit"``."""
    assert proc.stdout is not None and proc.stderr is not None
    outs = {proc.stdout.fileno(): _Output(limits.tail_bytes), proc.stderr.fileno(): _Output(limits.tail_bytes)}
    with selectors.DefaultSelector() as sel:
        for fd in outs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout", *outs.values()  # type: ignore[return-value]
            for key, _ in sel.select(min(left, 0.5)):
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                outs[key.fd].add(chunk)
            if sum(o.total for o in outs.values()) > limits.output_bytes:
                return "output_limit", *outs.values()  # type: ignore[return-value]
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return "timeout", *outs.values()  # type: ignore[return-value]
    return "ok", *outs.values()  # type: ignore[return-value]


def _config(fds: dict[str, int], uid: int, limits: SandboxLimits) -> dict[str, Any]:
    _, prefix, rel = _interpreter()
    cpu = max(1, int(limits.cpu_s))
    return {
        **fds,
        "uid": uid,
        "python_prefix": prefix,
        "python_rel": rel,
        "harness_dir": INSIDE,
        "tmpfs_bytes": limits.tmpfs_bytes,
        "child_limits": {
            "RLIMIT_AS": limits.memory_bytes,
            "RLIMIT_CPU": cpu,
            "RLIMIT_FSIZE": limits.file_bytes,
            "RLIMIT_NOFILE": limits.open_files,
            "RLIMIT_NPROC": limits.processes,
            "RLIMIT_CORE": 0,
        },
        "judge_limits": {"RLIMIT_AS": 4 << 30, "RLIMIT_CPU": cpu + 2, "RLIMIT_NPROC": 4, "RLIMIT_CORE": 0},
    }


def run_program(
    program: str,
    tests: Sequence[TestCase],
    *,
    entry_point: str,
    setup: str = "",
    reference: str = "",
    limits: SandboxLimits | None = None,
) -> SandboxResult:
    """Run ``program`` (policy code) in a fresh sandbox and judge it on ``tests``.

    Args:
        program: the full source the program's process runs (e.g. the problem's prompt + the answer).
        tests: the tests, run by the judge with the program's names as proxies into its process.
        entry_point: the function under test (``candidate`` of HumanEval's ``check``; ``io`` tests' target).
        setup: trusted code the judge runs before the tests (HumanEval's prompt, MBPP's test_setup_code).
        reference: trusted reference program (``io`` tests compare against its outputs).
        limits: the run's bounds (:class:`SandboxLimits` defaults).

    Returns:
        The :class:`SandboxResult`; ``sandbox_unavailable`` (never a run without the sandbox) when
        this machine cannot make the namespaces.
    """
    limits = limits or SandboxLimits()
    start = time.monotonic()
    missing = missing_tools()
    if missing:
        return SandboxResult("sandbox_unavailable", _not_run(tests), detail=f"missing: {', '.join(missing)}")
    nonce = secrets.token_hex(16)
    job = {
        "nonce": nonce,
        "entry_point": entry_point,
        "setup": setup,
        "reference": reference,
        "tests": [t.to_json() for t in tests],
        "deadline_s": max(0.1, limits.wall_s - 0.25),
        "message_bytes": limits.message_bytes,
    }
    fds = {
        "job_fd": _memfd("eapo-job", json.dumps(job).encode()),
        "code_fd": _memfd("eapo-program", program.encode("utf-8", "surrogatepass")),
        "result_fd": _memfd("eapo-result"),
        "status_fd": _memfd("eapo-status"),
    }
    uid = 1_000_000 + 2 * secrets.randbelow(400_000)  # a fresh uid pair per run: RLIMIT_NPROC is per uid
    exe = _interpreter()[0]
    cmd = ["unshare", *UNSHARE_FLAGS, "--", exe, "-I", "-S", "-B", os.path.join(INSIDE, "launcher.py")]
    cmd.append(json.dumps(_config(fds, uid, limits)))
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=tuple(fds.values()),
            close_fds=True,
            start_new_session=True,
            env=dict(BASE_ENV),
        )
    except OSError as exc:
        for fd in fds.values():
            os.close(fd)
        return SandboxResult("sandbox_unavailable", _not_run(tests), detail=f"cannot start unshare: {exc}")
    try:
        ended, out, err = _pump(proc, limits, start + limits.wall_s)
    finally:
        _kill_namespace(proc)  # also on the normal path: nothing of the namespace may outlive the call
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
        result = _read(fds.pop("result_fd"))
        status = _read(fds.pop("status_fd"))
        for fd in fds.values():
            os.close(fd)
    verdict = classify(ended, nonce, len(tests), result, status, proc.returncode, err.text())
    return SandboxResult(
        verdict.status,
        verdict.tests,
        stdout=out.text(),
        stderr=err.text(),
        wall_s=time.monotonic() - start,
        detail=verdict.detail,
    )


def _read(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, _RESULT_BYTES, 0)
    finally:
        os.close(fd)
    try:
        record = json.loads(data) if data else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _not_run(tests: Sequence[TestCase]) -> tuple[TestOutcome, ...]:
    return tuple(TestOutcome(i, "not_run") for i in range(len(tests)))
