"""The program's process: compile and run the policy's program, then answer the judge's calls.

Runs as the run's unprivileged uid, in the work dir, with rlimits set, stdout/stderr going to the
parent's capped pipes, fd 3 the socket to the judge and fd 4 the program's source (a memfd). It never
sees the tests or the nonce: all it can do is return values, which is all a function does anyway.
"""

from __future__ import annotations

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire  # noqa: E402

del sys.path[0]

RPC_FD, CODE_FD = 3, 4
MAX_REQUEST = 64 << 20


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _load(sock: socket.socket) -> dict[str, object] | None:
    """Run the program; the namespace, or ``None`` after telling the judge why not."""
    source = wire.read_fd(CODE_FD).decode("utf-8", "replace")
    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
        wire.send(sock, {"hello": "syntax_error", "detail": _describe(exc)})
        return None
    except MemoryError:
        wire.send(sock, {"hello": "memory_limit", "detail": "MemoryError while compiling"})
        return None
    except RecursionError as exc:
        wire.send(sock, {"hello": "syntax_error", "detail": _describe(exc)})
        return None
    namespace: dict[str, object] = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except MemoryError:
        wire.send(sock, {"hello": "memory_limit", "detail": "MemoryError while running the program"})
        return None
    except BaseException as exc:  # the program's own exit or error: a crash, reported by name
        wire.send(sock, {"hello": "crash", "detail": _describe(exc)})
        return None
    wire.send(sock, {"hello": "ready"})
    return namespace


def _answer(namespace: dict[str, object], request: dict[str, object]) -> dict[str, object]:
    name = str(request["call"])
    target = namespace.get(name)
    if not callable(target):
        return {"raise": "NameError", "msg": f"the program defines no function {name!r}"}
    args = wire.decode(request["args"])
    kwargs = wire.decode(request["kwargs"])
    try:
        value = target(*args, **kwargs)
        return {"ok": wire.encode(value)}
    except wire.WireError as exc:
        return {"bad_return": str(exc)}
    except MemoryError:
        return {"raise": "MemoryError", "msg": ""}
    except BaseException as exc:  # SystemExit / KeyboardInterrupt from the program are its errors too
        return {"raise": type(exc).__name__, "msg": str(exc)[:500]}


def main() -> None:
    sock = socket.socket(fileno=RPC_FD)
    namespace = _load(sock)
    if namespace is None:
        return
    while True:
        try:
            request = wire.recv(sock, MAX_REQUEST)
        except EOFError:
            return
        try:
            reply = _answer(namespace, request)
        except MemoryError:
            reply = {"raise": "MemoryError", "msg": ""}
        try:
            wire.send(sock, reply)
        except MemoryError:
            wire.send(sock, {"raise": "MemoryError", "msg": "while sending the reply"})


if __name__ == "__main__":
    main()
