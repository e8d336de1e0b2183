"""Helpers shared by the sandbox tests: a fixture that fails (never skips) without the sandbox, a
scan for processes a sandbox run could leave behind, and a one-call runner."""

from __future__ import annotations

import os
import time

import pytest

from eapo_env.sandbox import SandboxLimits, SandboxResult, TestCase, run_program, sandbox_unavailable_reason

SANDBOX_UID_MIN = 1_000_000  # the runner's per-run uids are drawn above this


@pytest.fixture(scope="session", autouse=True)
def require_sandbox() -> None:
    reason = sandbox_unavailable_reason()
    if reason:
        pytest.fail(f"the sandbox does not work on this machine (these tests need root + unshare): {reason}")


def sandbox_pids() -> list[int]:
    """Live (or zombie) processes that belong to a sandbox: a sandbox uid or one of its scripts."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, StopIteration):
            continue
        if uid >= SANDBOX_UID_MIN or b"sandbox/inside" in cmdline or b"/tmp/.harness" in cmdline:
            found.append(int(name))
    return found


def run(program: str, tests: list[str] | None = None, *, entry: str = "f", **limits: object) -> SandboxResult:
    """Run ``program`` with ``assert`` tests (default: ``f()`` returns 1) and check nothing is left behind."""
    cases = [TestCase("assert", t) for t in (tests or ["assert f() == 1"])]
    result = run_program(program, cases, entry_point=entry, limits=SandboxLimits(**limits))  # type: ignore[arg-type]
    deadline = time.monotonic() + 1.0
    while sandbox_pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sandbox_pids() == [], "a sandbox process outlived the call"
    return result
