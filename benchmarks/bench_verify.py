"""Benchmark ``eapo_env.verify`` against math-verify 0.9.0: agreement and speed.

Agreement: every pair of ``benchmarks/data/verify_table.jsonl`` (prediction, gold, label) is
checked by both verifiers. Coverage per answer form: the same, on
``benchmarks/data/verify_forms.jsonl`` (our own cases of each MATH-style form of issue 11:
prose final answers, several boxes, lists, labels, chains, intervals, matrices, units, relations,
decimal comma, ``\\pm``, golds in several ``$`` pieces), printed side by side as the share of
each form's pairs where each verifier matches the label. math-verify gets its best chance: the
gold is wrapped in ``$...$`` unless it already has delimiters, and the prediction counts as
correct if *either* ``parse(pred)`` or ``parse("$" + pred + "$")`` verifies (an ``<answer>`` body is unwrapped
first, as the env does). The target: we match the label wherever math-verify does.

Speed: two seeded answer streams, each pair as a policy would write it (reasoning text ending in
``\\boxed{...}``) against a dataset gold: ``integer`` (AIME-style) and ``mixed`` (40 % AIME
integers, 60 % MATH-style fractions, radicals, pi, decimals, percentages, binomials, powers,
intervals; half right, half wrong, right ones often in another form). Each measurement runs in
a fresh process, warms up on pairs drawn with another seed, then times the stream; the median
of the runs is reported. No verdict is cached by either side (ours also clears its parsed-gold
cache before every pair); math-verify runs in the main thread (it uses ``signal.alarm``).
Math-verify is used as documented: ``verify(parse(gold), parse(prediction))``.

Usage:
    python benchmarks/bench_verify.py            # full: 5 runs per measurement
    python benchmarks/bench_verify.py --quick    # CI smoke run (1 run, short streams)
    python benchmarks/bench_verify.py --json     # one JSON line instead of the table

Example (the stream generator is deterministic):
    >>> make_stream("integer", 2, seed=0) == make_stream("integer", 2, seed=0)
    True
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "data", "verify_table.jsonl")
FORMS = os.path.join(HERE, "data", "verify_forms.jsonl")
_FILLER = (
    "We set up the equation and simplify both sides carefully. Substituting the known "
    "values and checking the boundary cases gives a consistent result. "
)


def _completion(ans: str, rng: random.Random) -> str:
    return _FILLER * rng.randint(1, 3) + f"Therefore the final answer is $\\boxed{{{ans}}}$."


def _math_pair(rng: random.Random) -> tuple[str, str]:
    """(gold, equivalent-or-wrong prediction answer) for one MATH-style item."""
    a, b, c = rng.randint(1, 9), rng.randint(2, 9), rng.randint(2, 7)
    right = rng.random() < 0.5
    kind = rng.randrange(9)
    if kind == 0:
        gold = f"\\frac{{{a}}}{{{b}}}"
        pred = f"\\dfrac{{{a * c}}}{{{b * c}}}" if right else f"\\frac{{{a + 1}}}{{{b}}}"
    elif kind == 1:
        gold = f"{a}\\sqrt{{{b}}}"
        pred = f"\\sqrt{{{a * a * b}}}" if right else f"{a}\\sqrt{{{b + 1}}}"
    elif kind == 2:
        gold = f"\\frac{{{a}\\sqrt{{{b}}}}}{{{c}}}"
        pred = f"\\frac{{{a}}}{{{c}}}\\sqrt{{{b}}}" if right else f"\\frac{{{a}\\sqrt{{{b}}}}}{{{c + 1}}}"
    elif kind == 3:
        gold = f"{a}\\pi"
        pred = f"{a} \\pi" if right else f"{a + 1}\\pi"
    elif kind == 4:
        gold = f"\\frac{{{a}\\pi}}{{{b}}}"
        pred = f"\\frac{{{a}}}{{{b}}}\\pi" if right else f"\\frac{{{a}\\pi}}{{{b + 1}}}"
    elif kind == 5:
        gold = f"{a}.{b}{c}"
        pred = f"\\frac{{{a * 100 + b * 10 + c}}}{{100}}" if right else f"{a}.{c}{b}"
    elif kind == 6:
        gold = f"{a * 10}\\%"
        pred = f"{a * 10}" if right else f"{a * 10 + 5}"
    elif kind == 7:
        gold = f"\\binom{{{b + 3}}}{{{2}}}"
        n = b + 3
        pred = f"{n * (n - 1) // 2}" if right else f"{n * (n - 1)}"
    else:
        gold = f"({a}, {a + b})"
        pred = f"({a},{a + b})" if right else f"({a},{a + b + 1})"
    return gold, pred


def make_stream(kind: str, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` (prediction, gold) pairs of the named stream (``integer`` or ``mixed``)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if kind == "integer" or rng.random() < 0.4:
            g = rng.randint(0, 999)
            p = g if rng.random() < 0.5 else rng.randint(0, 999)
            out.append((_completion(str(p), rng), str(g)))
        else:
            gold, pred = _math_pair(rng)
            out.append((_completion(pred, rng), gold))
    return out


# -- math-verify adapters --------------------------------------------------------------------
def _mv_gold(g: str) -> str:
    return g if ("$" in g or "\\boxed" in g) else f"${g}$"


def mv_best(pred: str, gold: str) -> bool:
    """math-verify at its best for the agreement table (see the module doc)."""
    from math_verify import parse, verify

    s, e = pred.find("<answer>"), pred.find("</answer>")
    if 0 <= s < e:
        pred = pred[s + 8 : e]
    g = parse(_mv_gold(gold))
    return any(bool(verify(g, parse(p))) for p in (pred, f"${pred}$"))


# -- measurements (each in its own process) ---------------------------------------------------
def _measure(which: str, stream: str, n: int, min_time: float) -> dict[str, Any]:
    warm = make_stream(stream, 50, seed=12345)
    pairs = make_stream(stream, n, seed=7)
    if which == "ours":
        from eapo_env.verify import verify, worker
        from eapo_env.verify.core import _gold_forms

        def check(p: str, g: str) -> bool:
            _gold_forms.cache_clear()  # the env caches parsed golds; here every pair pays for its own
            return verify(p, g).correct
    else:
        from math_verify import parse
        from math_verify import verify as mv_verify

        def check(p: str, g: str) -> bool:
            return bool(mv_verify(parse(_mv_gold(g)), parse(p)))

    for p, g in warm:
        check(p, g)
    done, correct = 0, 0
    t0 = time.perf_counter()
    while True:  # whole passes until min_time, so fast verifiers are timed long enough
        for p, g in pairs:
            correct += check(p, g)
        done += len(pairs)
        if time.perf_counter() - t0 >= min_time:
            break
    dt = time.perf_counter() - t0
    out = {"pairs_per_s": done / dt, "pairs": done, "seconds": dt, "correct_frac": correct / done}
    if which == "ours":
        out["sympy_worker_calls"] = worker.calls
    return out


def _run_measure(which: str, stream: str, n: int, min_time: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_measure",
        which,
        "--stream",
        stream,
        "--n",
        str(n),
        "--min-time",
        str(min_time),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def agreement(table: str = TABLE) -> dict[str, Any]:
    from eapo_env.verify import verify

    rows = [json.loads(line) for line in open(table, encoding="utf-8") if line.strip()]
    ours_ok = mv_ok = mv_right_we_differ = 0
    disagreements: list[dict[str, Any]] = []
    by_cat: dict[str, list[int]] = {}
    for r in rows:
        ours = verify(r["prediction"], r["gold"])
        try:
            mv = mv_best(r["prediction"], r["gold"])
        except Exception:  # noqa: BLE001 - a math-verify crash counts as "not correct"
            mv = False
        o, m = ours.correct == r["label"], mv == r["label"]
        ours_ok += o
        mv_ok += m
        cat = by_cat.setdefault(r["category"], [0, 0, 0])
        cat[0] += 1
        cat[1] += o
        cat[2] += m
        if m and not o:
            mv_right_we_differ += 1
        if ours.correct != mv or not o:
            disagreements.append(
                {
                    "prediction": r["prediction"],
                    "gold": r["gold"],
                    "label": r["label"],
                    "ours": ours.status,
                    "math_verify": mv,
                }
            )
    return {
        "pairs": len(rows),
        "ours_match_label": ours_ok,
        "mv_match_label": mv_ok,
        "mv_right_we_differ": mv_right_we_differ,
        "by_category": by_cat,
        "disagreements": disagreements,
    }


def _print_forms(forms: dict[str, Any]) -> None:
    print(f"\nCoverage per answer form ({os.path.relpath(FORMS)}): share of pairs matching the label")
    print(f"  {'form':14} {'pairs':>5} {'ours':>6} {'m-v':>6}")
    for cat, (n, o, m) in forms["by_category"].items():
        print(f"  {cat:14} {n:5d} {100 * o / n:5.0f}% {100 * m / n:5.0f}%")
    print(
        f"  {'all':14} {forms['pairs']:5d} {100 * forms['ours_match_label'] / forms['pairs']:5.0f}% "
        f"{100 * forms['mv_match_label'] / forms['pairs']:5.0f}%"
    )
    for d in forms["disagreements"]:
        print(
            f"    {d['prediction'][:40]!r:42} vs {d['gold'][:22]!r:24} label={d['label']!s:5} "
            f"ours={d['ours']:11} m-v={d['math_verify']}"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short CI smoke run")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--runs", type=int, default=None, help="fresh processes per measurement")
    ap.add_argument("--_measure", choices=("ours", "mv"), help=argparse.SUPPRESS)
    ap.add_argument("--stream", default="mixed", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=400, help=argparse.SUPPRESS)
    ap.add_argument("--min-time", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._measure:
        print(json.dumps(_measure(args._measure, args.stream, args.n, args.min_time)))
        return 0
    runs = args.runs or (1 if args.quick else 5)
    n_mv, n_ours = (60, 200) if args.quick else (300, 1000)
    min_time = 0.3 if args.quick else 1.0
    agree = agreement()
    forms = agreement(FORMS)
    speed: dict[str, Any] = {}
    for stream in ("integer", "mixed"):
        ours, mv = [], []
        for _ in range(runs):  # interleaved, so a change in machine load hits both sides
            ours.append(_run_measure("ours", stream, n_ours, min_time))
            mv.append(_run_measure("mv", stream, n_mv, 0.0))
        o = statistics.median(r["pairs_per_s"] for r in ours)
        m = statistics.median(r["pairs_per_s"] for r in mv)
        speed[stream] = {
            "ours_pairs_per_s": o,
            "mv_pairs_per_s": m,
            "ratio": o / m,
            "runs": runs,
            "ours_sympy_worker_calls": max(r["sympy_worker_calls"] for r in ours),
            "ours_correct_frac": ours[0]["correct_frac"],
            "mv_correct_frac": mv[0]["correct_frac"],
        }
    targets = {"integer": 300.0, "mixed": 100.0}
    result = {
        "agreement": agree,
        "forms": forms,
        "speed": speed,
        "pass": agree["mv_right_we_differ"] == 0
        and forms["mv_right_we_differ"] == 0
        and all(speed[s]["ratio"] >= t for s, t in targets.items()),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Agreement on {agree['pairs']} labelled pairs ({os.path.relpath(TABLE)})")
    print(
        f"  ours matches label: {agree['ours_match_label']}/{agree['pairs']}   "
        f"math-verify matches label: {agree['mv_match_label']}/{agree['pairs']}   "
        f"math-verify right but we differ: {agree['mv_right_we_differ']}"
    )
    print(f"  {'category':12} {'pairs':>5} {'ours':>5} {'m-v':>5}")
    for cat, (n, o, m) in agree["by_category"].items():
        print(f"  {cat:12} {n:5d} {o:5d} {m:5d}")
    print("  pairs where we and math-verify disagree, or we miss the label:")
    for d in agree["disagreements"]:
        print(
            f"    {d['prediction']!r:42} vs {d['gold']!r:24} label={d['label']!s:5} ours={d['ours']:11} "
            f"m-v={d['math_verify']}"
        )
    _print_forms(forms)
    print(f"\nSpeed (median of {runs} fresh processes each; pairs/s)")
    print(f"  {'stream':8} {'ours':>12} {'math-verify':>12} {'ratio':>8} {'target':>7}  ours->sympy worker")
    for s, v in speed.items():
        print(
            f"  {s:8} {v['ours_pairs_per_s']:12.0f} {v['mv_pairs_per_s']:12.1f} {v['ratio']:7.0f}x "
            f"{targets[s]:6.0f}x  {v['ours_sympy_worker_calls']}"
        )
    print(f"\nPASS: {result['pass']}")
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
