"""A small seccomp filter for the program's process: no ``AF_UNIX`` sockets, no io_uring, native
syscalls only.

Why: the network namespace cuts TCP/UDP and abstract Unix sockets, but a *path* Unix socket is
reached through the file system, whatever the namespace (a world-writable socket of the host would
be reachable read-only or not); io_uring can open sockets without the ``socket`` syscall; and on
x86-64 the 32-bit and x32 entry points would bypass a filter on native numbers. Installed after
``PR_SET_NO_NEW_PRIVS``, it is inherited by everything the program starts. Unknown architectures
get no filter (the other layers still hold); :data:`SUPPORTED` says which.
"""

from __future__ import annotations

import ctypes
import platform
import struct

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
RET_ALLOW, RET_DENY = 0x7FFF0000, 0x00050000 | 97  # SECCOMP_RET_ERRNO | EAFNOSUPPORT
LD, JEQ, JGE, RET = 0x20, 0x15, 0x35, 0x06
AF_UNIX = 1
#: machine -> (AUDIT_ARCH, __NR_socket, __NR_io_uring_setup, x32 bit or 0)
_ARCHES = {"x86_64": (0xC000003E, 41, 425, 0x40000000), "aarch64": (0xC00000B7, 198, 425, 0)}
SUPPORTED = tuple(_ARCHES)


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _program(arch: int, nr_socket: int, nr_uring: int, x32: int) -> list[tuple[int, int, int, int]]:
    # (code, jt, jf, k); a jump goes to index i + 1 + offset: ALLOW is index 8, DENY index 9.
    return [
        (LD, 0, 0, 4),  # 0: arch
        (JEQ, 0, 7, arch),  # 1: not native -> DENY
        (LD, 0, 0, 0),  # 2: syscall number
        (JGE, 5, 0, x32 or 0xFFFFFFFF),  # 3: x32 -> DENY
        (JEQ, 4, 0, nr_uring),  # 4: io_uring_setup -> DENY
        (JEQ, 0, 2, nr_socket),  # 5: not socket -> ALLOW
        (LD, 0, 0, 16),  # 6: args[0] (low word): the address family
        (JEQ, 1, 0, AF_UNIX),  # 7: AF_UNIX -> DENY
        (RET, 0, 0, RET_ALLOW),  # 8
        (RET, 0, 0, RET_DENY),  # 9
    ]


def install() -> bool:
    """Install the filter on this process (after no_new_privs); False on an unknown architecture."""
    spec = _ARCHES.get(platform.machine())
    if spec is None:
        return False
    code = b"".join(struct.pack("=HBBI", *ins) for ins in _program(*spec))
    buf = ctypes.create_string_buffer(code)
    prog = _Filter(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused")
    return True
