"""The connection pool under the ``openai`` expert's ``AsyncOpenAI`` clients: small httpx pools, many of them.

Why not one ``httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=4096))``: httpcore's pool
scans all of its connections on every request and every response (``_assign_requests_to_connections``,
with a ``poll()`` per idle connection), so its CPU per request grows with its size. Measured on the
project's 2 shared cores against the loopback fault server (``OpenAIExpert``, ``AsyncOpenAI`` 3.63,
httpx 0.29, 64 queries in flight, 300 ms of latency): ~4.5 ms of CPU per request over pools of 32
connections, 1.7 ms over pools of 8, 1.0-1.3 ms over pools of 1-4 (a single pool of 64 or 512:
5-8 ms). :class:`ShardedTransport` keeps that per-request cost of a tiny pool at any size: up to
``ceil(max_connections / shard_size)`` pools of ``shard_size`` connections (opened as load needs
them), each request on a pool with a free slot, the slot freed last first (its connection is
likely idle and kept alive), in O(1). It is an ordinary ``httpx.AsyncBaseTransport``, handed to
``httpx.AsyncClient(transport=...)``, so everything above it (the ``openai`` client, httpx's
request/response models, timeouts, decoding) is unchanged.

Two more things live here because only the transport sees them:

* **Stale keep-alive connections.** A server closes idle keep-alive connections on its own
  schedule; a request sent on one just closed fails before any response byte (httpx's
  ``RemoteProtocolError``: "Server disconnected without sending a response"). When the request went
  out while its pool held idle connections (so it may have been sent on one), it is sent once more
  on that pool, counted in :attr:`ShardedTransport.resends`: not an expert failure, and not a retry
  of the backend's. A request that fails so twice is the backend's to retry.
* **A size bound.** A response whose body (as sent, before decompression) passes ``max_body_bytes``
  raises :class:`ResponseTooLarge` while it is read (a ``Content-Length`` over it: before reading),
  so an untrusted server cannot make the client buffer gigabytes, error bodies included.

Example:
    >>> import httpx
    >>> transport = ShardedTransport(max_connections=4096, shard_size=2, max_body_bytes=1 << 20)
    >>> client = httpx.AsyncClient(transport=transport)
    >>> transport.max_shards
    2048
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Callable

import httpx
import openai

from eapo_env.experts.openai_wire import ConnectFailed, FatalError, RetryableError

#: Connections per pool of a :class:`ShardedTransport` (see the module docs).
SHARD_SIZE = 2


class ResponseTooLarge(Exception):
    """A response body passed the transport's ``max_body_bytes`` (not retried: the server means it)."""


class ShardedTransport(httpx.AsyncBaseTransport):
    """Up to ``max_connections`` HTTP/1.1 keep-alive connections, as pools of ``shard_size``.

    Args:
        max_connections: connections open at most (the backend's concurrency bound keeps requests
            in flight under it, so no request waits for a connection).
        shard_size: connections per pool (1-4: each request's pool scan costs more with more).
        max_body_bytes: bound on a response body as sent.
        verify: TLS verification (one SSL context, shared by the pools).
    """

    def __init__(
        self, max_connections: int, shard_size: int = 2, max_body_bytes: int = 8 << 20, verify: bool = True
    ) -> None:
        if max_connections < 1 or shard_size < 1 or max_body_bytes < 1:
            raise ValueError("need max_connections, shard_size and max_body_bytes >= 1")
        self.shard_size = min(shard_size, max_connections)
        self.max_shards = math.ceil(max_connections / self.shard_size)
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl.create_default_context() if verify else False
        self._shards: list[httpx.AsyncHTTPTransport] = []
        self._load: list[int] = []  # requests in flight per shard: sent and not yet closed
        self._free: list[int] = []  # one entry per free connection slot: the shard's index
        self.resends = 0

    def connections(self) -> int:
        """Connections open now, over all pools (idle ones included)."""
        return sum(len(shard._pool.connections) for shard in self._shards)

    def idle_connections(self) -> int:
        """Keep-alive connections open and idle now."""
        return sum(_idle(shard) for shard in self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        shard = self._shards[index]
        self._load[index] += 1  # taken until the response is closed (or the request fails)
        try:
            may_reuse = _idle(shard) > 0
            try:
                response = await shard.handle_async_request(request)
            except httpx.RemoteProtocolError:
                if not may_reuse:
                    raise
                self.resends += 1  # lost on a connection the server had just closed: once more
                response = await shard.handle_async_request(request)
        except BaseException:  # cancelled (a deadline) or failed: the request leaves its shard now
            self._release(index)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)  # an async transport's body
        bounded = _BoundedStream(response.stream, self.max_body_bytes, lambda: self._release(index))
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await bounded.aclose()
            raise ResponseTooLarge(f"response larger than {self.max_body_bytes} bytes")
        return httpx.Response(
            response.status_code, headers=response.headers, stream=bounded, extensions=response.extensions
        )

    async def aclose(self) -> None:
        shards, self._shards, self._load, self._free = self._shards, [], [], []
        for shard in shards:
            await shard.aclose()

    def _pick(self) -> int:
        """A pool with a free connection slot, the one freed last (likely holding an idle keep-alive
        connection); a new pool when none has one and there is room for it. O(1) per request."""
        if self._free:
            return self._free.pop()
        if len(self._shards) < self.max_shards:
            limits = httpx.Limits(max_connections=self.shard_size, max_keepalive_connections=self.shard_size)
            self._shards.append(httpx.AsyncHTTPTransport(verify=self._ssl, limits=limits))
            self._load.append(0)
            index = len(self._shards) - 1
            self._free.extend([index] * (self.shard_size - 1))
            return index
        # every slot taken (more requests at once than max_connections): the least-loaded pool,
        # where the request waits for a connection
        return min(range(len(self._load)), key=self._load.__getitem__)

    def _release(self, index: int) -> None:
        if index < len(self._load):  # not after aclose() dropped the pools
            self._load[index] -= 1
            if self._load[index] < self.shard_size:
                self._free.append(index)


def _idle(shard: httpx.AsyncHTTPTransport) -> int:
    return sum(1 for c in shard._pool.connections if c.is_idle())


class _BoundedStream(httpx.AsyncByteStream):
    """A response body that raises :class:`ResponseTooLarge` past ``limit`` bytes and calls
    ``release`` once, when closed (httpx closes it after reading, on errors and on ``aclose``)."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, release: Callable[[], None]) -> None:
        self._inner, self._limit, self._release = inner, limit, release
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(f"response larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                self._release()


class EndpointClient:
    """One base URL: its ``AsyncOpenAI`` client (the client's own retries off: the backend owns
    retries and failover) over an ``httpx.AsyncClient`` on a :class:`ShardedTransport`.

    :meth:`post` sends one pre-encoded JSON body through the client's generic ``post`` (the
    ``openai`` package's request path: auth, headers, timeouts, error types) and returns the
    raw ``(HTTP status, body)``: the backend parses completions itself, because a batched request's
    route (``/chat/completions/batch``) has no typed method and a pydantic parse of every reply
    would be a large share of the client's CPU. Failures arrive as the backend's error types:
    ``TimeoutError`` (a deadline of httpx's or of the ``openai`` client), :class:`ConnectFailed`,
    :class:`RetryableError` (a broken exchange), :class:`FatalError` (a body over the bound).

    Bound to the event loop it is first used on (httpx's connections are), like the backend.
    """

    def __init__(
        self, base_url: str, api_key: str, path: str, timeout_s: float, max_connections: int, max_body_bytes: int
    ) -> None:
        self.url, self.path, self.max_body_bytes = base_url, path, max_body_bytes
        self.transport = ShardedTransport(max_connections, SHARD_SIZE, max_body_bytes)
        http = httpx.AsyncClient(transport=self.transport, timeout=httpx.Timeout(timeout_s), follow_redirects=False)
        self.client = openai.AsyncOpenAI(
            # openai 3.x annotates http_client as its own httpx2 fork's client and accepts httpx's
            # (``is_legacy_httpx_async_client``): httpx is this project's declared dependency
            base_url=base_url,
            api_key=api_key,
            max_retries=0,
            timeout=timeout_s,
            http_client=http,  # type: ignore[arg-type]
        )

    async def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            try:
                response = await self.client.post(self.path, cast_to=httpx.Response, content=body, stream=True)
            except openai.APIStatusError as exc:  # 4xx/5xx: the client has read the body already
                return exc.status_code, exc.response.content
            try:
                return response.status_code, await self._read(response)
            finally:
                await response.aclose()
        except (openai.APITimeoutError, httpx.TimeoutException):
            raise TimeoutError from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.ConnectError):
                raise ConnectFailed(f"cannot connect to {self.url}: {cause}") from None
            raise RetryableError(f"bad exchange with {self.url}: {type(cause or exc).__name__}") from None
        except ResponseTooLarge as exc:
            raise FatalError(str(exc)) from None
        except (httpx.HTTPError, httpx.StreamError) as exc:  # a body cut short, bad chunking, bad gzip
            raise RetryableError(f"bad exchange with {self.url}: {type(exc).__name__}") from None

    async def _read(self, response: httpx.Response) -> bytes:
        """The decoded body; decompression is bounded by the same limit (per chunk as sent)."""
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise FatalError(f"decompressed response larger than {self.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        await self.client.close()
