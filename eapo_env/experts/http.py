"""A small stdlib asyncio HTTP/1.1 client: keep-alive pools per endpoint, bounded responses.

What the ``openai`` backend speaks to OpenAI-compatible servers. Why not ``httpx``/``aiohttp``:
against a local server, plain asyncio streams cost ~130 µs of client CPU per request, ``httpx``
~3 ms. Supported: ``http``/``https``, ``Content-Length``, chunked, gzip/deflate, bearer auth.
Not supported: proxies, HTTP/2, streaming.

Failures are sorted for the caller's retry policy: :class:`RetryableError` (connection errors, bad
framing, truncated bodies: another attempt may fix it), :class:`FatalError` (a response over the
size limit), and timeouts, which the caller imposes around :func:`exchange` (a cancelled exchange
closes its connection, never returns it to the pool).

Example:
    >>> endpoint = Endpoint("http://127.0.0.1:9/v1", api_key="EMPTY", path="/completions")
    >>> endpoint.url, endpoint.port
    ('http://127.0.0.1:9/v1', 9)
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from urllib.parse import urlsplit


class RetryableError(Exception):
    """An attempt failed in a way another attempt may fix (timeouts are the caller's)."""


class FatalError(Exception):
    """An attempt failed in a way retrying will not fix (e.g. 400, 401, 404, an oversized body)."""


class _Stale(Exception):
    """A pooled connection the server had already closed: try another one, not a real attempt."""


class Endpoint:
    """One base URL and request path: its pool of idle keep-alive connections, its in-flight count."""

    def __init__(self, base_url: str, api_key: str, path: str) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base URL must be http(s)://host[:port][/prefix], got {base_url!r}")
        self.url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        netloc = parts.netloc.rpartition("@")[2]
        self.head = (
            f"POST {parts.path}{path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nAuthorization: Bearer {api_key}\r\nContent-Length: "
        ).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.in_flight = 0
        self.down_until = 0.0  # after a connection failure, prefer other endpoints for a moment

    def forget_connections(self) -> None:
        """Drop the pool without closing it (its transports died with an old event loop)."""
        self.idle.clear()
        self.in_flight = 0

    def close_idle(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def exchange(endpoint: Endpoint, body: bytes, max_bytes: int) -> tuple[int, bytes]:
    """POST ``body`` to ``endpoint``: ``(HTTP status, response body)``, over a pooled connection
    when one is alive. Raises :class:`RetryableError` / :class:`FatalError`; no deadline of its own."""
    message = endpoint.head + str(len(body)).encode() + b"\r\n\r\n" + body
    while endpoint.idle:  # reuse a keep-alive connection the server has not visibly closed
        reader, writer = endpoint.idle.pop()
        if reader.at_eof() or writer.is_closing():
            writer.close()
            continue
        try:
            return await _send(endpoint, reader, writer, message, max_bytes)
        except _Stale:
            break  # closed under us before any response byte: one more try, on a fresh connection
    try:
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, ssl=endpoint.ssl, limit=1 << 20)
    except OSError as exc:
        endpoint.down_until = time.monotonic() + 1.0
        raise RetryableError(f"cannot connect to {endpoint.url}: {exc.strerror or exc}") from None
    try:
        return await _send(endpoint, reader, writer, message, max_bytes)
    except _Stale:
        raise RetryableError(f"{endpoint.url} closed the connection without a response") from None


async def _send(
    endpoint: Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes, max_bytes: int
) -> tuple[int, bytes]:
    keep = False
    try:
        writer.write(message)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Stale from None
            raise RetryableError(f"truncated response head from {endpoint.url}") from None
        status, body, keep = await _read_body(reader, head, max_bytes)
        return status, body
    except (OSError, EOFError, ValueError, zlib.error, asyncio.LimitOverrunError) as exc:
        # connection resets, truncated bodies (IncompleteReadError is an EOFError), bad chunk
        # sizes or bad gzip (ValueError / OSError / zlib.error): the server or network misbehaved
        raise RetryableError(f"bad exchange with {endpoint.url}: {type(exc).__name__}") from None
    finally:
        # Reuse only after a complete, well-framed exchange; anything else (timeout/cancel
        # included, which arrive here as exceptions) closes the socket.
        if keep:
            endpoint.idle.append((reader, writer))
        else:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes, limit: int) -> tuple[int, bytes, bool]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        version, status = lines[0].split(" ", 2)[0], int(lines[0].split(" ", 2)[1])
    except (ValueError, IndexError):
        raise RetryableError(f"bad status line {lines[0][:60]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader, limit)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > limit:
            raise FatalError(f"response larger than {limit} bytes")
        body = await reader.readexactly(length)
    else:  # HTTP/1.0 style: the body runs to the end of the connection
        keep, parts, got = False, [], 0
        while got <= limit and (part := await reader.read(65536)):
            parts.append(part)
            got += len(part)
        body = b"".join(parts)
    if len(body) > limit:
        raise FatalError(f"response larger than {limit} bytes")
    encoding = headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate"):  # bounded inflation: a tiny body must not expand to GBs
        inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
        body = inflater.decompress(body, limit + 1)
        if len(body) > limit or inflater.unconsumed_tail:
            raise FatalError(f"decompressed response larger than {limit} bytes")
    return status, body, keep


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size_total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        size_total += size
        if size_total > limit:
            raise FatalError(f"response larger than {limit} bytes")
        chunks.append((await reader.readexactly(size + 2))[:-2])


def snippet(data: bytes, n: int = 120) -> str:
    """The start of a response body, for an error message."""
    return data[:n].decode("utf-8", "replace").replace("\n", " ")
