"""A sandbox for policy code (DESIGN §11): one Python program per run, in a fresh interpreter inside
new namespaces, judged on its tests by a separate process; the result is a typed record.

Example:
    >>> from eapo_env.sandbox import TestCase, run_program, sandbox_available
    >>> r = run_program("def f(x):\\n    return x + 1\\n", [TestCase("assert", "assert f(1) == 2")], entry_point="f")
    >>> r.status if sandbox_available() else "passed"
    'passed'
"""

from eapo_env.sandbox.probe import sandbox_available, sandbox_unavailable_reason
from eapo_env.sandbox.records import STATUSES, TEST_OUTCOMES, SandboxLimits, SandboxResult, TestCase, TestOutcome
from eapo_env.sandbox.runner import run_program

__all__ = [
    "STATUSES",
    "TEST_OUTCOMES",
    "SandboxLimits",
    "SandboxResult",
    "TestCase",
    "TestOutcome",
    "run_program",
    "sandbox_available",
    "sandbox_unavailable_reason",
]
