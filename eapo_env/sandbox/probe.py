"""``sandbox_available()``: do the namespaces, mounts and uid changes actually work here? (cached)

Why a real run and not a look at the binaries: containers often ship ``unshare`` but forbid the
syscalls (no ``CAP_SYS_ADMIN``, seccomp); only a run through the whole path proves it works.
"""

from __future__ import annotations

import functools

from eapo_env.sandbox.records import SandboxLimits, TestCase
from eapo_env.sandbox.runner import run_program

_PROBE = "def probe(x):\n    return x * 2\n"


@functools.lru_cache(maxsize=1)
def sandbox_unavailable_reason() -> str:
    """Empty when a probe program passes in the sandbox; else why it does not (cached per process)."""
    result = run_program(
        _PROBE, [TestCase("assert", "assert probe(21) == 42")], entry_point="probe", limits=SandboxLimits(wall_s=20.0)
    )
    return "" if result.passed else f"{result.status}: {result.detail}"


def sandbox_available() -> bool:
    """True when the sandbox works on this machine (else every run is ``sandbox_unavailable``)."""
    return not sandbox_unavailable_reason()
