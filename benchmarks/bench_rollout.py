"""Rollout throughput: our engine vs the Hugging Face ``generate`` baseline (DESIGN §7).

Same model, tokenizer, batch, sampling (temperature 1.0, top-p 1.0) and env for both engines. The
env is scripted: with ``--turns 3`` every turn but the last consults (the observation is an experts
block, tokenized and appended) and the last one ends the episode, so every trajectory has exactly
3 policy turns; ``--turns 1`` is single-turn generation. Turns end at a stop tag / EOS or at
``--max-turn-tokens``. Throughput = policy tokens generated / wall seconds (env time included).

Default model: the throwaway tiny Qwen2 of ``tests/agents_fixtures.py`` (hidden 64, 2 layers) with
a stop-tag bias so turn lengths vary; ``--policy DIR`` loads a saved policy instead.

    python benchmarks/bench_rollout.py --batch 256 --turns 3           # the acceptance case
    python benchmarks/bench_rollout.py --quick --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from agents_fixtures import FakeTextEnv, build_tiny_model, build_tiny_tokenizer  # noqa: E402

from agents.rollout import make_engine  # noqa: E402


def load(policy: str | None, stop_prob: float):
    if policy is None:
        tok = build_tiny_tokenizer()
        return build_tiny_model(tok, stop_prob=stop_prob), tok
    from agents.policy import load_policy  # written in parallel; only needed with --policy

    loaded = load_policy(policy)
    return (loaded.model, loaded.tokenizer) if hasattr(loaded, "model") else loaded


def run_once(engine_name, model, tok, batch, turns, args) -> dict:
    engine = make_engine(
        engine_name, model, tok, max_turn_tokens=args.max_turn_tokens,
        max_total_tokens=args.max_total_tokens, temperature=args.temperature, top_p=args.top_p,
    )
    envs = [FakeTextEnv(mode="scripted", max_turns=turns) for _ in range(batch)]
    t0 = time.perf_counter()
    trajs = engine.rollout(envs, seeds=list(range(batch)), seed=args.seed)
    dt = time.perf_counter() - t0
    policy_tokens = sum(t.num_policy_tokens for t in trajs)
    return {
        "engine": engine_name, "batch": batch, "turns": turns, "seconds": dt,
        "policy_tokens": policy_tokens, "tokens_per_s": policy_tokens / dt,
        "mean_turns": sum(t.num_turns for t in trajs) / batch,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--turns", type=int, nargs="+", default=[1, 3])
    p.add_argument("--engines", nargs="+", default=["ours", "hf"])
    p.add_argument("--max-turn-tokens", type=int, default=64)
    p.add_argument("--max-total-tokens", type=int, default=1024)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--stop-prob", type=float, default=0.03, help="stop-tag bias of the tiny model")
    p.add_argument("--policy", default=None, help="a saved policy dir instead of the tiny model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="batch 64, 1 and 3 turns, 32 tokens/turn")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.max_turn_tokens = [64], 32
    torch.set_num_threads(args.threads)
    model, tok = load(args.policy, args.stop_prob)
    rows: list[dict] = []
    for batch in args.batch:
        for turns in args.turns:
            res = {e: run_once(e, model, tok, batch, turns, args) for e in args.engines}
            rows.extend(res.values())
            if not args.json:
                line = "  ".join(f"{e}: {r['tokens_per_s']:9.0f} tok/s ({r['seconds']:.2f}s)" for e, r in res.items())
                ratio = res["ours"]["tokens_per_s"] / res["hf"]["tokens_per_s"] if {"ours", "hf"} <= res.keys() else float("nan")
                print(f"batch {batch:5d} turns {turns}  {line}  ours/hf {ratio:5.2f}x", flush=True)
    if args.json:
        print(json.dumps({"device": str(next(model.parameters()).device), "threads": args.threads, "rows": rows}))
    return rows


if __name__ == "__main__":
    main()
