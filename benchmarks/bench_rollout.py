"""Rollout throughput: our engine vs the Hugging Face ``generate`` baseline (DESIGN §7).

Same model, tokenizer, batch, sampling (temperature 1.0, top-p 1.0) and env for both engines. The
env is scripted: with ``--turns 3`` every turn but the last consults (the observation is an experts
block, tokenized and appended) and the last one ends the episode, so every trajectory has exactly
3 policy turns; ``--turns 1`` is single-turn generation. Turns end at a stop tag / EOS or at
``--max-turn-tokens``. Throughput = policy tokens generated / wall seconds (env time included).

Default model: the throwaway tiny Qwen2 of ``tests/agents_fixtures.py`` (hidden 64, 2 layers) with
a stop-tag bias so turn lengths vary; ``--policy DIR`` loads a saved policy instead.

    python benchmarks/bench_rollout.py --policy DIR --batch 256 --turns 3 --repeats 3   # the acceptance case
    python benchmarks/bench_rollout.py --quick --json

``--repeats R`` runs the engines alternately R times and reports the median of each. ``--threads``:
torch's intra-op threads; on a machine whose cores are busy with other work, more threads than free
cores makes every small op wait for a descheduled thread (both engines slow down ~10x), so measure
with the threads you actually have free.
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

#: ``--model-size``: (hidden, layers) of a random model built from a config with the fixture tokenizer.
MODEL_SIZES = {"fixture": (64, 2), "100m": (1024, 10)}


def build_model(size: str, tok, stop_prob: float, device: str = "cpu"):
    """A random Qwen2 of ``MODEL_SIZES[size]`` (``"100m"``: ~94M parameters), built on ``device``
    (``"meta"`` builds the shapes only: counting parameters costs nothing)."""
    hidden, layers = MODEL_SIZES[size]
    with torch.device(device):
        return build_tiny_model(tok, stop_prob=stop_prob, hidden=hidden, layers=layers)


def load(policy: str | None, stop_prob: float, size: str = "fixture", device: str = "cpu"):
    if policy is None:
        tok = build_tiny_tokenizer()
        return build_model(size, tok, stop_prob, device), tok
    from agents.policy import load_policy

    return load_policy(policy, device=device)


def run_once(engine_name, model, tok, batch, turns, args) -> dict:
    engine = make_engine(
        engine_name,
        model,
        tok,
        max_turn_tokens=args.max_turn_tokens,
        max_total_tokens=args.max_total_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        **({"cuda_graphs": not args.no_cuda_graphs} if engine_name == "ours" else {}),
    )
    envs = [FakeTextEnv(mode="scripted", max_turns=turns) for _ in range(batch)]
    t0 = time.perf_counter()
    trajs = engine.rollout(envs, seeds=list(range(batch)), seed=args.seed)
    dt = time.perf_counter() - t0
    policy_tokens = sum(t.num_policy_tokens for t in trajs)
    return {
        "engine": engine_name,
        "batch": batch,
        "turns": turns,
        "seconds": dt,
        "policy_tokens": policy_tokens,
        "tokens_per_s": policy_tokens / dt,
        "mean_turns": sum(t.num_turns for t in trajs) / batch,
    }


def median_run(runs: list[dict]) -> dict:
    """The run of median throughput, with every run's tokens/s listed."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    return {**ordered[len(ordered) // 2], "runs_tokens_per_s": [r["tokens_per_s"] for r in runs]}


def build_parser() -> argparse.ArgumentParser:
    """The command line (``scripts/gpu_check.sh`` calls it; its test parses those calls)."""
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
    p.add_argument("--repeats", type=int, default=1, help="alternating runs per engine; medians reported")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument(
        "--model-size",
        default="fixture",
        choices=sorted(MODEL_SIZES),
        help="random model built from a config (ignored with --policy)",
    )
    p.add_argument("--no-cuda-graphs", action="store_true", help="our engine without CUDA graphs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="batch 64, 1 and 3 turns, 32 tokens/turn")
    p.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.batch, args.max_turn_tokens = [64], 32
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # both engines alike
    model, tok = load(args.policy, args.stop_prob, args.model_size, args.device)
    model = model.to(device=args.device, dtype=getattr(torch, args.dtype))
    runners = {e: model for e in args.engines}
    if "vllm" in args.engines:  # vLLM loads the policy from its directory, once
        if not args.policy:
            raise SystemExit("--engines vllm needs --policy DIR (vLLM loads the policy from its directory)")
        import vllm

        from agents.policy import resolve_policy_path

        policy_dir = resolve_policy_path(args.policy)
        runners["vllm"] = vllm.LLM(policy_dir, dtype=args.dtype, seed=args.seed, enforce_eager=args.no_cuda_graphs)
    rows: list[dict] = []
    for batch in args.batch:
        for turns in args.turns:
            runs: dict[str, list[dict]] = {e: [] for e in args.engines}
            for _ in range(args.repeats):  # alternating: drifts of a shared machine hit both engines
                for e in args.engines:
                    runs[e].append(run_once(e, runners[e], tok, batch, turns, args))
            res = {e: median_run(r) for e, r in runs.items()}
            rows.extend(res.values())
            if not args.json:
                line = "  ".join(f"{e}: {r['tokens_per_s']:9.0f} tok/s ({r['seconds']:.2f}s)" for e, r in res.items())
                ratio = (
                    res["ours"]["tokens_per_s"] / res["hf"]["tokens_per_s"]
                    if {"ours", "hf"} <= res.keys()
                    else float("nan")
                )
                print(f"batch {batch:5d} turns {turns}  {line}  ours/hf {ratio:5.2f}x", flush=True)
    if args.json:
        print(
            json.dumps(
                {
                    "device": str(next(model.parameters()).device),
                    "threads": args.threads,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "rows": rows,
                }
            )
        )
    return rows


if __name__ == "__main__":
    main()
