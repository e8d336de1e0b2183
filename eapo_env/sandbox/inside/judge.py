"""The judge: holds the tests and the run's nonce, runs every test, writes the result record.

Runs as its own unprivileged uid (not the program's: the program can neither signal nor trace it),
non-dumpable, with fd 3 the job (a memfd: tests, nonce, trusted setup and reference code), fd 4 the
result memfd, fd 5 the socket to the program's process. The tests run *here*, with every name the
program defines replaced by a proxy that calls into the program's process and gets plain data back
(see :mod:`wire`), so nothing the program does in its own process can pass a test it fails, and its
process holds neither the nonce nor a way to reach the result.
"""

from __future__ import annotations

import ast
import builtins
import copy
import ctypes
import json
import math
import os
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

del sys.path[0]

JOB_FD, RESULT_FD, RPC_FD = 3, 4, 5
PR_SET_DUMPABLE = 4
EFBIG = "[Errno 27]"


class ProgramStopped(BaseException):
    """The program cannot answer any more (BaseException: a test's ``except Exception`` cannot eat it)."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


class ProgramRaised(Exception):
    """The program's function raised an exception that is not a builtin one (by name)."""


class Program:
    """The program's process, seen from the judge: ``call(name, args, kwargs) -> plain data``."""

    def __init__(self, sock: socket.socket, deadline: float, max_bytes: int) -> None:
        self.sock, self.deadline, self.max_bytes = sock, deadline, max_bytes
        self.last_raise = ""

    def receive(self) -> dict[str, Any]:
        try:
            message = wire.recv(self.sock, self.max_bytes, self.deadline)
        except TimeoutError:
            raise ProgramStopped("timeout", "no reply before the deadline") from None
        except EOFError:
            raise ProgramStopped("not_run", "the program's process exited") from None
        except wire.TooLarge as exc:
            raise ProgramStopped("error", f"output_limit: {exc}") from None
        except (wire.WireError, OSError) as exc:
            raise ProgramStopped("not_run", f"broken channel: {exc}") from None
        if not isinstance(message, dict):
            raise ProgramStopped("not_run", "malformed message from the program")
        return message

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            wire.send(self.sock, {"call": name, "args": wire.encode(list(args)), "kwargs": wire.encode(kwargs)})
        except OSError as exc:
            raise ProgramStopped("not_run", f"the program's process is gone: {exc}") from None
        reply = self.receive()
        if "ok" in reply:
            try:
                return wire.decode(reply["ok"])
            except Exception as exc:  # a forged, malformed value: the function returned garbage
                raise ProgramRaised(f"malformed return value: {exc}") from None
        if "bad_return" in reply:
            raise ProgramRaised(f"the function returned {reply['bad_return']}")
        self.last_raise = str(reply.get("raise", "Exception"))
        kind = getattr(builtins, self.last_raise, None)
        msg = str(reply.get("msg", ""))
        if isinstance(kind, type) and issubclass(kind, Exception) and kind is not AssertionError:
            raise kind(msg)  # a builtin exception a test may expect (``except ValueError``)
        raise ProgramRaised(f"{self.last_raise}: {msg}")

    def proxy(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, args, kwargs)

        call.__name__ = name
        return call


def free_names(code: str) -> set[str]:
    """Names a test reads that it does not bind itself (they come from the setup or the program)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return loaded - bound - set(dir(builtins))


def same(got: Any, want: Any, atol: float) -> bool:
    """EvalPlus's comparison: exact, except floats within ``atol`` (and a relative 1e-7)."""
    if type(got) is float or type(want) is float:
        if type(got) not in (int, float) or type(want) not in (int, float):
            return False
        if math.isnan(got) or math.isnan(want):
            return math.isnan(got) and math.isnan(want)
        return math.isclose(got, want, rel_tol=1e-7, abs_tol=atol)
    if type(got) in (list, tuple) and type(got) is type(want):
        return len(got) == len(want) and all(same(g, w, atol) for g, w in zip(got, want))
    return type(got) is type(want) and bool(got == want)


def run_test(test: dict[str, Any], base: dict[str, Any], program: Program, job: dict[str, Any]) -> None:
    entry = str(job["entry_point"])
    kind = test["kind"]
    if kind == "io":
        want = job["_reference"](*copy.deepcopy(list(test["args"])))
        got = program.call(entry, tuple(test["args"]), {})
        if not same(got, want, float(test.get("atol", 0.0))):
            raise AssertionError(f"{entry}(*{str(test['args'])[:200]}) returned {str(got)[:200]}")
        return
    code = str(test["code"])
    namespace = dict(base)
    for name in free_names(code) - set(base) | {entry}:
        namespace[name] = program.proxy(name)
    exec(compile(code, "<test>", "exec"), namespace)
    if kind == "check":
        namespace["check"](program.proxy(entry))


def run_tests(job: dict[str, Any], program: Program) -> tuple[str, list[dict[str, str]]]:
    """The program's hello, then one outcome per test (the run stops when the program cannot answer)."""
    tests = job["tests"]
    outcomes: list[dict[str, str]] = []
    try:
        hello = program.receive()
    except ProgramStopped as stop:
        return ("timeout" if stop.outcome == "timeout" else "crash:" + stop.detail), outcomes
    if hello.get("hello") != "ready":
        return f"{hello.get('hello', 'crash')}:{hello.get('detail', '')}", outcomes
    base: dict[str, Any] = {"__name__": "judge", "__builtins__": builtins}
    exec(compile(str(job.get("setup", "")), "<setup>", "exec"), base)
    if any(t["kind"] == "io" for t in tests):
        reference: dict[str, Any] = {"__name__": "reference"}
        exec(compile(str(job.get("reference", "")), "<reference>", "exec"), reference)
        job["_reference"] = reference[str(job["entry_point"])]
    for i, test in enumerate(tests):
        program.last_raise = ""
        try:
            run_test(test, base, program, job)
            outcomes.append({"outcome": "passed", "detail": ""})
        except AssertionError as exc:
            outcomes.append({"outcome": "failed", "detail": (str(exc) or str(test.get("code", "")))[:300]})
        except ProgramStopped as stop:
            outcomes.append({"outcome": stop.outcome, "detail": stop.detail[:300]})
            outcomes.extend({"outcome": "not_run", "detail": ""} for _ in tests[i + 1 :])
            break
        except Exception as exc:
            name = "MemoryError" if program.last_raise == "MemoryError" else type(exc).__name__
            if isinstance(exc, OSError) and exc.args and EFBIG in str(exc.args[0]):
                name = "output_limit"  # a write past RLIMIT_FSIZE (CPython ignores SIGXFSZ: EFBIG instead)
            outcomes.append({"outcome": "error", "detail": f"{name}: {exc}"[:300]})
    return "ready", outcomes


def main() -> None:
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program's uid may not trace or read us
    job = json.loads(wire.read_fd(JOB_FD))
    deadline = time.monotonic() + float(job["deadline_s"])
    program = Program(socket.socket(fileno=RPC_FD), deadline, int(job["message_bytes"]))
    try:
        hello, outcomes = run_tests(job, program)
        record: dict[str, Any] = {"nonce": job["nonce"], "hello": hello, "tests": outcomes}
    except BaseException as exc:  # a bug of ours or of the trusted setup: reported, never a pass
        record = {"nonce": job["nonce"], "hello": f"judge_error:{type(exc).__name__}: {exc}"[:500], "tests": []}
    os.pwrite(RESULT_FD, json.dumps(record).encode(), 0)


if __name__ == "__main__":
    main()
