"""The sandbox (DESIGN §11): every status, the limits and the scrubbed environment as the program
sees them, the structured result (nonce, one outcome per test), refusal without namespaces, and no
process left behind."""

from __future__ import annotations

import json
import os

import pytest

from eapo_env.sandbox import STATUSES, SandboxLimits, TestCase, run_program, runner
from tests.sandbox_helpers import require_sandbox, run, sandbox_pids  # noqa: F401  (fixture)

OK = "def f():\n    return 1\n"


def test_passed_and_per_test_outcomes():
    r = run("def f(x):\n    return x + 1\n", ["assert f(1) == 2", "assert f(2) == 4", "assert f(0) == 1"])
    assert r.status == "tests_failed"
    assert [t.outcome for t in r.tests] == ["passed", "failed", "passed"]
    assert "f(2) == 4" in r.tests[1].detail
    assert run(OK).status == "passed" and run(OK).passed_count == 1


@pytest.mark.parametrize(
    ("program", "status", "limits"),
    [
        ("def f(:\n    return 1\n", "syntax_error", {}),
        ("def f():\n    return 1\nraise ValueError('at import')\n", "crash", {}),
        ("import time\ntime.sleep(60)\n" + OK, "timeout", {"wall_s": 1.5}),
        ("while True:\n    pass\n" + OK, "timeout", {"wall_s": 5.0, "cpu_s": 1}),
        ("import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n" + OK, "output_limit", {"output_bytes": 100_000}),
        ("def f():\n    return len(bytearray(2 << 30))\n", "memory_limit", {}),
        ("x = bytearray(2 << 30)\n" + OK, "memory_limit", {}),
        ("def f():\n    return open('big', 'wb').write(b'x' * (4 << 20))\n", "output_limit", {"file_bytes": 1 << 20}),
        ("def f():\n    import os\n    os.abort()\n", "crash", {}),
        ("def f():\n    raise KeyError(1)\n", "tests_failed", {}),
    ],
)
def test_every_failure_is_a_status(program, status, limits):
    r = run(program, **limits)
    assert r.status == status, (r.detail, r.stderr)
    assert r.status in STATUSES and not r.passed
    assert r.wall_s < SandboxLimits(**limits).wall_s + 2.0


def test_the_program_sees_its_limits_uid_and_a_scrubbed_environment(monkeypatch):
    monkeypatch.setenv("EAPO_PARENT_SECRET", "canary-0451")
    program = (
        "import json, os, resource\n"
        "names = ['RLIMIT_AS', 'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_NPROC']\n"
        "print(json.dumps({'env': dict(os.environ), 'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(),"
        " 'pid': os.getpid(), 'cwd': os.getcwd(), 'fds': sorted(os.listdir('/proc/self/fd')),"
        " 'limits': {n: resource.getrlimit(getattr(resource, n)) for n in names}}))\n" + OK
    )
    limits = SandboxLimits(
        memory_bytes=512 << 20, cpu_s=3, file_bytes=1 << 20, open_files=32, processes=16, tail_bytes=8192
    )
    r = run_program(program, [TestCase("assert", "assert f() == 1")], entry_point="f", limits=limits)
    assert r.status == "passed", r.detail
    seen = json.loads(r.stdout)
    assert set(seen["env"]) == {"PATH", "HOME", "TMPDIR", "LANG", "LD_LIBRARY_PATH"} and "canary-0451" not in r.stdout
    assert seen["uid"] >= 1_000_000 and seen["gid"] == seen["uid"] and seen["groups"] == []
    assert seen["pid"] == 2 and seen["cwd"] == "/tmp/work"  # pid 2: the namespace's init is pid 1
    assert seen["limits"] == {
        "RLIMIT_AS": [512 << 20] * 2,
        "RLIMIT_CPU": [3, 4],
        "RLIMIT_FSIZE": [1 << 20] * 2,
        "RLIMIT_NOFILE": [32, 32],
        "RLIMIT_NPROC": [16, 16],
    }
    assert len(seen["fds"]) <= 5  # 0, 1, 2, the judge's socket, the listing's own fd: nothing else inherited


def test_the_file_system_is_read_only_except_the_work_dir_and_tmp():
    program = (
        "import os\nout = []\n"
        "for path in ('/etc/eapo_probe', '/usr/eapo_probe', '/dev/shm/x', '/tmp/work/x', '/tmp/x', '/proc/sys/x'):\n"
        "    try:\n        open(path, 'w').close(); out.append('w')\n"
        "    except OSError as e:\n        out.append(type(e).__name__)\n"
        "def f():\n    return out\n"
    )
    r = run(
        program,
        [
            "assert f()[:2] == ['OSError', 'OSError'] or f()[:2] == ['PermissionError', 'PermissionError']",
            "assert f()[2:5] == ['w', 'w', 'w']",
            "assert f()[5] != 'w'",
        ],
    )
    assert r.status == "passed", r.tests
    assert not os.path.exists("/etc/eapo_probe") and not os.path.exists("/usr/eapo_probe")


def test_printing_a_result_or_exiting_early_never_passes():
    forged = json.dumps({"nonce": "0" * 32, "hello": "ready", "tests": [{"outcome": "passed", "detail": ""}]})
    for program in (
        f"print({forged!r})\nimport os\nos._exit(0)\n",
        "def f():\n    import os\n    os._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        f"import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, {forged!r}.encode())\n"
        "    except OSError:\n        pass\ndef f():\n    return 2\n",
    ):
        r = run(program)
        assert r.status != "passed" and r.passed_count == 0, (program, r)


def test_every_test_must_report():
    # the program dies on the second call: the first test passed, the rest never ran; not a pass
    program = (
        "n = [0]\ndef f():\n    n[0] += 1\n    if n[0] > 1:\n        import os\n        os._exit(0)\n    return 1\n"
    )
    r = run(program, ["assert f() == 1"] * 3)
    assert r.status == "crash" and [t.outcome for t in r.tests] == ["passed", "not_run", "not_run"]


def test_values_cross_as_plain_data_only():
    program = "class Any:\n    def __eq__(self, other):\n        return True\ndef f():\n    return Any()\n"
    assert run(program, ["assert f() == 5"]).status == "tests_failed"
    assert run("class S(str):\n    pass\ndef f():\n    return S('a')\n", ["assert f() == 'a'"]).status == "tests_failed"
    ok = "def f():\n    return (1, {2}, {3: [4.5]}, b'x', None, frozenset(), 2**80, float('nan'))\n"
    r = run(ok, ["t = f()\nassert t[:7] == (1, {2}, {3: [4.5]}, b'x', None, frozenset(), 2**80) and t[7] != t[7]"])
    assert r.status == "passed", r.tests


def test_without_namespaces_it_refuses(monkeypatch):
    monkeypatch.setattr(runner, "UNSHARE_FLAGS", ("--no-such-flag",))  # unshare itself fails to start
    r = run_program(OK, [TestCase("assert", "assert f() == 1")], entry_point="f")
    assert r.status == "sandbox_unavailable" and [t.outcome for t in r.tests] == ["not_run"]
    monkeypatch.setattr(runner, "missing_tools", lambda: ["unshare"])
    assert run_program(OK, [], entry_point="f").status == "sandbox_unavailable"
    assert sandbox_pids() == []


def test_many_runs_leave_no_process_and_no_fd():
    fds_before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        assert run("import os\nif os.fork() == 0:\n    import time\n    time.sleep(30)\n" + OK).status == "passed"
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert sandbox_pids() == []
