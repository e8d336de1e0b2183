"""Agreement of ``eapo_env.verify`` with the expected outcomes of Math-Verify's own test suite.

Math-Verify (https://github.com/huggingface/Math-Verify) ships pytest files whose parametrised
cases say "this prediction's final answer is (1) or is not (0) equal to this gold". This script
reads those files **at run time** from a checkout (nothing of the suite is copied into this
repository), pulls out the equality cases and checks each with :func:`eapo_env.verify.verify`.

Which cases count: every ``@pytest.mark.parametrize`` row whose columns include ``gold``,
``pred`` and ``expected`` (or ``result``). The rows are read with ``ast.literal_eval`` (the
suite's code is never run); the one row written as ``f"{math.sqrt(N):.Kf}"`` is formatted by a
small dedicated reader. Option columns map onto :class:`eapo_env.verify.VerifyOptions`:
``precision`` -> ``float_rounding``, ``allow_set_relation_comp`` -> ``relation_matches_set_gold``;
a row that needs ``strict=False`` (variable names ignored) is skipped, as we always compare
strictly. A false positive is a row expected 0 where we say ``correct``. On Math-Verify's
``main`` (5d148cf) that gives 268 rows: 269 rows of such tables, less the ``strict=False`` one.

Measured (this repository, see the report of issue 11): before the issue, 162/268 with 3 false
positives; after, 265/268 with 0. The three left: a gold ``\\boxed{`` never closed with a
prediction ``W(x)=1orW(x)=-1`` (separator glued to words), sums ``\\sum_{k=0}^{n-1}`` (not in
the grammar), and ``1 + 1/e`` expected equal to ``1 - 1/e`` (we say ``incorrect``: they differ).

Usage:
    python benchmarks/verify_suite_agreement.py --suite /path/to/Math-Verify/tests
    python benchmarks/verify_suite_agreement.py --suite /path/to/Math-Verify/.git --show

Example (a forms label of one pair):
    >>> form_of("$\\\\begin{pmatrix}1\\\\end{pmatrix}$", "1")
    'matrix'
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from eapo_env.verify import VerifyOptions, verify

_OUTCOME_COLUMNS = ("expected", "result")


@dataclass(frozen=True)
class SuiteCase:
    """One equality case of the suite: texts, the expected outcome and the options it runs under."""

    where: str
    gold: str
    pred: str
    expected: bool
    options: VerifyOptions


def _suite_files(suite: str) -> Iterator[tuple[str, str]]:
    """(name, source) of each ``test_*.py`` of a tests folder, or of ``tests/`` in a git dir."""
    if os.path.isdir(os.path.join(suite, "objects")) or suite.endswith(".git"):
        names = subprocess.run(
            ["git", "--git-dir", suite, "ls-tree", "-r", "--name-only", "HEAD", "tests/"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for name in sorted(names):
            if os.path.basename(name).startswith("test_") and name.endswith(".py"):
                yield (
                    name,
                    subprocess.run(
                        ["git", "--git-dir", suite, "show", f"HEAD:{name}"], capture_output=True, text=True, check=True
                    ).stdout,
                )
        return
    for name in sorted(os.listdir(suite)):
        if name.startswith("test_") and name.endswith(".py"):
            with open(os.path.join(suite, name), encoding="utf-8") as fh:
                yield name, fh.read()


def _literal(node: ast.expr) -> object:
    """``ast.literal_eval``, plus f-strings of the form ``f"{math.sqrt(N):.Kf}"`` (no code runs)."""
    if isinstance(node, ast.JoinedStr) and len(node.values) == 1:
        part = node.values[0]
        if (
            isinstance(part, ast.FormattedValue)
            and isinstance(part.value, ast.Call)
            and ast.unparse(part.value.func) == "math.sqrt"
            and part.format_spec is not None
        ):
            arg = ast.literal_eval(part.value.args[0])
            spec = "".join(str(ast.literal_eval(v)) for v in part.format_spec.values)  # type: ignore[attr-defined]
            return format(math.sqrt(arg), spec)
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(_literal(v.value)) if isinstance(v, ast.FormattedValue) else str(ast.literal_eval(v))
            for v in node.values
        )
    return ast.literal_eval(node)


def cases(suite: str) -> list[SuiteCase]:
    """The suite's equality cases (see the module doc for which rows count)."""
    out: list[SuiteCase] = []
    for fname, src in _suite_files(suite):
        for fn in ast.walk(ast.parse(src)):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for deco in fn.decorator_list:
                if not (isinstance(deco, ast.Call) and ast.unparse(deco.func).endswith("parametrize")):
                    continue
                cols = [c.strip() for c in str(ast.literal_eval(deco.args[0])).split(",")]
                outcome = next((c for c in _OUTCOME_COLUMNS if c in cols), None)
                if "gold" not in cols or "pred" not in cols or outcome is None:
                    continue
                rows = deco.args[1]
                assert isinstance(rows, (ast.List, ast.Tuple))
                for k, row in enumerate(rows.elts):
                    vals = dict(zip(cols, [_literal(e) for e in row.elts]))  # type: ignore[attr-defined]
                    if vals.get("strict", True) is False:
                        continue
                    opts = VerifyOptions(
                        float_rounding=int(vals.get("precision", 6)),  # type: ignore[arg-type]
                        relation_matches_set_gold=bool(vals.get("allow_set_relation_comp", False)),
                    )
                    out.append(
                        SuiteCase(
                            f"{fname}::{fn.name}[{k}]", str(vals["gold"]), str(vals["pred"]), bool(vals[outcome]), opts
                        )
                    )
    return out


_FORMS = (  # first match wins, tested on the two extracted answers; a label for the report only
    ("matrix", re.compile(r"\\begin\{[pbv]?matrix\}|\\begin\{array\}")),
    ("interval / set", re.compile(r"\\cup|\\in\b|\\\{|\\emptyset|^[\[(].*,.*[\])]$|\\pm")),
    ("relation / chain", re.compile(r"\\[lg]eq?\b|\\neq?\b|[<>]|\\approx|!=|=")),
    ("list / tuple", re.compile(r",|;|\band\b|\bor\b|:")),
    ("percent / units", re.compile(r"%|\\text|\\mbox|\\mathrm|percent|pct|\\circ|\b(?:cm|miles|meters)\b")),
)


def form_of(gold: str, pred: str) -> str:
    """The answer form a case exercises (a coarse label for the per-form table).

    Extraction forms first (several boxes, prose without a box), then the form of the two
    extracted answers.
    """
    from eapo_env.verify.final import find_answer

    boxes = re.compile(r"\\boxed")
    if _FORMS[0][1].search(gold):
        return "matrix"
    if len(boxes.findall(gold)) >= 2 and len(set(re.findall(r"\\boxed\{([^{}]*)\}", gold))) >= 2:
        return "several boxed (gold)"
    if len(set(re.findall(r"\\boxed\{([^{}]*)\}", pred))) >= 2:
        return "several boxed (pred.)"
    if not boxes.search(pred) and len(pred) > 60:
        return "prose final answer"
    opts = VerifyOptions()
    answers = [find_answer(t, opts) for t in (gold, pred)]
    text = " ".join(t if a is None else a for t, a in zip((gold, pred), answers))
    for name, rx in _FORMS:
        if rx.search(text):
            return name
    return "number / expression"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", required=True, help="Math-Verify checkout's tests/ folder or its git dir")
    ap.add_argument("--show", action="store_true", help="list every disagreement")
    ap.add_argument("--timeout", type=float, default=2.0, help="timeout_s per verify call")
    args = ap.parse_args(argv)
    rows = cases(args.suite)
    per_form: dict[str, list[int]] = {}
    misses: list[tuple[SuiteCase, str]] = []
    agree = false_pos = 0
    for c in rows:
        got = verify(c.pred, c.gold, timeout_s=args.timeout, options=c.options)
        ok = got.correct == c.expected
        agree += ok
        false_pos += got.correct and not c.expected
        cell = per_form.setdefault(form_of(c.gold, c.pred), [0, 0])
        cell[0] += 1
        cell[1] += ok
        if not ok:
            misses.append((c, got.status))
    print(f"{'form':24} {'cases':>5} {'agree':>5}")
    for form, (n, ok) in sorted(per_form.items(), key=lambda kv: -kv[1][0]):
        print(f"{form:24} {n:5d} {ok:5d}")
    print(
        f"\nagreement: {agree}/{len(rows)} ({100 * agree / max(len(rows), 1):.1f} %)   "
        f"false positives (we say correct, the suite expects a difference): {false_pos}"
    )
    if args.show:
        for c, status in misses:
            print(
                f"\n[{c.where}] expected={int(c.expected)} ours={status}\n  gold: {c.gold[-160:]!r}\n"
                f"  pred: {c.pred[-200:]!r}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
