"""The wire format between the judge and the program's process (both inside the sandbox).

Messages are length-prefixed JSON. Values cross as *plain data* only, with a tag for each type JSON
cannot tell apart (tuple, set, frozenset, dict with non-string keys, bytes, complex, range, and an
exhausted iterator): the decoder rebuilds builtin objects, never the program's own. Why: a returned
object whose ``__eq__`` always says True (or a ``str`` subclass that does) would pass every
``assert f(x) == y``; here only values of exact builtin types cross, so the judge compares real data.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from typing import Any

MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
_LEN = struct.Struct(">I")
_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())), type(iter("")), type(iter(range(0))), map, filter)
_ITERATORS += (zip, enumerate, type(reversed([])), type({}.keys()), type({}.values()), type({}.items()))
_ITERATORS += (type(_ for _ in ()),)


class WireError(Exception):
    """A value outside plain data, a malformed message, or a message over the size bound."""


class TooLarge(WireError):
    """A message over the size bound."""


def encode(value: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """``value`` as JSON-ready plain data; :class:`WireError` for anything else."""
    budget = [MAX_ITEMS] if budget is None else budget
    budget[0] -= 1
    if depth > MAX_DEPTH or budget[0] < 0:
        raise WireError("value too deep or too large")
    t = type(value)
    if value is None or t is bool or t is str:
        return value
    if t is int:
        return value if -(2**53) < value < 2**53 else {"I": str(value)}
    if t is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else {"F": repr(value)}
    if t is list:
        return [encode(v, depth + 1, budget) for v in value]
    if t is tuple:
        return {"T": [encode(v, depth + 1, budget) for v in value]}
    if t is set or t is frozenset:
        return {"S" if t is set else "FS": [encode(v, depth + 1, budget) for v in value]}
    if t is dict:
        return {"D": [[encode(k, depth + 1, budget), encode(v, depth + 1, budget)] for k, v in value.items()]}
    if t is bytes:
        return {"B": value.hex()}
    if t is complex:
        return {"C": [repr(value.real), repr(value.imag)]}
    if t is range:
        return {"R": [value.start, value.stop, value.step]}
    if t in _ITERATORS:
        items = []
        for item in value:
            items.append(encode(item, depth + 1, budget))
        return {"IT": items}
    raise WireError(f"a value of type {t.__name__} is not plain data")


def decode(data: Any, depth: int = 0) -> Any:
    """The builtin value :func:`encode` wrote (strict: unknown tags are a :class:`WireError`)."""
    if depth > MAX_DEPTH + 1:
        raise WireError("message too deep")
    t = type(data)
    if data is None or t in (bool, str, int, float):
        return data
    if t is list:
        return [decode(v, depth + 1) for v in data]
    if t is dict and len(data) == 1:
        ((tag, body),) = data.items()
        if tag == "I":
            return int(body)
        if tag == "F":
            return float(body)
        if tag == "T":
            return tuple(decode(v, depth + 1) for v in body)
        if tag == "S":
            return {decode(v, depth + 1) for v in body}
        if tag == "FS":
            return frozenset(decode(v, depth + 1) for v in body)
        if tag == "D":
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in body}
        if tag == "B":
            return bytes.fromhex(body)
        if tag == "C":
            return complex(float(body[0]), float(body[1]))
        if tag == "R":
            return range(int(body[0]), int(body[1]), int(body[2]))
        if tag == "IT":
            return iter([decode(v, depth + 1) for v in body])
    raise WireError(f"malformed value {str(data)[:80]!r}")


def send(sock: socket.socket, message: Any) -> None:
    payload = json.dumps(message, separators=(",", ":")).encode()
    sock.sendall(_LEN.pack(len(payload)) + payload)


def _read_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise TimeoutError("no reply before the deadline")
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket, max_bytes: int, deadline: float | None = None) -> Any:
    """One message; ``TimeoutError`` past ``deadline`` (monotonic), ``EOFError``, :class:`TooLarge`."""
    (size,) = _LEN.unpack(_read_exact(sock, _LEN.size, deadline))
    if size > max_bytes:
        raise TooLarge(f"message of {size} bytes over the bound of {max_bytes}")
    try:
        return json.loads(_read_exact(sock, size, deadline))
    except ValueError as exc:
        raise WireError(f"malformed message: {exc}") from None


def read_fd(fd: int, max_bytes: int = 64 << 20) -> bytes:
    """All of a file descriptor's content from its start (a memfd), then close it."""
    try:
        data = os.pread(fd, max_bytes, 0)
    finally:
        os.close(fd)
    return data
