"""The namespace's init (pid 1, root inside fresh mount/pid/net/ipc/uts namespaces made by ``unshare``).

It makes every mount read-only, mounts a private tmpfs on ``/tmp`` (holding the work dir) and on
``/dev/shm``, binds the interpreter and the sandbox scripts read-only under ``/tmp``, then starts two
processes, each a fresh interpreter under its own unprivileged uid with rlimits and a fixed minimal
environment: the program's process (:mod:`child`) and the judge (:mod:`judge`). It reaps every
process of the namespace; when the judge is done it writes the status record (how both ended) and
exits, and the kernel kills whatever is left in the namespace (setsid daemons included).

It never reads the job, the program, or anything the program writes: its argv holds limits only.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seccomp  # noqa: E402

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
_KEEP = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME}
_KEEP |= {"nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
PR_SET_NO_NEW_PRIVS = 38
PYTHON_AT, HARNESS_AT, WORK_DIR = "/tmp/.python", "/tmp/.harness", "/tmp/work"
#: Host directories hidden under an empty read-only tmpfs: homes (``~/.ssh``), ``/run`` (service
#: sockets), ``/var/tmp`` (the other world-writable dir); the rest of the file system stays visible.
HIDDEN = ("/root", "/home", "/run", "/var/tmp")
LIBC = ctypes.CDLL(None, use_errno=True)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    if LIBC.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target!r}: {os.strerror(err)}")


def mounts() -> list[tuple[str, set[str]]]:
    """``(mount point, per-mount options)`` of every mount, in mount order (``/proc/self/mountinfo``)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space, ...
            out.append((point, set(fields[5].split(","))))
    return out


def make_read_only() -> None:
    """Remount every mount read-only (keeping its nosuid/nodev/noexec/atime flags), then check it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do propagates to the host
    for point, opts in mounts():
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | sum(bit for name, bit in _KEEP.items() if name in opts)
        try:
            mount(None, point, None, flags)
        except OSError:
            if os.path.exists(point):
                raise
    top = dict(mounts())  # the last mount on a path is the one the path reaches
    writable = sorted(p for p, opts in top.items() if "ro" not in opts)
    if writable:
        raise OSError(f"mounts still writable: {writable}")


def private_dirs(cfg: dict[str, Any]) -> None:
    uid = int(cfg["uid"])
    # Hold the sources open before the tmpfs covers /tmp: a checkout or venv may live under /tmp
    # (CI clones there), and a bind from /proc/self/fd/N still reaches the directory underneath.
    sources = [os.open(cfg[key], os.O_PATH | os.O_DIRECTORY) for key in ("python_prefix", "harness_dir")]
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={cfg['tmpfs_bytes']},mode=1777")
    if os.path.isdir("/dev/shm"):
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,mode=1777")
    for source_fd, target in zip(sources, (PYTHON_AT, HARNESS_AT)):
        os.mkdir(target, 0o755)
        mount(f"/proc/self/fd/{source_fd}", target, None, MS_BIND | MS_REC)
        os.close(source_fd)
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.mkdir(WORK_DIR, 0o700)
    os.chown(WORK_DIR, uid, uid)
    for path in HIDDEN:  # after the binds above: they keep the interpreter reachable if it lives here
        if os.path.isdir(path) and not os.path.islink(path):
            mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=755")


def set_limits(limits: dict[str, int]) -> None:
    for name, value in limits.items():
        soft = int(value)
        hard = soft + 1 if name == "RLIMIT_CPU" else soft
        resource.setrlimit(getattr(resource, name), (soft, hard))


def spawn(script: str, fds: dict[int, int], uid: int, limits: dict[str, int], cfg: dict[str, Any]) -> int:
    """Fork; in the child: map ``fds`` (target <- source), close the rest, limit, drop to ``uid``, exec."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        high = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 100) for target, source in fds.items()}  # no clash
        for target, source in high.items():
            os.dup2(source, target, inheritable=True)
        keep = set(fds)
        for name in os.listdir("/proc/self/fd"):
            if int(name) not in keep:
                try:
                    os.close(int(name))
                except OSError:
                    pass
        set_limits(limits)
        os.chdir(WORK_DIR)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(126)
        if cfg.get("seccomp", True):
            seccomp.install()
        python = os.path.join(PYTHON_AT, cfg["python_rel"])
        env = {"PATH": "/usr/bin:/bin", "HOME": WORK_DIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        env["LD_LIBRARY_PATH"] = os.path.join(PYTHON_AT, "lib")
        os.execve(python, [python, "-I", "-S", "-B", os.path.join(HARNESS_AT, script)], env)
    finally:
        os._exit(127)


def describe(status: int | None, cpu_s: float = 0.0, cpu_limit: float = float("inf")) -> dict[str, Any]:
    """How a process ended; ``cpu_limit_hit``: it used its whole ``RLIMIT_CPU`` (a SIGKILL then is the limit's)."""
    if status is None:
        return {"state": "running"}
    hit = cpu_s >= cpu_limit - 0.05
    if os.WIFSIGNALED(status):
        return {"state": "signaled", "signal": os.WTERMSIG(status), "cpu_limit_hit": hit}
    return {"state": "exited", "code": os.waitstatus_to_exitcode(status), "cpu_limit_hit": hit}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = int(cfg["status_fd"])
    try:
        make_read_only()
        private_dirs(cfg)
    except OSError as exc:
        os.pwrite(status_fd, json.dumps({"setup_error": str(exc)}).encode(), 0)
        return
    judge_end, child_end = socket.socketpair()
    null = os.open("/dev/null", os.O_RDWR)
    uid = int(cfg["uid"])
    child = spawn(
        "child.py", {0: null, 1: 1, 2: 2, 3: child_end.fileno(), 4: int(cfg["code_fd"])}, uid, cfg["child_limits"], cfg
    )
    judge_fds = {0: null, 1: null, 2: null, 3: int(cfg["job_fd"]), 4: int(cfg["result_fd"]), 5: judge_end.fileno()}
    judge = spawn("judge.py", judge_fds, uid + 1, cfg["judge_limits"], cfg)
    for fd in (null, int(cfg["code_fd"]), int(cfg["job_fd"]), int(cfg["result_fd"]), 0, 1, 2):
        os.close(fd)
    judge_end.close()
    child_end.close()
    ended: dict[int, int] = {}
    child_cpu = 0.0
    while judge not in ended:  # init's duty: reap everything (orphans of the program too)
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        ended[pid] = status
        if pid == child:
            child_cpu = usage.ru_utime + usage.ru_stime
    for _ in range(50):  # the program's process may be exiting right now (the judge saw its EOF)
        if child in ended:
            break
        pid, status, usage = os.wait4(child, os.WNOHANG)
        if pid:
            ended[pid], child_cpu = status, usage.ru_utime + usage.ru_stime
            break
        time.sleep(0.001)
    cpu_limit = float(cfg["child_limits"]["RLIMIT_CPU"])
    record = {"child": describe(ended.get(child), child_cpu, cpu_limit), "judge": describe(ended.get(judge))}
    os.pwrite(status_fd, json.dumps(record).encode(), 0)


if __name__ == "__main__":
    main()
