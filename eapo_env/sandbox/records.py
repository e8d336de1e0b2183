"""Typed records of the sandbox: what to run (:class:`TestCase`, :class:`SandboxLimits`) and what came
back (:class:`TestOutcome`, :class:`SandboxResult`).

Why records and not dicts: the parent scores from these fields only (never an exit code), so each
field has one meaning. A test is judged by the in-sandbox *judge* process, which holds the tests and
the run's nonce; the program's process only ever answers calls with plain data (see
:mod:`eapo_env.sandbox.runner`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Every status a run can end in. ``passed`` is the only one that scores.
STATUSES: tuple[str, ...] = (
    "passed",
    "tests_failed",
    "syntax_error",
    "timeout",
    "crash",
    "output_limit",
    "memory_limit",
    "sandbox_unavailable",
)

#: Outcomes of one test: judged ``passed``/``failed``; ``error`` (the call raised or returned a value
#: outside plain data); ``timeout``; ``not_run`` (the program died or the run stopped before it).
TEST_OUTCOMES: tuple[str, ...] = ("passed", "failed", "error", "timeout", "not_run")

#: Test kinds the judge knows: ``assert`` (a statement, e.g. MBPP's ``assert f(1) == 2``), ``check``
#: (HumanEval: code defining ``check(candidate)``), ``io`` (EvalPlus: arguments whose expected output
#: the judge computes from the trusted reference solution).
TEST_KINDS: tuple[str, ...] = ("assert", "check", "io")


@dataclass(frozen=True, slots=True)
class TestCase:
    """One unit test, executed by the judge (trusted code), never by the program's process.

    Attributes:
        kind: one of :data:`TEST_KINDS`.
        code: the statement (``assert``) or the ``check`` definition (``check``); empty for ``io``.
        args: the positional arguments of an ``io`` test (plain data).
        atol: absolute tolerance of float outputs (``io``; EvalPlus's ``atol``).
    """

    __test__ = False  # not a pytest class

    kind: str
    code: str = ""
    args: tuple[Any, ...] = ()
    atol: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in TEST_KINDS:
            raise ValueError(f"unknown test kind {self.kind!r}; known: {TEST_KINDS}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "code": self.code, "args": list(self.args), "atol": self.atol}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> TestCase:
        return cls(str(row["kind"]), str(row.get("code", "")), tuple(row.get("args", ())), float(row.get("atol", 0.0)))


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds of one run.

    Attributes:
        wall_s: wall-clock bound of the whole run; past it the namespace is killed (status ``timeout``).
        cpu_s: ``RLIMIT_CPU`` of the program's process.
        memory_bytes: ``RLIMIT_AS`` of the program's process.
        file_bytes: ``RLIMIT_FSIZE`` (largest file the program may write in its work dir).
        open_files: ``RLIMIT_NOFILE``.
        processes: ``RLIMIT_NPROC`` of the program's private uid (threads count).
        output_bytes: stdout + stderr the parent reads; past it the namespace is killed (``output_limit``).
        tail_bytes: how much of the end of stdout and of stderr the result keeps.
        tmpfs_bytes: size of the private ``/tmp`` (which holds the work dir).
        message_bytes: largest reply (a return value) the judge accepts from the program.
    """

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 1 << 20
    tail_bytes: int = 2048
    tmpfs_bytes: int = 64 << 20
    message_bytes: int = 8 << 20


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """How one test went (``detail``: the failing assertion or the exception, cut short)."""

    __test__ = False

    index: int
    outcome: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """The structured record of one run.

    Attributes:
        status: one of :data:`STATUSES`.
        tests: one outcome per test, in order (all ``not_run`` when the program never got that far).
        stdout: the last ``tail_bytes`` of the program's stdout (decoded, replacement for bad bytes).
        stderr: the same for stderr.
        wall_s: seconds from spawn to reap.
        detail: why, in words (the setup error, the exception at import, the signal that killed it).
    """

    status: str
    tests: tuple[TestOutcome, ...] = ()
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown sandbox status {self.status!r}")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def passed_count(self) -> int:
        return sum(t.outcome == "passed" for t in self.tests)
