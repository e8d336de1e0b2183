"""One training step's rollout with the ``openai`` expert behind a slow loopback server (DESIGN §7).

The path ``eapo train`` takes: the trainer's vector env (``agents.trainer.make_envs``) and engine
(``agents.trainer.build_engine``), ``batch_episodes`` episodes drawn as the trainer draws them,
p = 1. The expert is an OpenAI-compatible server on 127.0.0.1 (``tests/faults/server.py`` in its own
process) that answers every request after ``--latency`` seconds and counts the requests in flight.

Rows per latency and per client setting (``--batch-size``: the ``openai`` expert's queries per HTTP
request; 1 = one request per query, which any OpenAI-compatible server takes; 64 = a step's batched
consult as one request, vLLM's prompt-list / ``/chat/completions/batch`` form):

* ``vector env``: the engine over the trainer's vector env (rows parked on experts, one batched call
  per group of finished turns); in flight: HTTP requests (queries) the server held at once;
* ``old per-env path`` (batch size 1 only; ``--no-per-env`` skips it): each env stepped on its own
  with a blocking ``env.step`` (one expert call per env after another: the path before the vector env);
* ``lower bound``: decode time (the same step against a zero-latency server, fastest of 3) + the longest chain of
  consulting turns of an episode x latency. Sampling draws are keyed by (episode, position) and the
  server's replies are deterministic, so every run of a step produces the same episodes;
* ``env share``: the CPU time of the vector env's calls on the engine's thread (env + verifier) plus
  the CPU time of the process's other threads (the expert client's event loop), as a share of the
  rollout's wall time: what our env and client cost. CPU time, because the loopback server runs on
  the same cores (a real expert server does not) and the wall time of a call includes waiting for a
  core the server holds; that wall time is printed beside it (``env wall``).

The policy: ``--policy DIR`` (default: ``eapo build-policy --size tiny`` output at ``--build-into``).
A base policy seldom consults, so by default it is first fine-tuned for a few seconds to consult on
its own prompts (``--no-consult-tune`` skips that): the expert path needs consulting turns.

A second table, **client CPU per query** (``--in-flight``, default 64 and 4,096): one ``consult`` of
that many queries against the same loopback server, all in flight at once (the server's count is
printed), process CPU per query, best of ``--client-repeats``; peer: the previous hand-written stdlib
client measured the same way (:data:`PREVIOUS_CLIENT_US`, ratio now / then). ``client share``: the
expert loop thread's CPU over the rollout's wall time (target < 1 % at 2 s of expert latency).

    python benchmarks/bench_training_consult.py --policy runs/policy --latency 0.25 2.0 --batch-size 1 64
    python benchmarks/bench_training_consult.py --client-only --in-flight 64 4096     # the second table only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.config import TrainConfig  # noqa: E402
from agents.rollout import PerEnvVector  # noqa: E402
from agents.trainer import build_engine, make_envs, rollout_env_cpu, rollout_episodes, step_rng  # noqa: E402

CONSULT = "<consult><query>Is my plan right?</query></consult>"
#: The previous stdlib client (``git show bea43dc:eapo_env/experts/http.py``): CPU µs per query by (in
#: flight, per HTTP request), as :func:`client_cpu` measures (2026-12-06, 2 shared cores, same minute).
PREVIOUS_CLIENT_US: dict[tuple[int, int], float] = {(64, 1): 63.0, (64, 64): 11.0, (4096, 1): 101.0, (4096, 64): 4.0}
ANSWER = "<answer>42</answer>"


# ---------------------------------------------------------------------------------- the server
class LoopbackServer:
    """``tests/faults/server.py`` in a child process (its own GIL), answering after ``latency_s``."""

    def __init__(self, latency_s: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "tests.faults.server", "--port", str(port), "--delay-ms", str(1000 * latency_s)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "serving on" not in line:
            self.proc.kill()
            raise RuntimeError(f"loopback server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stats(self, reset: bool = False) -> dict[str, Any]:
        req = urllib.request.Request(self.base_url.rsplit("/v1", 1)[0] + "/stats", method="POST" if reset else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# ---------------------------------------------------------------------------------- the policy
def consult_tuned(policy: Path, out: Path, problems: str, steps: int) -> Path:
    """A copy of ``policy`` fine-tuned on its own prompts to consult once, then answer (seconds)."""
    import shutil

    from agents.policy import load_policy
    from agents.policy.tokenizer import encode_prompt, encode_segment
    from agents.sft import fit_examples, masked_example
    from eapo_env import prompts
    from eapo_env.problems import load_problems

    if (out / "config.json").is_file():
        return out
    model, tok = load_policy(policy)
    source = load_problems(problems, seed=0)
    rows = []
    for i in range(8):
        p = encode_prompt(tok, prompts.render_prompt(source[i].question, eval_mode=False, max_experts=3, max_turns=4))
        obs = encode_segment(tok, prompts.render_experts_block([f"echo: {i} The answer is \\boxed{{42}}."]))
        c, a = encode_segment(tok, CONSULT), encode_segment(tok, ANSWER)
        rows.append((p + c + obs + a, [0] * len(p) + [1] * len(c) + [0] * len(obs) + [1] * len(a)))
    fit_examples(model, [masked_example(ids, mask) for ids, mask in rows], tok.pad_token_id, steps)
    shutil.copytree(policy, out, dirs_exist_ok=True)
    model.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------------- one step
def rollout_step(config: TrainConfig, source: Any, vec: Any, engine: Any, step: int = 0) -> dict[str, Any]:
    """The trainer's rollout of ``step`` (``agents.trainer.rollout_episodes``: its draws, its clock), timed."""
    wall0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
    trajs = rollout_episodes(config, source, vec, engine, step, step_rng(config.seed, step))
    wall = time.perf_counter() - wall0
    cpu = rollout_env_cpu(engine, cpu0, main0)  # the split train() logs every step
    chains = [sum(i["action"] == "consult" and i["accepted"] > 0 for i in t.infos) for t in trajs]
    return {
        "wall_s": wall,
        "env_s": cpu["time_env_cpu_s"],
        "env_wall_s": engine.stats.env_seconds,
        "client_cpu_s": cpu["time_other_threads_cpu_s"],
        "consult_chain": max(chains),
        "consult_turns": sum(chains),
        "episodes": len(trajs),
        "policy_tokens": sum(t.num_policy_tokens for t in trajs),
        "submits": engine.stats.submits,
        "tokens": [t.token_ids for t in trajs],
    }


def measure(
    config: TrainConfig,
    policy: Path,
    latency: float,
    threads: int,
    batch_sizes: list[int],
    repeats: int = 1,
    per_env: bool = True,
) -> dict[str, Any]:
    """Per client batch size, the vector-env path (and, at batch size 1, the old per-env path) at one
    latency, each on a fresh server count; with ``repeats`` > 1 the fastest of that many runs."""
    from agents.policy import load_policy
    from eapo_env.problems import load_problems

    torch.set_num_threads(threads)
    server = LoopbackServer(latency)
    try:
        model, tok = load_policy(policy)
        model.eval()
        source = load_problems(config.problems, seed=config.problems_seed)
        out: dict[str, Any] = {"latency_s": latency, "clients": {}}
        for batch_size in batch_sizes:
            expert_kwargs = {"base_urls": server.base_url, "model": "bench", "timeout_s": 60.0 + latency}
            expert_kwargs.update(max_retries=0, max_concurrency=1024, batch_size=batch_size)
            cfg = config.replace(expert_kwargs=expert_kwargs)
            vec = make_envs(cfg, cfg.batch_episodes, source)
            engine = build_engine(cfg, model, tok, torch.device("cpu"))
            rollout_step(cfg, source, vec, engine, step=1)  # warm-up (first calls, caches): not timed
            paths = [("vector", vec)] + ([("per_env", PerEnvVector(vec.envs))] if per_env and batch_size == 1 else [])
            client: dict[str, Any] = {}
            for name, envs in paths:
                tries = []
                for _ in range(repeats if name == "vector" else 1):
                    server.stats(reset=True)
                    row = rollout_step(cfg, source, envs, engine)
                    stats = server.stats()
                    row["max_in_flight"] = stats["max_in_flight"]
                    row["max_queries_in_flight"] = stats["max_prompts_in_flight"]
                    tries.append(row)
                client[name] = min(tries, key=lambda r: r["wall_s"])
            out["clients"][batch_size] = client
            vec.close()
        return out
    finally:
        server.close()


def client_cpu(in_flight: list[int], batch_sizes: list[int], latency: float, repeats: int) -> list[dict[str, Any]]:
    """CPU per query of one ``consult`` of ``n`` queries, all in flight at once, per (n, batch size).

    Each query asks the server for ``latency`` seconds (its ``DELAY`` marker), 10 s where the client
    needs about that long to send them all (~2 ms of CPU per HTTP request), so that all are in flight."""
    import asyncio

    from eapo_env.experts import ExpertRequest
    from eapo_env.experts.openai_backend import OpenAIExpert
    from eapo_env.problems import Problem

    problem = Problem("bench/1", "What is $6 \\times 7$?", "42")
    server = LoopbackServer(0.0)
    rows = []
    try:
        for n in in_flight:
            for batch_size in batch_sizes:
                http_requests = -(-n // batch_size)
                delay = latency if http_requests <= 256 else max(latency, 10.0)
                queries = [ExpertRequest(f"e{i}/0/0", problem, f"DELAY:{int(1000 * delay)} q{i}") for i in range(n)]
                expert = OpenAIExpert(
                    server.base_url,
                    model="bench",
                    timeout_s=60.0 + delay,
                    max_retries=0,
                    max_concurrency=http_requests,
                    batch_size=batch_size,
                )
                server.stats(reset=True)
                cpu, wall = asyncio.run(time_consult(expert, queries, repeats))
                seen = server.stats()["max_prompts_in_flight"]
                previous = PREVIOUS_CLIENT_US.get((n, batch_size))
                us = 1e6 * cpu / n
                rows.append(
                    {
                        "in_flight": n,
                        "batch_size": batch_size,
                        "latency_s": delay,
                        "server_max_queries_in_flight": seen,
                        "cpu_us_per_query": us,
                        "wall_s": wall,
                        "previous_us_per_query": previous,
                        "ratio_vs_previous": us / previous if previous else None,
                    }
                )
    finally:
        server.close()
    return rows


async def time_consult(expert: Any, queries: list[Any], repeats: int) -> tuple[float, float]:
    """(process CPU s, wall s) of the fastest of ``repeats`` consults of ``queries``, after a warm-up."""
    await expert.consult(queries[:64])  # clients, connections, the openai client's platform probe
    times = []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        replies = await expert.consult(queries)
        times.append((time.process_time() - c0, time.perf_counter() - t0))
        if not all(r.ok for r in replies):
            raise RuntimeError(f"failed replies: {[r.error for r in replies if not r.ok][:3]}")
    return min(times)


def report_client(rows: list[dict[str, Any]]) -> None:
    print("\nclient CPU per query (one consult, all its queries in flight; peer: the previous stdlib client)")
    print(
        "| queries in flight | per HTTP request | server latency | server saw in flight | CPU per query "
        "| previous client | now / previous | consult wall |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        prev = "-" if r["previous_us_per_query"] is None else f"{r['previous_us_per_query']:.0f} µs"
        ratio = "-" if r["ratio_vs_previous"] is None else f"{r['ratio_vs_previous']:.2f}x"
        print(
            f"| {r['in_flight']} | {r['batch_size']} | {r['latency_s']:.1f}s | {r['server_max_queries_in_flight']} "
            f"| {r['cpu_us_per_query']:.0f} µs | {prev} | {ratio} | {r['wall_s']:.2f}s |"
        )


def report(runs: list[dict[str, Any]], base: dict[str, Any], as_json: bool) -> None:
    decode_s = base["clients"][1]["vector"]["wall_s"]
    rows = []
    for r in runs:
        for batch_size, client in r["clients"].items():
            v, old = client["vector"], client.get("per_env")
            bound = decode_s + v["consult_chain"] * r["latency_s"]
            rows.append(
                {
                    "latency_s": r["latency_s"],
                    "batch_size": batch_size,
                    "rollout_s": v["wall_s"],
                    "max_in_flight": v["max_in_flight"],
                    "max_queries_in_flight": v["max_queries_in_flight"],
                    "per_env_s": old["wall_s"] if old else None,
                    "per_env_max_in_flight": old["max_in_flight"] if old else None,
                    "lower_bound_s": bound,
                    "wall_over_bound": v["wall_s"] / bound,
                    "speedup_vs_per_env": old["wall_s"] / v["wall_s"] if old else None,
                    "env_share": (v["env_s"] + v["client_cpu_s"]) / v["wall_s"],
                    "client_share": v["client_cpu_s"] / v["wall_s"],
                    "env_s": v["env_s"],
                    "env_wall_s": v["env_wall_s"],
                    "client_cpu_s": v["client_cpu_s"],
                    "consult_turns": v["consult_turns"],
                    "consult_chain": v["consult_chain"],
                    "episodes": v["episodes"],
                    "submits": v["submits"],
                    "same_episodes": old is None or v["tokens"] == old["tokens"],
                }
            )
    if as_json:
        print(json.dumps({"decode_s": decode_s, "rows": rows}))
        return
    print(f"decode time (zero-latency server): {decode_s:.2f}s; {rows[0]['episodes'] if rows else 0} episodes")
    print(
        "| latency | queries per HTTP request | rollout (vector env) | max in flight: requests (queries) "
        "| old per-env path | in flight (old) | lower bound | rollout / bound | old / vector "
        "| env+verifier+client share (CPU) | client share (< 1 %) | env wall | consult turns (chain) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        old = "-" if x["per_env_s"] is None else f"{x['per_env_s']:.2f}s"
        old_flight = "-" if x["per_env_max_in_flight"] is None else str(x["per_env_max_in_flight"])
        speedup = "-" if x["speedup_vs_per_env"] is None else f"{x['speedup_vs_per_env']:.1f}x"
        per_request = "1" if x["batch_size"] == 1 else f"<= {x['batch_size']}"
        print(
            f"| {x['latency_s']:.2f}s | {per_request} "
            f"| {x['rollout_s']:.2f}s | {x['max_in_flight']} ({x['max_queries_in_flight']}) | {old} | {old_flight} "
            f"| {x['lower_bound_s']:.2f}s | {x['wall_over_bound']:.2f}x | {speedup} | {100 * x['env_share']:.2f}% "
            f"({x['env_s']:.3f}s env + {x['client_cpu_s']:.3f}s client) | {100 * x['client_share']:.2f}% "
            f"| {x['env_wall_s']:.3f}s "
            f"| {x['consult_turns']} ({x['consult_chain']}) |"
        )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, nargs="+", default=[0.25, 2.0], help="server latency per request, s")
    p.add_argument("--episodes", type=int, default=64, help="episodes of the step (group size 8)")
    p.add_argument("--policy", default=None, help="a built policy directory (default: build one)")
    p.add_argument(
        "--build-into",
        default="runs/bench_consult/policy",
        help="where the default policy is built (the consult-tuned copy goes next to it)",
    )
    p.add_argument("--no-consult-tune", action="store_true", help="use the policy as is (it may never consult)")
    p.add_argument("--tune-steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[1, 64],
        help="the openai client's queries per HTTP request, one row each (1 = one request per query)",
    )
    p.add_argument("--in-flight", type=int, nargs="+", default=[64, 4096], help="client table: queries per consult")
    p.add_argument("--client-batch-size", type=int, nargs="+", default=[1, 64], help="client table: per HTTP request")
    p.add_argument("--client-latency", type=float, default=2.0, help="client table: server latency, s")
    p.add_argument("--client-repeats", type=int, default=2)
    p.add_argument("--client-only", action="store_true", help="only the client CPU table (no policy, no rollout)")
    p.add_argument("--no-per-env", action="store_true", help="skip the old per-env path (minutes at 2 s latency)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    client_rows = client_cpu(args.in_flight, args.client_batch_size, args.client_latency, args.client_repeats)
    if args.client_only:
        if args.json:
            print(json.dumps({"client": client_rows}))
        else:
            report_client(client_rows)
        return []
    policy = Path(args.policy) if args.policy else Path(args.build_into)
    if args.policy is None and not (policy / "config.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "agents.cli", "build-policy", "--out", str(policy), "--size", "tiny"],
            cwd=ROOT,
            check=True,
        )
    config = TrainConfig(
        policy=str(policy),
        expert="openai",
        group_size=8,
        prompts_per_step=max(1, args.episodes // 8),
        max_turns=4,
        acceptance_schedule="const:1.0",
        turn_schedule="const:4",
        max_turn_tokens=32,
        max_total_tokens=1024,
        tensorboard=False,
        progress_bar=False,
    )
    if not args.no_consult_tune:
        torch.set_num_threads(args.threads)
        # keyed on the source weights: a rebuilt policy at the same path gets its own tuned copy
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(policy.glob("*.safetensors")))).hexdigest()
        tuned = Path(args.build_into).parent / f"{policy.resolve().name}-{digest[:12]}-consults-{args.tune_steps}"
        policy = consult_tuned(policy, tuned, config.problems, args.tune_steps)
        config = config.replace(policy=str(policy))
    base = measure(config, policy, 0.0, args.threads, [1], repeats=3)
    runs = [
        measure(config, policy, lat, args.threads, args.batch_size, per_env=not args.no_per_env) for lat in args.latency
    ]
    report(runs, base, args.json)
    if args.json:
        print(json.dumps({"client": client_rows}))
    else:
        report_client(client_rows)
    return runs


if __name__ == "__main__":
    main()
