"""Env throughput: ``EAPO-Math-v0`` vs GEM's math env, same problems, same actions.

GEM (``gem-llm``, AxonRL) ships ``gem.envs.math_env.MathEnv``: a single-turn math env over a
Hugging Face ``datasets.Dataset`` whose ``step`` grades ``\\boxed{}`` answers with its own grader
(math-verify + sympy), by default in a one-process ``multiprocessing.Pool`` (``use_mp=True``; the
timeout mechanism) or in-process with ``signal.alarm`` (``use_mp=False``). GEM lives in its own
venv (``bash scripts/setup_gem_venv.sh`` → ``.cache/gem-venv``; ``EAPO_GEM_VENV`` overrides).

Offline data path: ``MathEnv(dataset=datasets.Dataset.from_list(rows))`` — GEM accepts a ready
``Dataset`` object, so our problems are fed in directly and no hub download happens
(``HF_HUB_OFFLINE=1``/``HF_DATASETS_OFFLINE=1`` are set for the GEM worker to make sure).

What is measured (each side in its own fresh process, same machine, one at a time):

* the problems: the first ``--problems`` of our ``generated`` source (all families, mixed levels);
* the actions: one per episode, the *same string* for both envs: a short reasoning preamble and
  ``<answer>\\boxed{X}</answer>``, where X is the gold answer for even episodes and a wrong one
  for odd episodes (GEM extracts the last ``\\boxed{}``; ours reads the ``<answer>`` body and
  unwraps ``\\boxed{}``), so both envs terminate on the first step with the same verdicts;
* an episode is ``reset`` to problem i + one ``step(action_i)``; GEM's math env is single-turn,
  so env-steps/s = episodes/s. Ours goes through ``gym.make("EAPO-Math-v0", ...)`` (the public
  path, default wrappers included: reward verification) with ``reset(options={"problem_index": i})``;
  GEM's env is reset with no arguments in dataset order (``eval=True``: no shuffling; its
  ``reset(idx=...)`` logs one INFO line per call, which would be unfair to GEM);
* one warm-up pass, then ``--reps`` timed passes; the median is reported. Verdicts are checked to
  agree (a disagreement is printed: it would mean the two envs are not doing the same work).

Usage:
    bash scripts/setup_gem_venv.sh                    # once (~2 min)
    python benchmarks/bench_vs_gem.py                 # table
    python benchmarks/bench_vs_gem.py --quick --json  # one JSON line

If the GEM venv is missing or GEM cannot run offline, the script says so loudly and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PREAMBLE = "We simplify the expression step by step and check the result once more. "


def gem_python() -> Path:
    venv = Path(os.environ.get("EAPO_GEM_VENV") or ROOT / ".cache" / "gem-venv")
    return venv / "bin" / "python"


def wrong_answer(gold: str) -> str:
    try:
        return str(int(gold) + 1)
    except ValueError:
        return "12345" if gold != "12345" else "54321"


def make_workload(n: int) -> list[dict[str, Any]]:
    """``[{id, question, answer, action, expect_correct}]`` for the first ``n`` generated problems."""
    sys.path.insert(0, str(ROOT))
    from eapo_env.problems import load_problems

    source = load_problems("generated")
    rows = []
    for i in range(min(n, len(source))):
        p = source[i]
        right = i % 2 == 0
        body = p.answer if right else wrong_answer(p.answer)
        rows.append(
            {
                "id": p.id,
                "question": p.question,
                "answer": p.answer,
                "action": f"{PREAMBLE}<answer>\\boxed{{{body}}}</answer>",
                "expect_correct": right,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------
# Workers: each runs in its own process (ours: this venv; GEM: the GEM venv) and prints JSON.


def _time_passes(run_pass, reps: int) -> tuple[list[float], list[bool]]:
    run_pass()  # warm-up: imports, lazy caches, worker processes
    times, verdicts = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        verdicts = run_pass()
        times.append(time.perf_counter() - t0)
    return times, verdicts


def worker_ours(rows: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import gymnasium as gym

    import eapo_env  # noqa: F401  (registers the ids)
    from eapo_env.experts import SyncExpert
    from eapo_env.problems import Problem

    class NeverCalled(SyncExpert):  # the workload only answers; a consult would be a bug here
        def consult_sync(self, requests):  # type: ignore[override]
            raise AssertionError("bench_vs_gem: unexpected expert call")

    problems = [Problem(id=r["id"], question=r["question"], answer=r["answer"]) for r in rows]
    env = gym.make("EAPO-Math-v0", problems=problems, expert=NeverCalled())
    actions = [r["action"] for r in rows]

    def run_pass() -> list[bool]:
        out = []
        for i, action in enumerate(actions):
            env.reset(options={"problem_index": i})
            _, reward, terminated, truncated, _ = env.step(action)
            if not terminated:
                raise RuntimeError(f"ours: episode {i} did not terminate on the answer")
            out.append(reward == 1.0)
        return out

    times, verdicts = _time_passes(run_pass, reps)
    env.close()
    return {"times_s": times, "verdicts": verdicts}


def worker_gem(rows: list[dict[str, Any]], reps: int, use_mp: bool) -> dict[str, Any]:
    import logging

    from datasets import Dataset
    from gem.envs.math_env import MathEnv

    logging.disable(logging.INFO)  # gem/__init__ sets basicConfig(INFO); keep both sides quiet
    dataset = Dataset.from_list([{"problem": r["question"], "answer": r["answer"]} for r in rows])
    env = MathEnv(dataset=dataset, use_mp=use_mp, eval=True)  # eval: dataset order, no shuffle
    actions = [r["action"] for r in rows]
    golds = [r["answer"] for r in rows]

    def run_pass() -> list[bool]:
        env.idx = 0  # restart the dataset cursor (GEM reshuffles when it runs off the end)
        out = []
        for i, action in enumerate(actions):
            env.reset()
            if env.answer != golds[i]:
                raise RuntimeError(f"GEM served problem {env.answer!r} at position {i}, expected {golds[i]!r}")
            _, reward, terminated, _, _ = env.step(action)
            if not terminated:
                raise RuntimeError(f"GEM: episode {i} did not terminate")
            out.append(reward == 1.0)
        return out

    times, verdicts = _time_passes(run_pass, reps)
    if use_mp:  # GEM's close() assumes a pool (AttributeError with use_mp=False, gem-llm 0.1.0)
        env.close()
        env.mp_pool.join()
    return {"times_s": times, "verdicts": verdicts}


# ------------------------------------------------------------------------------------------
# Driver


class GemUnavailable(RuntimeError):
    pass


def run_worker(python: Path, side: str, data: Path, reps: int, extra: list[str], timeout_s: float) -> dict[str, Any]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONHASHSEED": "0",
    }
    if side != "ours":
        env.pop("PYTHONPATH", None)
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--_worker",
        side,
        "--_data",
        str(data),
        "--reps",
        str(reps),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, cwd=ROOT)
    if proc.returncode != 0:
        msg = f"{side} worker failed (rc={proc.returncode}): {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}"
        raise (GemUnavailable if side.startswith("gem") else RuntimeError)(msg)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def loud(msg: str) -> None:
    bar = "!" * 78
    print(f"{bar}\n{msg}\n{bar}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=512, help="episodes per pass (default 512)")
    ap.add_argument("--reps", type=int, default=5, help="timed passes per side (median reported)")
    ap.add_argument("--quick", action="store_true", help="128 problems, 2 reps")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    ap.add_argument("--no-gem-mp", action="store_true", help="skip GEM's default use_mp=True mode")
    ap.add_argument("--_worker", choices=["ours", "gem", "gem-mp"], help=argparse.SUPPRESS)
    ap.add_argument("--_data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        rows = json.loads(Path(args._data).read_text())
        if args._worker == "ours":
            res = worker_ours(rows, args.reps)
        else:
            res = worker_gem(rows, args.reps, use_mp=args._worker == "gem-mp")
        print(json.dumps(res))
        return 0

    if args.quick:
        args.problems, args.reps = 128, 2
    py_gem = gem_python()
    if not py_gem.is_file():
        loud(
            f"GEM IS NOT INSTALLED: no {py_gem}.\nRun `bash scripts/setup_gem_venv.sh` "
            "(or point EAPO_GEM_VENV at a venv with gem-llm, datasets, pylatexenc), then rerun."
        )
        return 2

    rows = make_workload(args.problems)
    expect = [r["expect_correct"] for r in rows]
    sides = [
        ("ours", Path(sys.executable), "EAPO-Math-v0 (gym.make, in-process verify)"),
        ("gem", py_gem, "GEM MathEnv use_mp=False (signal timeout)"),
    ]
    if not args.no_gem_mp:
        sides.append(("gem-mp", py_gem, "GEM MathEnv use_mp=True (default; 1-proc pool)"))
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "workload.json"
        data.write_text(json.dumps(rows))
        for side, py, _ in sides:
            try:
                res = run_worker(py, side, data, args.reps, [], timeout_s=1800)
            except GemUnavailable as exc:
                loud("GEM COULD NOT RUN OFFLINE ON OUR PROBLEMS:\n" + str(exc))
                return 2
            med = statistics.median(res["times_s"])
            agree = sum(a == b for a, b in zip(res["verdicts"], expect))
            results[side] = {
                "median_s": med,
                "times_s": res["times_s"],
                "steps_per_s": len(rows) / med,
                "us_per_step": 1e6 * med / len(rows),
                "verdict_agreement": agree / len(rows),
            }

    ours = results["ours"]["steps_per_s"]
    for res in results.values():
        res["ratio_ours_over_this"] = ours / res["steps_per_s"]
    summary = {
        "benchmark": "env_vs_gem",
        "episodes_per_pass": len(rows),
        "reps": args.reps,
        "results": results,
        "speedup_vs_gem": results["ours"]["steps_per_s"] / results["gem"]["steps_per_s"],
        "speedup_vs_gem_default": (
            results["ours"]["steps_per_s"] / results["gem-mp"]["steps_per_s"] if "gem-mp" in results else None
        ),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"Env throughput, {len(rows)} single-step episodes (reset + answer step) per pass, "
            f"median of {args.reps} passes; same problems, same action strings"
        )
        print(f"{'env':<50} {'steps/s':>10} {'us/step':>10} {'ours x':>8} {'verdicts ok':>12}")
        for side, _, label in sides:
            r = results[side]
            print(
                f"{label:<50} {r['steps_per_s']:>10.0f} {r['us_per_step']:>10.1f} "
                f"{r['ratio_ours_over_this']:>8.2f} {100 * r['verdict_agreement']:>11.1f}%"
            )
        for side, r in results.items():
            if r["verdict_agreement"] < 1.0:
                print(
                    f"warning: {side} verdicts disagree with the intended labels on "
                    f"{round((1 - r['verdict_agreement']) * len(rows))} episodes",
                    file=sys.stderr,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
