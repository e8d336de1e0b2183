"""Fault tier, several base URLs: a broken or lost endpoint costs retries on the others, never a reply.

Two (or three) real loopback servers (tests/faults/server.py) behind one ``OpenAIExpert``: one
answering every request with a fault (``fail_all``) or stopped in the middle of a consult. What
must hold: every query gets an ``ok`` reply from the healthy server, the failed attempts are
retried on it at once (counted as retries and failovers, equal to the broken server's own hit
count), nothing waits for a backoff while a fresh endpoint is left, and when every endpoint fails
the retries stop at ``max_retries`` with the last attempt's reason.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from eapo_env.experts import ExpertRequest
from eapo_env.experts.openai_backend import OpenAIExpert
from eapo_env.problems import Problem
from tests.faults.server import FaultServer

pytestmark = pytest.mark.faults

PROBLEM = Problem("p/1", "What is $6 \\times 7$?", "42")


def requests(n: int, tag: str = "q", delay_ms: int = 0) -> list[ExpertRequest]:
    delay = f"DELAY:{delay_ms} " if delay_ms else ""
    return [ExpertRequest(f"e{i}/0/0", PROBLEM, f"{delay}{tag}{i}") for i in range(n)]


def make(urls: list[str], **kw) -> OpenAIExpert:
    # a backoff long enough to show in the wall time if a failover waited for it
    kw = {"timeout_s": 2.0, "max_retries": 2, "backoff_s": 3.0, "max_concurrency": 64, **kw}
    return OpenAIExpert(urls, model="m", **kw)


@pytest.mark.parametrize("fault", ["500", "429", "drop", "badjson", "timeout"])
def test_a_broken_endpoint_fails_over_to_a_healthy_one(fault):
    timeout_s = 1.0 if fault == "timeout" else 2.0
    with FaultServer(fail_all=fault) as bad, FaultServer() as good:
        expert = make([bad.base_url, good.base_url], timeout_s=timeout_s)
        start = time.perf_counter()
        replies = asyncio.run(expert.consult(requests(120)))
        wall = time.perf_counter() - start
        assert [r.status for r in replies] == ["ok"] * 120, {r.error for r in replies if not r.ok}
        assert [r.text.split()[1] for r in replies] == [f"q{i}" for i in range(120)]  # each its own reply
        s = expert.stats
        assert bad.stats.hits[fault] > 0  # the broken server did get its share first
        assert good.stats.hits["ok"] == 120  # every query answered by the healthy one, exactly once
        # one failover per failed attempt (a dropped request may be resent once by the pool, uncounted)
        first_tries = bad.stats.requests if fault != "drop" else s.failovers
        assert s.retries == s.failovers == first_tries > 0
        assert s.by_endpoint == {bad.base_url: s.failovers, good.base_url: 120}
        assert (s.ok, s.errors, s.timeouts, s.attempts) == (120, 0, 0, 120 + s.retries)
        assert wall < timeout_s + 2.0  # nobody waited for the 3 s backoff


def test_an_endpoint_stopped_mid_consult_costs_no_reply():
    # requests take 300 ms; the first server dies while it serves its share of the first 64
    with FaultServer(delay_s=0.3) as doomed, FaultServer(delay_s=0.3) as survivor:
        expert = make([doomed.base_url, survivor.base_url], max_concurrency=64, timeout_s=5.0)

        async def run() -> list:
            consult = asyncio.ensure_future(expert.consult(requests(200)))
            for _ in range(200):  # until the first wave is being served (client start-up takes a moment)
                await asyncio.sleep(0.01)
                if doomed.stats.in_flight >= 8:
                    break
            lost = doomed.stats.in_flight
            await asyncio.to_thread(doomed.stop)
            return [lost, *(await consult)]

        lost, *replies = asyncio.run(run())
        assert lost > 0
        assert [r.status for r in replies] == ["ok"] * 200, {r.error for r in replies if not r.ok}
        assert [r.text.split()[1] for r in replies] == [f"q{i}" for i in range(200)]
        s = expert.stats
        assert s.retries >= lost and s.failovers >= lost  # each request lost with the server: once more
        assert s.ok == 200 and s.errors == s.timeouts == 0
        assert survivor.stats.hits["ok"] + doomed.stats.hits["ok"] >= 200
        assert s.by_endpoint[survivor.base_url] >= 200 - doomed.stats.hits["ok"]


def test_every_endpoint_failing_stops_at_max_retries_with_backoff():
    with FaultServer(fail_all="500") as a, FaultServer(fail_all="500") as b:
        expert = make([a.base_url, b.base_url], max_retries=3, backoff_s=0.05)
        start = time.perf_counter()
        replies = asyncio.run(expert.consult(requests(10)))
        wall = time.perf_counter() - start
        assert {r.status for r in replies} == {"error"}
        assert all("HTTP 500" in r.error and "(4 attempts)" in r.error for r in replies)
        s = expert.stats
        assert (s.attempts, s.retries, a.stats.requests + b.stats.requests) == (40, 30, 40)
        # per request A, B (failover), then back off and A, B again: 3 failovers per request
        assert s.failovers == 30 and a.stats.requests == b.stats.requests == 20
        assert wall >= 0.05 * 0.75  # one backoff, after both endpoints had failed


def test_a_refused_connection_fails_over_and_the_dead_url_is_avoided():
    with FaultServer() as live:
        dead = FaultServer().start()
        dead_url = dead.base_url
        dead.stop()  # nothing listens there any more
        expert = make([dead_url, live.base_url], max_concurrency=8)
        first = asyncio.run(expert.consult(requests(40, "a")))
        failovers = expert.stats.failovers
        second = asyncio.run(expert.consult(requests(40, "b")))  # a new loop: clients are remade
        assert all(r.ok for r in first + second)
        assert 0 < failovers <= 8  # only the first wave tried the dead URL, then it was avoided for a while
        assert expert.stats.failovers - failovers <= 8
        assert live.stats.requests == 80


@pytest.mark.parametrize("mode", ["chat", "completions"])
def test_batched_requests_fail_over_as_a_whole(mode):
    with FaultServer(fail_all="500") as bad, FaultServer() as good:
        expert = make([bad.base_url, good.base_url], mode=mode, batch_size=8)
        replies = asyncio.run(expert.consult(requests(32)))
        assert [r.text.split()[1] for r in replies] == [f"q{i}" for i in range(32)]
        s = expert.stats
        assert s.ok == 32 and s.retries == s.failovers == bad.stats.requests > 0
        assert good.stats.requests == 4 and good.stats.max_prompts_in_flight <= 32
