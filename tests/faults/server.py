"""A real OpenAI-compatible HTTP server on 127.0.0.1 that injects faults chosen per request.

The fault is picked by a marker anywhere in the prompt text (chat messages or completions prompt;
of a batched request — a ``prompt`` list, or ``/chat/completions/batch`` as vLLM serves it — any of
its prompts, and then the fault hits the whole request, as a real server's would):

=================  ============================================================================
marker             behaviour
=================  ============================================================================
``FAULT:timeout``  never answers (holds the connection until the client gives up or we stop)
``FAULT:slow``     answers normally after ``slow_s`` seconds (below a sane client timeout)
``FAULT:400``      ``400 Bad Request`` every time (a request refused for what it carries)
``FAULT:429``      ``429 Too Many Requests`` every time
``FAULT:500``      ``500 Internal Server Error`` every time
``FAULT:badjson``  ``200`` with a body that is not JSON, every time
``FAULT:drop``     closes the connection without writing a response, every time
``FAULT:flaky``    ``500`` on the first hit of this exact prompt, a normal answer afterwards
``FAULT:short``    ``200`` with one choice too few (a malformed reply to a batch), every time
``DELAY:<ms>``     a normal answer after that many milliseconds (benchmarks, concurrency tests)
``WIRE:chunked``   a normal answer with ``Transfer-Encoding: chunked`` (framing tests)
``WIRE:gzip``      a normal answer, gzip-compressed (``Content-Encoding: gzip``)
``WIRE:close``     a normal answer without ``Content-Length`` (sent in two pieces), then close
``WIRE:bomb``      a normal answer padded with 1 MiB of spaces, gzip-compressed (~1 KiB on the wire)
=================  ============================================================================

``FaultServer(fail_all="500")`` (any marker name above) injects that fault into every request: a
broken replica beside healthy ones, for failover tests. Otherwise the reply is deterministic: ``echo: <last line of the prompt> The answer is \\boxed{42}.``,
one choice per prompt of a batch (``index`` 0, 1, …).

It is a plain asyncio HTTP/1.1 server (keep-alive, ``Content-Length`` bodies) running its own event
loop in a daemon thread, so thousands of concurrent connections cost no threads. It keeps its own
accounting (hits per marker, max concurrent requests in flight, busy span) for the tests and the
overhead benchmark. Run it standalone (a separate process, so it does not share the client's GIL):

    python -m tests.faults.server --port 8011 [--delay-ms 0]     # GET /stats reads, POST /stats resets

Example:
    >>> with FaultServer() as server:                      # doctest: +SKIP
    ...     url = server.base_url                         # "http://127.0.0.1:<port>/v1"
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_MARKER = re.compile(r"FAULT:(timeout|slow|400|429|500|badjson|drop|flaky|short)")
_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/chat/completions/batch")
_DELAY = re.compile(r"DELAY:(\d+)")
_WIRE = re.compile(r"WIRE:(chunked|gzip|close|bomb)")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Stats:
    """The server's own accounting (mutated only on the server's loop thread)."""

    requests: int = 0
    hits: Counter[str] = field(default_factory=Counter)  # marker (or "ok") -> number of requests
    in_flight: int = 0
    max_in_flight: int = 0
    prompts_in_flight: int = 0  # queries: a batched request carries several
    max_prompts_in_flight: int = 0
    first_start: float = 0.0
    last_end: float = 0.0
    busy_s: float = 0.0  # sum of per-request handling time (parse → response written)
    paths: Counter[str] = field(default_factory=Counter)
    payloads: list[dict[str, Any]] = field(default_factory=list)  # the last 100 request bodies
    headers: list[dict[str, str]] = field(default_factory=list)  # and their headers


class FaultServer:
    """The fault-injecting server; a context manager that starts/stops it in a background thread.

    Args:
        port: 0 picks a free port.
        slow_s: delay of ``FAULT:slow``.
        delay_s: delay added to every normal answer (simulated generation time).
        fail_all: a fault marker's name (``"500"``, ``"drop"``, ...) injected into every request.
    """

    def __init__(self, port: int = 0, slow_s: float = 0.3, delay_s: float = 0.0, fail_all: str | None = None) -> None:
        if fail_all is not None and not _MARKER.fullmatch(f"FAULT:{fail_all}"):
            raise ValueError(f"unknown fault {fail_all!r}")
        self.port = port
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.fail_all = fail_all
        self.stats = Stats()
        self._flaky_seen: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FaultServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=4096)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):  # also frees handlers parked on FAULT:timeout
                writer.transport.abort()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(5)
        self._loop.close()

    def drop_connections(self) -> None:
        """Close every open connection now, as a server's keep-alive timeout does (call when idle)."""

        async def drop() -> None:
            for writer in list(self._writers):
                writer.close()

        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(drop(), self._loop).result(5)

    def reset_stats(self) -> None:
        """Zero the accounting (call between phases, from the test thread, when idle)."""
        self.stats = Stats()
        self._flaky_seen.clear()

    def stats_dict(self) -> dict[str, Any]:
        st = self.stats
        return {
            "requests": st.requests,
            "hits": dict(st.hits),
            "max_in_flight": st.max_in_flight,
            "max_prompts_in_flight": st.max_prompts_in_flight,
            "span_s": max(0.0, st.last_end - st.first_start),
            "busy_s": st.busy_s,
            "paths": dict(st.paths),
        }

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:  # keep-alive: many requests per connection
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                st = self.stats
                st.headers = [*st.headers[-99:], headers]
                if not await self._respond(method, path, body, writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()  # graceful: a WIRE:close response still gets flushed; FAULT:drop sent nothing

    async def _respond(self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False means the connection must be closed."""
        if path == "/stats":  # for a server in another process (the overhead benchmark)
            if method == "POST":
                self.reset_stats()
            return self._write(writer, 200, self.stats_dict())
        st = self.stats
        start = time.perf_counter()
        st.requests += 1
        st.first_start = st.first_start or start
        st.in_flight += 1
        st.max_in_flight = max(st.max_in_flight, st.in_flight)
        st.paths[path] += 1
        prompts: list[str] = []
        try:
            if method != "POST" or path not in _ROUTES:
                return self._write(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            try:
                payload = json.loads(body)
                chat = "/chat/" in path
                prompts = self._prompts(payload, chat, batch=path.endswith("/batch"))
            except (ValueError, KeyError, TypeError, AttributeError):
                return self._write(writer, 400, {"error": {"message": "malformed request"}})
            prompt = "\n".join(prompts)
            st.prompts_in_flight += len(prompts)
            st.max_prompts_in_flight = max(st.max_prompts_in_flight, st.prompts_in_flight)
            st.payloads = [*st.payloads[-99:], payload]
            match = _MARKER.search(prompt)
            fault = self.fail_all or (match.group(1) if match else "ok")
            st.hits[fault] += 1
            if fault == "timeout":
                await asyncio.sleep(3600)  # the client times out; stop() aborts us
            if fault == "drop":
                return False
            if fault in ("400", "429", "500"):
                return self._write(writer, int(fault), {"error": {"message": f"injected {fault}"}})
            if fault == "badjson":
                return self._write_raw(writer, 200, b'{"id": "cmpl-1", "choices": [{"mess')
            if fault == "flaky" and prompt not in self._flaky_seen:
                self._flaky_seen.add(prompt)
                return self._write(writer, 500, {"error": {"message": "flaky first attempt"}})
            delay = self.slow_s if fault == "slow" else self.delay_s
            if (d := _DELAY.search(prompt)) is not None:
                delay = int(d.group(1)) / 1000
            if delay > 0:
                await asyncio.sleep(delay)
            wire = _WIRE.search(prompt)
            if wire and wire.group(1) == "close":  # the client must read to EOF, not to the first segment
                body = json.dumps(self._completion(payload, prompts, chat)).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body[:20])
                await writer.drain()
                await asyncio.sleep(0.02)
                writer.write(body[20:])
                return False
            reply = self._completion(payload, prompts, chat)
            if fault == "short":
                reply["choices"].pop()
            return self._write(writer, 200, reply, wire.group(1) if wire else "")
        finally:
            st.in_flight -= 1
            st.prompts_in_flight -= len(prompts)
            st.last_end = time.perf_counter()
            st.busy_s += st.last_end - start

    @staticmethod
    def _prompts(payload: dict[str, Any], chat: bool, batch: bool) -> list[str]:
        """The prompt text of each conversation / prompt of a request (ValueError when malformed)."""
        if chat:
            conversations = payload["messages"] if batch else [payload["messages"]]
            if not conversations or not all(isinstance(c, list) and c for c in conversations):
                raise ValueError("messages")
            return ["\n".join(str(m.get("content", "")) for m in c) for c in conversations]
        prompt = payload["prompt"]
        if isinstance(prompt, list):
            if not prompt or not all(isinstance(p, str) for p in prompt):
                raise ValueError("prompt")
            return prompt
        return [str(prompt)]

    @staticmethod
    def _completion(payload: dict[str, Any], prompts: list[str], chat: bool) -> dict[str, Any]:
        choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
        for i, prompt in enumerate(prompts):
            last = prompt.strip().splitlines()[-1] if prompt.strip() else ""
            text = f"echo: {last} The answer is \\boxed{{42}}."
            usage["prompt_tokens"] += len(prompt.split())
            usage["completion_tokens"] += len(text.split())
            choice: dict[str, Any] = {"index": i, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": "cmpl-fault",
            "object": "chat.completion" if chat else "text_completion",
            "created": 0,
            "model": payload.get("model", "fault"),
            "choices": choices,
            "usage": usage,
        }

    def _write(self, writer: asyncio.StreamWriter, status: int, obj: dict[str, Any], wire: str = "") -> bool:
        body = json.dumps(obj).encode()
        if wire == "chunked":  # three chunks of arbitrary sizes, plus a chunk extension and a trailer
            cut = [0, len(body) // 3, len(body) // 2, len(body)]
            parts = [b"%x;ext=1\r\n%s\r\n" % (b - a, body[a:b]) for a, b in zip(cut, cut[1:])]
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            writer.write(head + b"".join(parts) + b"0\r\nx-trailer: 1\r\n\r\n")
            return True
        if wire in ("gzip", "bomb"):
            packed = gzip.compress(body + b" " * (1 << 20) if wire == "bomb" else body)
            head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed)
            writer.write(head + packed)
            return True
        return self._write_raw(writer, status, body)

    @staticmethod
    def _write_raw(writer: asyncio.StreamWriter, status: int, body: bytes) -> bool:
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = FaultServer(args.port, delay_s=args.delay_ms / 1000).start()
    print(f"serving on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
