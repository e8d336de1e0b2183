"""Client overhead of a batched consult: one vector-env step of N x 3 consults vs the server's own time.

Acceptance (DESIGN §4/§7): a vector step whose N envs each consult 3 experts through
:class:`eapo_env.experts.openai_backend.OpenAIExpert` takes at most 25 % longer than the vLLM
server needs for the same prompts sent as ONE request (the ``/v1/completions`` endpoint accepts a
list of prompts; that is the server working flat out on the batch with a single HTTP exchange).

Both sides use the same real vLLM server (CPU, a tiny Qwen2 built by ``agents.policy.build``; see
``tests/servers/vllm_server.py``), the completions endpoint, the same prompts (taken from the
expert's own request bodies), and the same sampling (temperature 0, top-p 1, ``--max-tokens``),
so both generate the same tokens (checked: the completion-token totals must agree). Per repetition:

* **ours**: ``vec.step(actions)`` on ``gym.make_vec("EAPO-Math-v0", num_envs=N, expert=...)``,
  every action ``<consult>`` with 3 queries, i.e. N x 3 concurrent HTTP requests from one batched
  expert call, plus the env's own work (parsing, acceptance draws, experts blocks, info arrays);
* **server**: one ``POST /v1/completions`` with the N x 3 prompts as a list, over a kept-alive
  connection (stdlib ``http.client``), timed from send to parsed JSON.

The two are interleaved (ours, server, server, ours, ...) after a warm-up of each; every repetition
uses the same reset seed, hence the same prompts (the server started here runs with
``--no-enable-prefix-caching``, so each repetition pays the full prefill on both sides; with
``--base-url`` that is up to the server you point at). The median of ``--reps`` is reported, with ratio = ours / server. ``client CPU`` is the CPU time this process
spent during our step (the client's own cost, whatever the server does). ``--batch-size`` (default
1 and 64, a row each): the expert's queries per HTTP request; 64 sends the step's consults as one
request, as the server side does (the ``openai`` package costs ~1-2 ms of client CPU per request).

Usage:
    bash scripts/setup_vllm_venv.sh                       # once; or EAPO_VLLM_VENV=/existing/venv
    python benchmarks/bench_consult_overhead.py           # starts a server, N = 16 and 64
    python benchmarks/bench_consult_overhead.py --num-envs 32 --reps 9 --json
    python benchmarks/bench_consult_overhead.py --base-url http://127.0.0.1:8000/v1 --model NAME
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

K = 3
TARGET_RATIO = 1.25
SEED = 0


class Recording:
    """Wraps the expert to capture the requests of a step (one list append: no measurable cost)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[Any]] = []
        self.replies: list[list[Any]] = []

    async def consult(self, requests):  # type: ignore[no-untyped-def]
        self.calls.append(list(requests))
        out = await self.inner.consult(requests)
        self.replies.append(out)
        return out


class RawClient:
    """Minimal HTTP/1.1 client; ``post`` returns (wall seconds, parsed JSON).

    Each post opens a fresh connection *before* the clock starts (uvicorn drops idle keep-alive
    connections after 5 s), so the timed part is send, server work, receive and JSON parsing.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        self.path = parts.path + "/completions"
        self.host, self.port = parts.hostname, parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def post(self, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        body = json.dumps(payload).encode()
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        self.conn.connect()
        t0 = time.perf_counter()
        self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        out = json.loads(data)
        wall = time.perf_counter() - t0
        if resp.status != 200:
            raise RuntimeError(f"server answered {resp.status}: {data[:300]!r}")
        return wall, out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def actions_for(n_envs: int) -> list[str]:
    return [
        "<consult>"
        + "".join(f"<query>Env {i}, question {j}: which step comes next?</query>" for j in range(K))
        + "</consult>"
        for i in range(n_envs)
    ]


def measure(base_url: str, model: str, n_envs: int, reps: int, max_tokens: int, batch_size: int = 1) -> dict[str, Any]:
    import gymnasium as gym

    import eapo_env  # noqa: F401
    from eapo_env.experts.openai_backend import OpenAIExpert

    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": max_tokens}
    expert = OpenAIExpert(
        [base_url],
        model=model,
        mode="completions",
        timeout_s=300,
        max_retries=0,
        max_concurrency=max(256, n_envs * K),
        batch_size=batch_size,
        **sampling,
    )
    rec = Recording(expert)
    vec = gym.make_vec("EAPO-Math-v0", num_envs=n_envs, problems="generated", expert=rec, max_experts=K)
    actions = actions_for(n_envs)
    raw = RawClient(base_url)

    def ours(seed: int) -> tuple[float, float, list[str], int]:
        vec.reset(seed=seed)
        rec.calls.clear()
        rec.replies.clear()
        tokens0 = expert.stats.completion_tokens  # batched replies carry no per-query counts
        c0, t0 = time.process_time(), time.perf_counter()
        _, _, _, _, info = vec.step(actions)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if len(rec.calls) != 1 or len(rec.calls[0]) != n_envs * K:
            raise RuntimeError(f"expected one batched call of {n_envs * K} requests, got {[len(c) for c in rec.calls]}")
        bad = [r for r in rec.replies[0] if r.status != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} expert replies failed, e.g. {bad[0].status}: {bad[0].error}")
        if int(info["accepted"].sum()) != n_envs * K:
            raise RuntimeError("not every query was accepted")
        # the exact prompts the expert sent (from its own request bodies) and their sampling fields
        bodies = [json.loads(expert._body([r])) for r in rec.calls[0]]
        for b in bodies:
            if any(b.get(key) != value for key, value in sampling.items()):
                raise RuntimeError(f"expert sent other sampling params than {sampling}: {b}")
        prompts = [b["prompt"][0] if isinstance(b["prompt"], list) else b["prompt"] for b in bodies]
        return wall, cpu, prompts, expert.stats.completion_tokens - tokens0

    def server(prompts: list[str]) -> tuple[float, int]:
        wall, out = raw.post({"model": model, "prompt": prompts, **sampling})
        if len(out["choices"]) != len(prompts):
            raise RuntimeError(f"server returned {len(out['choices'])} choices for {len(prompts)} prompts")
        return wall, int(out["usage"]["completion_tokens"])

    # Warm-up both paths (connections, first-request costs); every repetition then replays the
    # same reset seed, hence the same problems and prompts on both sides.
    _, _, prompts, _ = ours(SEED)
    server(prompts)
    rows = []
    for rep in range(reps):
        order = ("ours", "server") if rep % 2 == 0 else ("server", "ours")
        row: dict[str, Any] = {}
        for side in order:
            if side == "ours":
                row["ours_s"], row["client_cpu_s"], sent, row["ours_tokens"] = ours(SEED)
                if sent != prompts:
                    raise RuntimeError("the expert sent other prompts than in the warm-up")
            else:
                row["server_s"], row["server_tokens"] = server(prompts)
        rows.append(row)
    vec.close()
    raw.close()

    ours_med = statistics.median(r["ours_s"] for r in rows)
    server_med = statistics.median(r["server_s"] for r in rows)
    return {
        "num_envs": n_envs,
        "batch_size": batch_size,
        "queries": n_envs * K,
        "max_tokens": max_tokens,
        "reps": reps,
        "ours_median_s": ours_med,
        "server_median_s": server_med,
        "ratio": ours_med / server_med,
        "client_cpu_median_s": statistics.median(r["client_cpu_s"] for r in rows),
        "client_cpu_share": statistics.median(r["client_cpu_s"] for r in rows) / server_med,
        "tokens_match": all(r["ours_tokens"] == r["server_tokens"] for r in rows),
        "completion_tokens": rows[-1]["server_tokens"],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num-envs", default="16,64", help="comma-separated N values (default 16,64)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument(
        "--batch-size",
        default="1,64",
        help="the expert's queries per HTTP request, comma-separated, one row each (64: the step as one request)",
    )
    ap.add_argument("--quick", action="store_true", help="N=16, 3 reps")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    ap.add_argument("--base-url", help="use this running server (http://host:port/v1) instead of starting one")
    ap.add_argument("--model", help="served model name (with --base-url)")
    ap.add_argument(
        "--single-process",
        action="store_true",
        help="start the server with the engine in the API process (faster start; default: vLLM's 3 processes)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.num_envs, args.reps = "16", 3
    sizes = [int(x) for x in args.num_envs.split(",") if x.strip()]

    with contextlib.ExitStack() as stack:
        startup_s = None
        if args.base_url:
            if not args.model:
                ap.error("--base-url needs --model")
            base_url, model = args.base_url, args.model
        else:
            from servers.vllm_server import VLLMServerError, ensure_served_model, start_vllm_server

            try:
                # No prefix caching: every repetition sends the same prompts, and each side must
                # pay the full prefill each time (as fresh rollout prompts would).
                server = start_vllm_server(
                    ensure_served_model(), single_process=args.single_process, extra_args=["--no-enable-prefix-caching"]
                )
            except VLLMServerError as exc:
                print(f"cannot start the vLLM server:\n{exc}", file=sys.stderr)
                return 2
            stack.callback(server.stop)
            base_url, model, startup_s = server.base_url, server.model_name, server.startup_s
            if not args.json:
                print(f"vLLM server up in {startup_s:.0f}s at {base_url} (log {server.log_path})", flush=True)
        batch_sizes = [int(x) for x in args.batch_size.split(",") if x.strip()]
        results = [measure(base_url, model, n, args.reps, args.max_tokens, b) for n in sizes for b in batch_sizes]

    ok = all(r["ratio"] <= TARGET_RATIO for r in results)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "consult_overhead",
                    "target_ratio": TARGET_RATIO,
                    "pass": ok,
                    "server_startup_s": startup_s,
                    "results": results,
                }
            )
        )
    else:
        print(
            f"\nOne vector step of N x {K} consults (OpenAIExpert, completions, temperature 0, "
            f"max_tokens {args.max_tokens}) vs the same prompts as ONE /v1/completions request; "
            f"median of {args.reps}"
        )
        print(
            f"{'N':>5} {'queries':>8} {'per req':>8} {'ours ms':>9} {'server ms':>10} {'ratio':>7} {'client CPU ms':>14} "
            f"{'CPU/server':>11} {'tokens ok':>10} {'<=1.25':>7}"
        )
        for r in results:
            print(
                f"{r['num_envs']:>5} {r['queries']:>8} {r['batch_size']:>8} {1e3 * r['ours_median_s']:>9.1f} "
                f"{1e3 * r['server_median_s']:>10.1f} {r['ratio']:>7.2f} {1e3 * r['client_cpu_median_s']:>14.1f} "
                f"{100 * r['client_cpu_share']:>10.1f}% {str(r['tokens_match']):>10} {'yes' if r['ratio'] <= TARGET_RATIO else 'NO':>7}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
