"""``openai``: any OpenAI-compatible server (vLLM, SGLang, hosted APIs), several base URLs balanced.

Speaks the OpenAI ``/chat/completions`` (default) or ``/completions`` wire format over a small
stdlib asyncio HTTP/1.1 client with keep-alive pools. Why not ``openai``/``httpx``: against a local
server, plain asyncio streams cost ~130 µs of client CPU per request, ``httpx`` ~3 ms and
``AsyncOpenAI`` ~4 ms; rollouts send thousands of queries per step. Supported: ``http``/``https``,
``Content-Length``, chunked, gzip, bearer auth. Not supported: proxies, HTTP/2, streaming.

Failure policy: per attempt a total deadline (``timeout_s``: connect + send + receive); retries with
exponential backoff (``backoff_s * 2**attempt``, jittered) on timeouts, connection errors, 429, 5xx and
malformed JSON; other 4xx fail at once. :meth:`OpenAIExpert.consult` never raises for a request:
the reply is ``failed_reply("timeout" | "error", reason)`` (``timeout`` when the last attempt timed out).

Example:
    >>> expert = OpenAIExpert(["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"], model="Qwen/Qwen2.5-7B-Instruct")
    >>> expert.endpoints
    ['http://10.0.0.1:8000/v1', 'http://10.0.0.2:8000/v1']
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from eapo_env.experts.base import ExpertReply, ExpertRequest, failed_reply

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert mathematician helping a student who is solving a problem. Answer the "
    "student's question accurately and concisely. If you state a final answer, write it as \\boxed{...}."
)
#: ``{question}`` and ``{query}`` are replaced verbatim (no ``str.format``, so LaTeX braces are safe).
DEFAULT_PROMPT_TEMPLATE = "Problem:\n{question}\n\nThe student asks:\n{query}"


class _Retryable(Exception):
    """An attempt failed in a way another attempt may fix (timeouts are caught separately)."""


class _Fatal(Exception):
    """An attempt failed in a way retrying will not fix (e.g. 400, 401, 404)."""


class _Stale(Exception):
    """A pooled connection the server had already closed: try another one, not a real attempt."""


@dataclass
class OpenAIStats:
    """Running totals since construction (read them for logging; never reset implicitly)."""

    requests: int = 0
    ok: int = 0
    timeouts: int = 0
    errors: int = 0
    attempts: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # sum over requests; mean = latency_s / requests


class _Endpoint:
    """One base URL: its pool of idle keep-alive connections and its in-flight count."""

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


class OpenAIExpert:
    """Async expert over OpenAI-compatible servers, balanced by least in-flight requests.

    Args:
        base_urls: one URL or several (``http://host:8000/v1``); each request goes to the endpoint
            with the fewest requests in flight (ties rotate), avoiding one that just refused a connection.
        model: the served model name.
        api_key: sent as ``Authorization: Bearer``; vLLM ignores it unless started with ``--api-key``.
        mode: ``"chat"`` (``/chat/completions``, system + user message) or ``"completions"``
            (``/completions``, system prompt and user text joined into one prompt).
        temperature, top_p, max_tokens: sampling; ``extra_body`` adds fields (``stop``, ``seed``…).
        timeout_s: total deadline of one attempt. max_retries: extra attempts after the first.
        backoff_s: first backoff; doubles per retry (with ±25 % jitter).
        max_concurrency: requests in flight at once over all endpoints (an ``asyncio.Semaphore``);
            the connection pools grow to this size, so set it to thousands for big vLLM fleets.
        system_prompt, prompt_template: the prompt; the template gets ``{question}`` (the problem
            statement) and ``{query}`` (the policy's question).
        max_response_bytes: larger bodies are an error (expert text is untrusted).

    Use one event loop at a time (the env's shared background loop, or your own): connections
    belong to a loop, and moving to a new loop drops the old pool.

    Example:
        >>> import asyncio
        >>> from eapo_env.problems import Problem
        >>> expert = OpenAIExpert("http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=1)
        >>> [r.status for r in asyncio.run(expert.consult([ExpertRequest("r0", Problem("p", "1+1?", "2"), "hint?")]))]
        ['error']
    """

    name = "openai"

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        api_key: str = "EMPTY",
        mode: Literal["chat", "completions"] = "chat",
        temperature: float = 0.6,
        top_p: float = 0.95,
        max_tokens: int = 512,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.2,
        max_concurrency: int = 256,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        extra_body: Mapping[str, Any] | None = None,
        max_response_bytes: int = 8 << 20,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("OpenAIExpert needs at least one base URL")
        if mode not in ("chat", "completions"):
            raise ValueError(f"mode must be 'chat' or 'completions', got {mode!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or max_concurrency < 1:
            raise ValueError("need timeout_s > 0, max_retries >= 0, backoff_s >= 0, max_concurrency >= 1")
        self.model, self.mode = model, mode
        self.timeout_s, self.max_retries, self.backoff_s = float(timeout_s), int(max_retries), float(backoff_s)
        self.max_concurrency = int(max_concurrency)
        self.system_prompt, self.prompt_template = system_prompt, prompt_template
        self.max_response_bytes = int(max_response_bytes)
        self._sampling: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
        self._sampling.update(extra_body or {})
        self._head, self._tail = self._encode_template()
        path = "/chat/completions" if mode == "chat" else "/completions"
        self._endpoints = [_Endpoint(u, api_key, path) for u in urls]
        self._rotate = 0
        self._jitter = random.Random(0)  # private: backoff jitter must not touch global RNG state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self.stats = OpenAIStats()

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._endpoints]

    # ------------------------------------------------------------------ protocol
    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        """One reply per request, in order; all requests run concurrently (bounded)."""
        self._bind_loop()
        t0 = time.perf_counter()
        return list(await asyncio.gather(*(self._one(r, t0) for r in requests)))

    async def aclose(self) -> None:
        """Close idle pooled connections (the expert stays usable: pools refill lazily)."""
        for endpoint in self._endpoints:
            for _, writer in endpoint.idle:
                writer.close()
            endpoint.idle.clear()

    def render_prompt(self, request: ExpertRequest) -> str:
        """The user text sent for ``request`` (problem statement + query)."""
        return self.prompt_template.replace("{question}", request.problem.question).replace("{query}", request.query)

    # ------------------------------------------------------------------ internals
    def _bind_loop(self) -> None:
        # Connections and the semaphore belong to one event loop; a new loop (asyncio.run in a
        # script, then the shared background loop) must not reuse them.
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            for endpoint in self._endpoints:
                endpoint.idle.clear()  # their transports died with the old loop; just drop them
                endpoint.in_flight = 0
            self._loop, self._sem = loop, asyncio.Semaphore(self.max_concurrency)

    def _encode_template(self) -> tuple[bytes, bytes]:
        """The JSON body around the prompt text, encoded once (re-encoding it per request was a
        measurable share of the client's CPU)."""
        hole = "\x00eapo-prompt\x00"
        payload: dict[str, Any] = {"model": self.model, **self._sampling}
        if self.mode == "chat":
            system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            payload["messages"] = [*system, {"role": "user", "content": hole}]
        else:
            payload["prompt"] = hole
        head, _, tail = json.dumps(payload).partition(json.dumps(hole))
        return head.encode(), tail.encode()

    def _body(self, request: ExpertRequest) -> bytes:
        user = self.render_prompt(request)
        if self.mode == "completions" and self.system_prompt:
            user = f"{self.system_prompt}\n\n{user}"
        return self._head + json.dumps(user).encode() + self._tail

    def _pick(self) -> _Endpoint:
        eps = self._endpoints
        if len(eps) == 1:
            return eps[0]
        now = time.monotonic()
        self._rotate = (self._rotate + 1) % len(eps)
        order = eps[self._rotate :] + eps[: self._rotate]  # rotation breaks ties evenly
        return min(order, key=lambda e: (e.down_until > now, e.in_flight))

    async def _one(self, request: ExpertRequest, t0: float) -> ExpertReply:
        stats = self.stats
        stats.requests += 1
        try:
            body = self._body(request)
        except Exception as exc:  # e.g. a query that is not a str: a status, not a crash
            stats.errors += 1
            return failed_reply("error", f"cannot build request: {exc}"[:200], time.perf_counter() - t0, self.name)
        status: Literal["timeout", "error"] = "error"
        reason = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                stats.retries += 1
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1) * (0.75 + 0.5 * self._jitter.random()))
            stats.attempts += 1
            try:
                text, prompt_tokens, tokens = await self._attempt(body)
            except TimeoutError:
                status, reason = "timeout", f"no reply within {self.timeout_s:g}s"
                continue
            except _Retryable as exc:
                status, reason = "error", str(exc)
                continue
            except _Fatal as exc:
                status, reason = "error", str(exc)
                break
            except Exception as exc:  # a bug or an unforeseen failure: still a status, never a raise
                status, reason = "error", f"{type(exc).__name__}: {exc}"
                break
            latency = time.perf_counter() - t0
            stats.ok += 1
            stats.prompt_tokens += prompt_tokens
            stats.completion_tokens += tokens
            stats.latency_s += latency
            return ExpertReply(text=text, status="ok", latency_s=latency, tokens=tokens, expert=self.name)
        latency = time.perf_counter() - t0
        stats.latency_s += latency
        if status == "timeout":
            stats.timeouts += 1
        else:
            stats.errors += 1
        attempts = "attempt" if self.max_retries == 0 else f"{self.max_retries + 1} attempts"
        return failed_reply(status, f"{reason} ({attempts})"[:300], latency, self.name)

    async def _attempt(self, body: bytes) -> tuple[str, int, int]:
        """One HTTP exchange under the deadline; returns (text, prompt tokens, completion tokens)."""
        assert self._sem is not None
        async with self._sem:
            endpoint = self._pick()
            endpoint.in_flight += 1
            try:
                async with asyncio.timeout(self.timeout_s):
                    status, data = await self._exchange(endpoint, body)
            finally:
                endpoint.in_flight -= 1
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status} from {endpoint.url}: {_snippet(data)}")
        if status != 200:
            raise _Fatal(f"HTTP {status} from {endpoint.url}: {_snippet(data)}")
        return self._parse(data, endpoint.url)

    async def _exchange(self, endpoint: _Endpoint, body: bytes) -> tuple[int, bytes]:
        message = endpoint.head + str(len(body)).encode() + b"\r\n\r\n" + body
        while endpoint.idle:  # reuse a keep-alive connection the server has not visibly closed
            reader, writer = endpoint.idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._send(endpoint, reader, writer, message)
            except _Stale:
                break  # closed under us before any response byte: one more try, on a fresh connection
        try:
            reader, writer = await asyncio.open_connection(
                endpoint.host, endpoint.port, ssl=endpoint.ssl, limit=1 << 20
            )
        except OSError as exc:
            endpoint.down_until = time.monotonic() + 1.0
            raise _Retryable(f"cannot connect to {endpoint.url}: {exc.strerror or exc}") from None
        try:
            return await self._send(endpoint, reader, writer, message)
        except _Stale:
            raise _Retryable(f"{endpoint.url} closed the connection without a response") from None

    async def _send(
        self, endpoint: _Endpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
    ) -> tuple[int, bytes]:
        keep = False
        try:
            writer.write(message)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _Stale from None
                raise _Retryable(f"truncated response head from {endpoint.url}") from None
            status, body, keep = await self._read_body(reader, head)
            return status, body
        except (OSError, EOFError, ValueError, zlib.error, asyncio.LimitOverrunError) as exc:
            # connection resets, truncated bodies (IncompleteReadError is an EOFError), bad chunk
            # sizes or bad gzip (ValueError / OSError / zlib.error): the server or network misbehaved
            raise _Retryable(f"bad exchange with {endpoint.url}: {type(exc).__name__}") from None
        finally:
            # Reuse only after a complete, well-framed exchange; anything else (timeout/cancel
            # included, which arrive here as exceptions) closes the socket.
            if keep:
                endpoint.idle.append((reader, writer))
            else:
                writer.close()

    async def _read_body(self, reader: asyncio.StreamReader, head: bytes) -> tuple[int, bytes, bool]:
        lines = head.decode("latin-1").split("\r\n")
        try:
            version, status = lines[0].split(" ", 2)[0], int(lines[0].split(" ", 2)[1])
        except (ValueError, IndexError):
            raise _Retryable(f"bad status line {lines[0][:60]!r}") from None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        limit = self.max_response_bytes
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            size_total = 0
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    break
                size_total += size
                if size_total > limit:
                    raise _Fatal(f"response larger than {limit} bytes")
                chunks.append((await reader.readexactly(size + 2))[:-2])
            body = b"".join(chunks)
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length > limit:
                raise _Fatal(f"response larger than {limit} bytes")
            body = await reader.readexactly(length)
        else:  # HTTP/1.0 style: the body runs to the end of the connection
            keep, parts, got = False, [], 0
            while got <= limit and (part := await reader.read(65536)):
                parts.append(part)
                got += len(part)
            body = b"".join(parts)
        if len(body) > limit:
            raise _Fatal(f"response larger than {limit} bytes")
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):  # bounded inflation: a tiny body must not expand to GBs
            inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
            body = inflater.decompress(body, limit + 1)
            if len(body) > limit or inflater.unconsumed_tail:
                raise _Fatal(f"decompressed response larger than {limit} bytes")
        return status, body, keep

    def _parse(self, data: bytes, url: str) -> tuple[str, int, int]:
        try:
            obj = json.loads(data)
            choice = obj["choices"][0]
            text = choice["message"]["content"] if self.mode == "chat" else choice["text"]
            usage = obj.get("usage") or {}
            return (
                "" if text is None else str(text),
                int(usage.get("prompt_tokens") or 0),
                int(usage.get("completion_tokens") or 0),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Retryable(f"malformed completion from {url}: {_snippet(data)}") from None


def _snippet(data: bytes, n: int = 120) -> str:
    return data[:n].decode("utf-8", "replace").replace("\n", " ")
