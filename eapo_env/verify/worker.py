"""Hard-timeout symbolic fallback: a small pool of persistent sympy worker processes.

Why a subprocess: sympy's ``simplify`` has no bound on time or memory, and the only way to
stop arbitrary Python code from any thread or from inside an asyncio loop is to run it in a
process we can kill (``signal.alarm`` works on the main thread only). Workers are spawned
lazily, reused across calls (the sympy import is paid once), and on a timeout the worker is
killed and a replacement is started immediately in the background. The wait uses ``select``
on the pipe, so it is thread-safe and never blocks past the deadline.

The whole call, worker start-up included, stays within its budget (a hard bound on wall
time): a call that finds its worker still importing sympy (about a second, once per worker)
returns ``timeout`` and leaves the worker starting for the next call; :func:`warm_up` pays the
start-up ahead of time. Only the rare answers that the bounded in-process
evaluator cannot decide ever reach this module.

Example:
    >>> from fractions import Fraction
    >>> two = ("num", Fraction(2), -1)
    >>> decide(("pow", two, two), ("num", Fraction(4), -1), timeout_s=30.0)
    True
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from typing import Any

from ._types import VerifyTimeout

MAX_WORKERS = 4
START_TIMEOUT_S = 60.0
_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sympy_worker.py")
_lock = threading.Condition()
_idle: list[_Worker] = []
_spawned = 0
calls = 0  # requests sent to workers (benchmarks report it; not a cache)


class _Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", _SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self.buf = b""
        self.ready = False

    def readline(self, deadline: float) -> bytes | None:
        """One line from the child, or None at the deadline or on EOF."""
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def wait_ready(self, deadline: float) -> bool:
        """Wait (at most until ``deadline``) for the child's "ready" line."""
        if not self.ready:
            line = self.readline(deadline)
            if line is not None and line != b"ready":
                self.proc.kill()  # protocol violation: never reuse this one
            self.ready = line == b"ready"
        return self.ready

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


def _acquire(deadline: float) -> _Worker:
    global _spawned
    with _lock:
        while not _idle and _spawned >= MAX_WORKERS:
            left = deadline - time.monotonic()
            if left <= 0 or not _lock.wait(left):
                raise VerifyTimeout()
        if _idle:
            return _idle.pop()
        _spawned += 1
    try:
        return _Worker()
    except OSError:
        with _lock:
            _spawned -= 1
        raise


def _release(w: _Worker | None, replace: bool) -> None:
    global _spawned
    with _lock:
        if w is not None:
            _idle.append(w)
        else:
            _spawned -= 1
            if replace and _spawned < MAX_WORKERS:  # start the replacement now, in the background
                try:
                    _idle.append(_Worker())
                    _spawned += 1
                except OSError:
                    pass
        _lock.notify()


def warm_up() -> None:
    """Start one worker and wait until sympy is imported in it (optional).

    Example:
        >>> warm_up()
    """
    w = _acquire(time.monotonic() + START_TIMEOUT_S)
    ok = w.wait_ready(time.monotonic() + START_TIMEOUT_S)
    if not ok:
        w.kill()
    _release(w if ok else None, replace=False)


def _encode(node: Any) -> Any:
    if isinstance(node, Fraction):
        return {"q": [node.numerator, node.denominator]}
    if isinstance(node, tuple):
        return [_encode(x) for x in node]
    return node


def decide(a: tuple[Any, ...], b: tuple[Any, ...], timeout_s: float) -> bool | None:
    """Ask a worker whether two scalar trees are equal within ``timeout_s`` seconds.

    Returns True/False/None (None: sympy could not decide); raises :class:`VerifyTimeout`
    when the budget runs out (the worker is then killed and replaced), RuntimeError when a
    worker breaks (the caller reports ``error``).
    """
    global calls
    calls += 1
    deadline = time.monotonic() + timeout_s
    w = _acquire(deadline)
    if not w.wait_ready(deadline):
        if w.proc.poll() is None:  # still importing sympy: keep it for the next call
            _release(w, replace=False)
            raise VerifyTimeout()
        w.kill()
        _release(None, replace=False)
        raise RuntimeError("sympy worker failed to start")
    try:
        payload = json.dumps({"a": _encode(a), "b": _encode(b)}) + "\n"
        w.proc.stdin.write(payload.encode())  # type: ignore[union-attr]
        w.proc.stdin.flush()  # type: ignore[union-attr]
        line = w.readline(deadline)
    except (OSError, ValueError) as exc:
        w.kill()
        _release(None, replace=True)
        raise RuntimeError("sympy worker pipe broke") from exc
    if line is None:
        w.kill()
        timed_out = time.monotonic() >= deadline
        _release(None, replace=True)
        if timed_out:
            raise VerifyTimeout()
        raise RuntimeError("sympy worker died (memory limit?)")
    _release(w, replace=False)
    try:
        r = json.loads(line)["r"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeError("bad reply from sympy worker") from exc
    return r if r in (True, False) else None


@atexit.register
def _shutdown() -> None:
    with _lock:
        for w in _idle:
            w.kill()
        _idle.clear()
