"""From the raw records of one run to its status: the parent's only scoring rule.

Order of precedence: the parent's own bounds (wall clock, output cap) first; then the sandbox's
setup (no status record: the namespaces could not be made); then the judge's record, accepted only
with this run's nonce and exactly one outcome per test; then the first test that did not pass.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from eapo_env.sandbox.records import TEST_OUTCOMES, TestOutcome

#: Signals that end the program's process, mapped to a status (the rest are a ``crash``).
_SIGNAL_STATUS: dict[int, str] = {signal.SIGXCPU: "timeout", signal.SIGKILL: "timeout", signal.SIGXFSZ: "output_limit"}
_HELLO_STATUS = {"syntax_error": "syntax_error", "memory_limit": "memory_limit", "crash": "crash"}


@dataclass(frozen=True, slots=True)
class Classified:
    status: str
    tests: tuple[TestOutcome, ...]
    detail: str


def _outcomes(result: dict[str, Any] | None, n_tests: int) -> tuple[TestOutcome, ...] | None:
    rows = result.get("tests") if result else None
    if not isinstance(rows, list) or len(rows) not in (0, n_tests):
        return None
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("outcome") not in TEST_OUTCOMES:
            return None
        out.append(TestOutcome(i, str(row["outcome"]), str(row.get("detail", ""))))
    return tuple(out) if out else tuple(TestOutcome(i, "not_run") for i in range(n_tests))


def _child_end(status: dict[str, Any]) -> tuple[str, str]:
    child = status.get("child") or {}
    if child.get("state") == "signaled":
        sig = int(child.get("signal", 0))
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        mapped = _SIGNAL_STATUS.get(sig, "crash")
        if sig == signal.SIGKILL and not child.get("cpu_limit_hit"):
            mapped = "crash"  # a SIGKILL that is not the CPU limit's (the program's own, or the OOM killer)
        return mapped, f"the program's process was killed by {name}"
    if child.get("state") == "exited":
        return "crash", f"the program's process exited (code {child.get('code')}) before every test ran"
    return "crash", "the program's process stopped answering"


def classify(
    ended: str,
    nonce: str,
    n_tests: int,
    result: dict[str, Any] | None,
    status: dict[str, Any] | None,
    returncode: int | None,
    stderr_tail: str,
) -> Classified:
    """The status of a run (see the module docs for the order of the rules)."""
    valid = result is not None and result.get("nonce") == nonce
    tests = (_outcomes(result, n_tests) if valid else None) or tuple(TestOutcome(i, "not_run") for i in range(n_tests))
    if ended == "timeout":
        return Classified("timeout", tests, "the wall-clock bound was reached; the namespace was killed")
    if ended == "output_limit":
        return Classified("output_limit", tests, "stdout + stderr went over the cap; the namespace was killed")
    if status is None:
        detail = f"the sandbox did not start (unshare exit {returncode}): {stderr_tail.strip()[-300:]}"
        return Classified("sandbox_unavailable", tests, detail)
    if "setup_error" in status:
        return Classified("sandbox_unavailable", tests, f"sandbox setup failed: {status['setup_error']}")
    if not valid or _outcomes(result, n_tests) is None:
        return Classified("crash", tests, "the judge wrote no valid result for this run")
    assert result is not None
    hello = str(result.get("hello", ""))
    kind, _, why = hello.partition(":")
    if kind != "ready":
        if kind == "timeout":
            return Classified("timeout", tests, "the program did not load before the deadline")
        if kind == "crash" and "[Errno 27]" in why:  # EFBIG: a file write past RLIMIT_FSIZE
            return Classified("output_limit", tests, why)
        if kind == "crash":
            child_status, child_why = _child_end(status)
            if child_status != "crash":
                return Classified(child_status, tests, child_why)
        return Classified(_HELLO_STATUS.get(kind, "crash"), tests, why or hello)
    for test in tests:
        if test.outcome == "passed":
            continue
        if test.outcome == "failed":
            return Classified("tests_failed", tests, f"test {test.index} failed: {test.detail}")
        if test.outcome == "timeout":
            return Classified("timeout", tests, f"test {test.index}: {test.detail}")
        if test.outcome == "error":
            head = test.detail.split(":", 1)[0]
            mapped = {"MemoryError": "memory_limit", "output_limit": "output_limit"}.get(head, "tests_failed")
            return Classified(mapped, tests, f"test {test.index}: {test.detail}")
        child_status, child_why = _child_end(status)
        return Classified(child_status, tests, f"test {test.index} not run: {child_why}")
    return Classified("passed", tests, f"all {n_tests} tests passed")
