"""Attacks on the code sandbox (issue 22, item 7), run as root: each is bounded (a few hundred forks,
never ``kill(-1)``), each must end in a status within its bound, and nothing outside may change.

Canaries live outside the sandbox's private ``/tmp``, in world-writable places (mode 0o777/0o666),
so only the sandbox itself (read-only mounts, hidden dirs, namespaces, the uid) can stop the attack.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from eapo_env.sandbox import STATUSES
from tests.sandbox_helpers import require_sandbox, run, sandbox_pids  # noqa: F401  (fixture)

OK = "def f():\n    return 1\n"
BOUND = 6.0  # wall-clock bound given to each attack


def bounded(program: str, **limits: object):
    limits.setdefault("wall_s", BOUND)
    start = time.monotonic()
    result = run(program, **limits)
    assert result.status in STATUSES and time.monotonic() - start < float(limits["wall_s"]) + 2.0  # type: ignore[arg-type]
    return result


@pytest.fixture()
def outside():
    """A world-writable dir outside /tmp (the sandbox must not write to it, nor see it), with a canary."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    if base is None:
        pytest.fail("no /var/tmp on this machine: the canary needs a dir outside /tmp")
    path = tempfile.mkdtemp(prefix="eapo-canary-", dir=base)
    os.chmod(path, 0o777)
    canary = os.path.join(path, "canary.txt")
    with open(canary, "w") as f:
        f.write("untouched")
    os.chmod(canary, 0o666)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_write_or_delete_outside_the_work_dir(outside):
    canary = os.path.join(outside, "canary.txt")
    program = f"""
import ctypes, os
C, D = {canary!r}, {outside!r}
def attempt(fn):
    try:
        fn()
    except BaseException:
        pass
attempt(lambda: open(C, 'w').write('pwned'))
attempt(lambda: os.remove(C))
attempt(lambda: open(os.path.join(D, 'new'), 'w').write('x'))
attempt(lambda: os.symlink(C, '/tmp/work/link'))
attempt(lambda: open('/tmp/work/link', 'w').write('pwned'))
attempt(lambda: open('/proc/self/root' + C, 'w').write('pwned'))
attempt(lambda: open('/proc/1/root' + C, 'w').write('pwned'))
attempt(lambda: os.rename(C, C + '.moved'))
attempt(lambda: os.chmod('/etc', 0o777))
attempt(lambda: open('/etc/passwd', 'a').write('x'))
libc = ctypes.CDLL(None)
attempt(lambda: libc.mount(None, b'/', None, 32 | 4096, None))  # remount / read-write
attempt(lambda: os.chroot('/tmp'))
{OK}"""
    r = bounded(program)
    assert r.status == "passed", r.detail
    assert open(canary).read() == "untouched" and sorted(os.listdir(outside)) == ["canary.txt"]
    assert "x" not in open("/etc/passwd").read().splitlines()[-1:]


def test_sockets_and_dns_reach_nothing(outside):
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.settimeout(0.1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    unix_path = os.path.join(outside, "s.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen()
    unix.settimeout(0.1)
    program = f"""
import socket
out = []
def attempt(name, fn):
    try:
        fn(); out.append(name)
    except BaseException:
        pass
def tcp(addr):
    s = socket.socket(); s.settimeout(1); s.connect(addr)
attempt('tcp', lambda: tcp(('127.0.0.1', {tcp.getsockname()[1]})))
attempt('tcp-out', lambda: tcp(('1.1.1.1', 443)))
attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {udp.getsockname()[1]})))
attempt('unix', lambda: socket.socket(socket.AF_UNIX).connect({unix_path!r}))
attempt('dns', lambda: socket.getaddrinfo('example.com', 80))
def f():
    return out
"""
    r = bounded(program, tests=["assert f() == []"])  # f() returns the list of what got through
    assert r.status == "passed", r.tests
    for server in (tcp, unix):
        with pytest.raises((socket.timeout, TimeoutError, BlockingIOError)):
            server.accept()
    with pytest.raises((socket.timeout, TimeoutError)):
        udp.recvfrom(16)
    for s in (tcp, udp, unix):
        s.close()


def test_a_few_hundred_forks_are_capped_and_reaped():
    program = """
import os, time
made = 0
for _ in range(300):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    except OSError:
        break
def f():
    return made
"""
    r = bounded(program, tests=["assert f() < 32"], processes=32)
    assert r.status == "passed", r.tests  # RLIMIT_NPROC binds: the uid is not root
    assert sandbox_pids() == []


def test_ten_gib_allocation():
    assert bounded("x = bytearray(10 << 30)\n" + OK).status == "memory_limit"
    assert bounded("def f():\n    return len([0] * (10 << 30))\n").status == "memory_limit"


@pytest.mark.parametrize(
    "program",
    [
        "while True:\n    pass\n",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
        "signal.alarm(1)\nwhile True:\n    pass\n",
        "import time\nwhile True:\n    time.sleep(1)\n",
    ],
    ids=["busy", "ignores-alarm-and-xcpu", "sleeps"],
)
def test_infinite_loops_end_in_timeout(program):
    assert bounded(program + OK, wall_s=3.0, cpu_s=1).status == "timeout"


def test_a_gigabyte_of_output():
    program = "import os\nchunk = b'x' * (1 << 20)\nfor _ in range(1024):\n    os.write(1, chunk)\n" + OK
    r = bounded(program)
    assert r.status == "output_limit" and len(r.stdout) <= 2048
    r = bounded("import sys\nfor _ in range(1 << 14):\n    sys.stderr.write('y' * 65536)\n" + OK)
    assert r.status == "output_limit"
    big_file = (
        "def f():\n    with open('/tmp/work/big', 'wb') as out:\n        for _ in range(1024):\n"
        "            out.write(b'z' * (1 << 20))\n"
    )
    assert bounded(big_file).status == "output_limit"


def test_parent_env_proc_environ_and_ssh_stay_unread(monkeypatch, outside):
    home = os.path.join(outside, "home")
    os.makedirs(os.path.join(home, ".ssh"))
    key = os.path.join(home, ".ssh", "id_ed25519")
    with open(key, "w") as f:
        f.write("CANARY-SSH-KEY-77")
    os.chmod(key, 0o644)  # world-readable on purpose: only hiding can protect it
    monkeypatch.setenv("HOME", home)
    monkeypatch.setenv("EAPO_TEST_SECRET", "CANARY-ENV-88")
    program = f"""
import glob, os
seen = [repr(dict(os.environ))]
for path in ['/proc/1/environ', '/proc/self/environ', '/proc/2/environ', '/proc/3/environ', {key!r},
             os.path.expanduser('~/.ssh/id_ed25519'), '/root/.ssh/id_rsa', '/proc/1/root' + {key!r}]:
    try:
        seen.append(open(path, 'rb').read().decode('latin-1'))
    except OSError:
        pass
for path in glob.glob('/proc/*/environ') + glob.glob('/home/*/.ssh/*') + glob.glob('/root/.ssh/*'):
    try:
        seen.append(open(path, 'rb').read().decode('latin-1'))
    except OSError:
        pass
print('\\n'.join(seen))
{OK}"""
    r = bounded(program, tail_bytes=1 << 16)
    assert r.status == "passed", r.detail
    assert "CANARY-ENV-88" not in r.stdout and "CANARY-SSH-KEY-77" not in r.stdout and "CANARY" not in r.stderr


def test_signalling_a_process_outside():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        program = f"""
import os, signal
for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):
    for pid in ({sleeper.pid}, os.getppid(), 1):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
{OK}"""
        r = bounded(program)
        assert r.status in ("passed", "crash"), r.detail
        time.sleep(0.05)
        assert sleeper.poll() is None, "the sandbox killed a process outside it"
        with open(f"/proc/{sleeper.pid}/stat") as f:
            assert f.read().split()[2] != "T", "the sandbox stopped a process outside it"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_setsid_daemon_dies_with_the_run():
    program = """
import os, subprocess, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        subprocess.Popen(['sleep', '300'], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(300)
    os._exit(0)
time.sleep(0.2)
def f():
    return 1
"""
    r = bounded(program)
    assert r.status == "passed" and r.wall_s < 3.0, r.detail
    assert sandbox_pids() == []


def test_exit_before_the_tests_run_never_passes():
    for program in (
        "import os\nos._exit(0)\n" + OK,
        OK + "import os\nos._exit(0)\n",
        OK + "import os\nos.kill(os.getpid(), 9)\n",
    ):
        r = bounded(program)
        assert r.status == "crash" and not r.passed and r.passed_count == 0
