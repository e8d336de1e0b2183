"""The ``eapo`` command line (DESIGN §10). Every command prints a human summary; ``--json`` prints
exactly ONE JSON line on stdout instead (logs and progress bars go to stderr).

::

    eapo quickstart [--out DIR]
    eapo build-policy --out DIR [--size tiny|small] [--sft-steps N]
    eapo train --config FILE [--out DIR] [--resume] [--set KEY=VALUE ...]
    torchrun --nproc-per-node N -m agents.cli train --config FILE ...   (one learner rank per process)
    eapo eval --policy DIR --problems SPEC [--env-id ID] [-k 32] [--out DIR] [--expert NAME [--compare-alone]]
    eapo bench rollout [--policy DIR] [--engine ours|hf|vllm] [--batch N] [--turns T]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.eval_config import EvalConfig  # torch-free: the CLI's import stays light


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet_hf() -> None:
    """No Hugging Face download/loading progress bars in command output."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides; VALUE is read as a TOML value, else kept as a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


# ------------------------------------------------------------------------------ commands


def cmd_quickstart(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _quiet_hf()
    from agents.quickstart import run_quickstart

    summary = run_quickstart(args.out, log=args.log, config_path=args.config)
    return summary, summary.pop("text", "")


def cmd_build_policy(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _quiet_hf()
    from agents.policy import build_policy, read_policy_info

    t0 = time.perf_counter()
    path = build_policy(
        args.out,
        args.size,
        args.sft_steps,
        seed=args.seed,
        problems=args.problems,
        threads=args.threads or None,
        verbose=not args.json,
        lr=args.lr,
        recipe=args.recipe,
        init_policy=args.init,
        batch_size=args.batch_size,
    )
    info = read_policy_info(path) or {}
    comp = info.get("compliance", {}).get("eval_prompt", {})
    result = {
        "command": "build-policy",
        "policy_dir": str(path),
        "size": args.size,
        "parameters": info.get("parameters"),
        "sft": info.get("sft"),
        "compliance": info.get("compliance"),
        "seconds": time.perf_counter() - t0,
    }
    text = (
        f"policy ({args.size}, {info.get('parameters', 0):,} params) written to {path} in {result['seconds']:.1f}s; "
        f"held-out first turns well-formed {comp.get('well_formed', float('nan')):.2f} (evaluation prompt)"
    )
    return result, text


def cmd_train(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _quiet_hf()
    from agents.baselines import run
    from agents.config import load_config

    overrides = _parse_set(args.set or [])
    if args.no_progress:
        overrides["progress_bar"] = False
    try:
        config = load_config(args.config, **overrides)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"eapo train: {exc}") from None
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    from agents import distributed  # torchrun: one rank per process, joined here (agents.distributed)

    if distributed.launched_world_size() > 1 and config.method not in ("eapo", "self_explore"):
        raise SystemExit(f"eapo train: torchrun runs the RL learner (eapo, self_explore), not {config.method!r}")
    try:
        with distributed.session(config.device, config.dist_timeout_s):
            result = run(config, out, resume=args.resume, log=args.log)
    except distributed.LaunchError as exc:
        raise SystemExit(f"eapo train: {exc}") from None
    result = {"command": "train", "out_dir": str(out), **result}
    lines = [f"{config.method}: run in {out} ({result.get('seconds', 0):.1f}s)"]
    last = result.get("last") or {}
    if last:
        lines.append(
            f"  steps {result.get('start_step', 0)}..{result['steps']}: last step accuracy {last.get('accuracy', 0):.2f}, "
            f"consult rate {last.get('consult_rate', 0):.2f}, expert call rate {last.get('expert_call_rate', 0):.2f}, "
            f"p(t) {last.get('p_t', float('nan')):.2f}"
        )
    if "eval" in result:
        ev = result["eval"]
        lines.append(
            f"  held-out Pass@{ev['k']} {ev['score_mean']:.3f} [95% CI {ev['ci95'][0]:.3f}-{ev['ci95'][1]:.3f}]"
        )
    lines.append(f"  policy: {result.get('policy_dir')}")
    return result, "\n".join(lines)


def _eval_pass_ks(args: argparse.Namespace) -> tuple[int, ...]:
    """``--pass-k`` checked against ``-k`` (a value above it exits with a message, never silently
    dropped); without ``--pass-k``: 1, the powers of 2 below ``k``, and ``k``."""
    from agents.evaluation import check_pass_ks, default_pass_ks

    try:
        return default_pass_ks(args.k) if args.pass_k is None else check_pass_ks(args.pass_k, args.k)
    except ValueError as exc:
        raise SystemExit(f"eapo eval: {exc} (-k {args.k}, --pass-k {' '.join(map(str, args.pass_k or []))})") from None


def _eval_config(args: argparse.Namespace) -> EvalConfig:
    """The one :class:`~agents.eval_config.EvalConfig` of ``eapo eval``, with and without ``--expert``."""
    return EvalConfig(
        num_problems=args.num_problems,
        problems_seed=args.problems_seed,
        k=args.k,
        pass_ks=_eval_pass_ks(args),
        max_turns=args.max_turns,
        engine=args.engine,
        temperature=args.temperature,
        top_p=args.top_p,
        max_turn_tokens=args.max_turn_tokens,
        max_total_tokens=args.max_total_tokens,
        seed=args.seed,
        device=args.device,
        env_id=args.env_id,
    )


def cmd_eval_workflow(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """``eapo eval --expert NAME``: the expert-assisted workflow (the reply in the prompt), with
    ``--compare-alone`` beside the policy alone on the same problems (the paper's precondition)."""
    from agents.baselines import compare_workflow
    from agents.evaluation import heldout_problems
    from agents.policy import load_policy

    model, tokenizer = load_policy(args.policy, device=args.device)
    problems = args.problems  # a task's id reads the spec with that task's loader
    if args.env_id:
        problems = heldout_problems(args.problems, args.num_problems, args.problems_seed, args.env_id)
    cmp = compare_workflow(
        model,
        tokenizer,
        problems,
        args.expert,
        _parse_set(args.expert_arg or []),
        _eval_config(args).replace(device=None),  # the model is already on args.device
        replies=args.expert_replies,
        compare_alone=args.compare_alone,
    )
    if args.out:
        cmp.with_expert.write(Path(args.out) / "with_expert")
        if cmp.alone is not None:
            cmp.alone.write(Path(args.out) / "alone")
    result = {"command": "eval", "policy": str(args.policy), "problems": args.problems, **cmp.summary()}
    return result, cmp.describe()


def cmd_eval(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    _quiet_hf()
    import torch

    from agents.evaluation import evaluate_policy_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.expert:
        return cmd_eval_workflow(args)
    res = evaluate_policy_dir(args.policy, args.problems, _eval_config(args), out_dir=args.out)
    result = {
        "command": "eval",
        "policy": str(args.policy),
        "problems": args.problems,
        "out_dir": str(args.out) if args.out else None,
        **res.summary(),
    }
    return result, res.describe()


def cmd_bench(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    if args.what != "rollout":
        raise SystemExit(f"unknown benchmark {args.what!r}; available: rollout")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rollout.py"
    if not script.is_file():
        raise SystemExit(
            f"eapo bench rollout: {script} not found (the benchmarks/ folder ships with the source "
            "checkout, not the installed package); run it from a clone of the repository"
        )
    rest = list(args.rest)
    # DESIGN §10 spells the engine flag --engine; the script takes --engines (one or more).
    rest = ["--engines" if a == "--engine" else a for a in rest]
    if args.json and "--json" not in rest:
        rest.append("--json")
    if "vllm" in rest and importlib.util.find_spec("vllm") is None:  # before any model is built
        raise SystemExit(
            "eapo bench rollout --engines vllm: no vLLM in this Python; run the command with a Python that has "
            "it, e.g. .cache/vllm-venv/bin/python -m agents.cli bench rollout ... (scripts/setup_vllm_venv.sh)"
        )
    proc = subprocess.run([sys.executable, str(script), *rest])
    raise SystemExit(proc.returncode)


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eapo", description="Expert-Assisted Policy Optimization: build, train, evaluate.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--json", action="store_true", help="print one JSON line on stdout (logs go to stderr)")

    q = sub.add_parser("quickstart", help="build policy -> SFT -> eval -> EAPO RL -> eval -> plots (CPU, minutes)")
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--config", default=None, help="TOML overriding the packaged quickstart config")
    common(q)
    q.set_defaults(func=cmd_quickstart)

    b = sub.add_parser("build-policy", help="tokenizer + model built locally, then SFT warm start")
    b.add_argument("--out", required=True)
    b.add_argument("--size", default="tiny", choices=["tiny", "small"])
    b.add_argument("--sft-steps", type=int, default=None)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--problems", default="generated:arithmetic:1-2")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--recipe", default="base", help="trace recipe (agents.policy.build.RECIPES)")
    b.add_argument("--init", default=None, help="continue SFT from this policy (directory or shipped name)")
    b.add_argument("--lr", type=float, default=None, help="SFT learning rate (default per size)")
    b.add_argument("--batch-size", type=int, default=32, help="SFT batch size (traces per step)")
    common(b)
    b.set_defaults(func=cmd_build_policy)

    t = sub.add_parser("train", help="EAPO / self-exploratory RL / baselines from a TOML config")
    t.add_argument(
        "--config", required=True, help="a TOML file, or a packaged name (quickstart, eapo, self_explore, ...)"
    )
    t.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    t.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config keys (TOML values)")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    common(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="held-out Pass@k (mean score and variance), consultation off")
    e.add_argument("--policy", required=True)
    e.add_argument("--problems", required=True, help="problem spec, e.g. generated:arithmetic:1 or a .jsonl path")
    e.add_argument("-k", type=int, default=32, help="samples per problem")
    e.add_argument("--num-problems", type=int, default=64)
    e.add_argument("--problems-seed", type=int, default=1, help="seed of generated problems (training uses 0)")
    e.add_argument(
        "--env-id",
        default="",
        help="evaluation env id (default EAPO-Math-Eval-v0; a training id runs its -Eval- twin); a task's id, "
        "e.g. EAPO-QA-Eval-v0 or EAPO-Choice-Eval-v0, evaluates that task and reads --problems with its loaders "
        "(generated[@SEED], hotpotqa:PATH, simpleqa:PATH, mmlu:PATH, gpqa:PATH)",
    )
    e.add_argument(
        "--pass-k",
        type=int,
        nargs="+",
        default=None,
        help="k values of the unbiased pass@k, each <= -k (default: 1, the powers of 2 below -k, and -k)",
    )
    e.add_argument("--max-turns", type=int, default=4)
    e.add_argument("--engine", default="ours", help="rollout engine, one of agents.rollout.ENGINES (ours, hf, vllm)")
    e.add_argument("--temperature", type=float, default=1.0)
    e.add_argument("--top-p", type=float, default=1.0)
    e.add_argument("--max-turn-tokens", type=int, default=64)
    e.add_argument("--max-total-tokens", type=int, default=512)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--out", default=None, help="write eval.json and eval_problems.csv here")
    e.add_argument("--expert", default=None, help="expert-assisted workflow: this expert's reply in the prompt")
    e.add_argument("--expert-arg", nargs="*", metavar="KEY=VALUE", help="expert keyword arguments (TOML values)")
    e.add_argument("--expert-replies", type=int, default=1, help="replies in the prompt's experts block")
    e.add_argument("--compare-alone", action="store_true", help="with --expert: also the policy alone, side by side")
    common(e)
    e.set_defaults(func=cmd_eval)

    be = sub.add_parser("bench", help="benchmarks (delegates to benchmarks/*.py)")
    be.add_argument("what", choices=["rollout"])
    be.add_argument("rest", nargs=argparse.REMAINDER, help="arguments of benchmarks/bench_rollout.py")
    common(be)
    be.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "bench":
        args.rest = list(args.rest) + unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.log = _stderr_log if args.json else (lambda m: print(m, flush=True))
    if os.environ.get("RANK", "0") != "0":  # a torchrun rank other than 0: it runs, rank 0 reports
        args.func(args)
        return 0
    if args.json:
        with contextlib.redirect_stdout(sys.stderr):  # anything printed by libraries goes to stderr
            result, text = args.func(args)
        print(
            json.dumps(result, default=str, allow_nan=False)
            if _finite(result)
            else json.dumps(_nan_to_none(result), default=str),
            flush=True,
        )
    else:
        result, text = args.func(args)
        print(text, flush=True)
    return 0


def _finite(obj: Any) -> bool:
    try:
        json.dumps(obj, default=str, allow_nan=False)
        return True
    except ValueError:
        return False


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj or obj in (float("inf"), float("-inf")):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


if __name__ == "__main__":
    sys.exit(main())
