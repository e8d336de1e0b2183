"""The paper's comparisons (Tables 1, 2, 3, 9; Appendix E) at toy scale, as one reproducible report.

Every row is a packaged config run through :func:`agents.baselines.run` (the path of ``eapo train``)
from one starting policy, at one update budget, over seeds; each trained policy is evaluated on the
same held-out problems with consultation off. RL rows are also evaluated part-way (``segments``), by
resuming the run, for the held-out accuracy curve. Writes ``<out>/report.md`` with PNG plots, the
per-row results (``<out>/rows.json``) and every run under ``<out>/runs/<row>/seed<i>/``. A rerun with
the same ``--out`` skips the (row, seed) pairs already finished, so the full report can be built in
several sittings.

Usage::

    python benchmarks/learning.py --quick                  # <= 15 min on 2 cores: Table 1 core rows, 1 seed
    python benchmarks/learning.py --out benchmarks/results/full   # every row, 3 seeds, expert-reader base (~4 h of runs; --rows streams)
    python benchmarks/learning.py --profile tiny --out benchmarks/results/tiny   # the same rows on the tiny base
    python benchmarks/learning.py --smoke --policy DIR     # seconds: the plumbing only (tests)
    python benchmarks/learning.py --profile mechanism --quick   # issue 20's mechanism rows, 1 seed
    python benchmarks/learning.py --profile mechanism --out benchmarks/results/mechanism   # 3 seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helpers, when run as a script

from learning_rows import PROFILES, Profile, Row, row_config, row_table, rows_for  # noqa: E402

#: Training and held-out problems (see the report's "design" section for why this level).
DEFAULT_PROBLEMS = "generated:arithmetic:1-2"
ROW_FILE = "bench_row.json"
META_FILE = "meta.json"


def _quiet_log(path: Path) -> Callable[[str], None]:
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        with path.open("a", encoding="utf-8") as f:
            f.write(msg.rstrip("\n") + "\n")

    return log


def segment_ends(steps: int, segments: int) -> list[int]:
    """Step counts at which an RL run is evaluated: ``segments`` evenly spaced ends, the last = ``steps``.

    >>> segment_ends(120, 2), segment_ends(2, 3)
    ([60, 120], [1, 2])
    """
    ends = sorted({max(1, round(steps * (i + 1) / segments)) for i in range(segments)})
    return ends


def run_row(row: Row, profile: Profile, seed: int, policy: str, problems: str, out: Path) -> dict[str, Any]:
    """Run one (row, seed) into ``<out>/runs/<row>/seed<seed>`` (or read it back when already done)."""
    from agents.baselines import run

    run_dir = out / "runs" / row.key / f"seed{seed}"
    done_file = run_dir / ROW_FILE
    config = row_config(row, profile, seed, policy, problems, problems)
    if done_file.exists():
        done = json.loads(done_file.read_text())
        if done.get("config") == json.loads(json.dumps(config.to_dict(), default=str)):
            return done  # finished with this very config: reuse it
    if run_dir.exists():
        shutil.rmtree(run_dir)  # interrupted, or run with another config (policy, budget, code): start over
    log = _quiet_log(run_dir / "log.txt")
    t0 = time.perf_counter()
    curve: list[tuple[int, float]] = []
    if config.method in ("eapo", "self_explore"):
        for i, end in enumerate(segment_ends(profile.steps, profile.segments)):
            res = run(
                row_config(row, profile, seed, policy, problems, problems, segment_steps=end),
                run_dir,
                resume=i > 0,
                log=log,
            )
            os.replace(run_dir / "eval", run_dir / f"eval@{end}")
            curve.append((end, float(res["eval"]["score_mean"])))
        eval_dir = run_dir / f"eval@{profile.steps}"
    else:
        res = run(config, run_dir, log=log)
        eval_dir = run_dir / "eval"
    record = {
        "row": row.key,
        "seed": seed,
        "method": config.method,
        "seconds": time.perf_counter() - t0,
        "eval": res["eval"],
        "eval_csv": str((eval_dir / "eval_problems.csv").relative_to(out)),
        "metrics": str((run_dir / "metrics.jsonl").relative_to(out)) if (run_dir / "metrics.jsonl").exists() else None,
        "curve": curve,
        "config": config.to_dict(),
        "traces": res.get("traces"),
    }
    done_file.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return record


def starting_policy(arg: str | None, out: Path, profile: Profile) -> str:
    """``--policy``, else the shipped base policy, else one built into ``<out>/policy``."""
    if arg:
        return str(Path(arg).resolve())
    if profile.policy:  # a profile's own base (the mechanism rows: the expert-reader base)
        path = Path(__file__).resolve().parents[1] / profile.policy
        if not (path / "config.json").exists():
            raise SystemExit(f"profile {profile.name}: no policy at {path}; build it (see its eapo_policy.json)")
        return str(path)
    import agents.policy as policy_pkg

    shipped = getattr(policy_pkg, "SHIPPED_POLICIES", {}).get("tiny-base")
    if shipped is not None and (Path(shipped) / "config.json").exists():
        return str(shipped)
    from agents.policy import build_policy, read_policy_info

    target = out / "policy"
    if read_policy_info(target) is None:
        print(f"no shipped base policy found: building one into {target}", flush=True)
        build_policy(target, "tiny", 20 if profile.name == "smoke" else None, seed=0, threads=2, verbose=False)
    return str(target)


def git_commit(out: Path | None = None) -> str:
    """The short HEAD commit, flagged when tracked files other than ``out`` (the report's own
    outputs, rewritten by every run) differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":/"]
            + ([f":(exclude){out.resolve()}"] if out is not None else []),
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return head + (" (working tree had uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="<= 15 min on 2 cores: fewer rows, steps, one seed")
    size.add_argument("--smoke", action="store_true", help="seconds: plumbing only (tests)")
    ap.add_argument(
        "--profile",
        default=None,
        choices=["mechanism", "tiny"],
        help="mechanism: issue 20's rows; tiny: the paper rows on the tiny base (level 1-2, 60 steps)",
    )
    ap.add_argument("--seeds", type=int, default=None, help="training seeds per row (default: the profile's)")
    ap.add_argument("--steps", type=int, default=None, help="RL steps per row (default: the profile's)")
    ap.add_argument("--rows", default="", help="comma list of row keys (default: the profile's rows)")
    ap.add_argument("--out", default=None, help="output directory (default: benchmarks/results/<profile>)")
    ap.add_argument("--policy", default=None, help="starting policy directory (default: the shipped base)")
    ap.add_argument(
        "--problems", default=None, help="training and held-out problem spec (default: the profile's, else level 1-2)"
    )
    ap.add_argument("--report-only", action="store_true", help="rewrite report.md and plots from --out's rows")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.profile == "mechanism":  # --quick: one seed, fewer steps; --smoke is the paper rows' plumbing
        name = "mechanism_quick" if args.quick else "mechanism"
    elif args.profile == "tiny":
        if args.quick or args.smoke:
            raise SystemExit("--profile tiny has no --quick/--smoke size (--smoke already runs on a tiny policy)")
        name = "tiny"
    profile = PROFILES[name]
    changes: dict[str, Any] = {}
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.rows:
        changes["rows"] = tuple(k.strip() for k in args.rows.split(",") if k.strip())
    profile = dataclasses.replace(profile, **changes)
    out = Path(args.out or Path(__file__).resolve().parent / "results" / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # the same rows and run metadata, only the report rewritten
        write_report = report_writer(profile)

        print(write_report(out, json.loads((out / "rows.json").read_text()), json.loads((out / META_FILE).read_text())))
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    t0 = time.perf_counter()
    policy = starting_policy(args.policy, out, profile)
    problems = args.problems or profile.problems or DEFAULT_PROBLEMS
    records = []
    for row in rows_for_profile(profile):
        for seed in range(profile.seeds):
            rec = run_row(row, profile, seed, policy, problems, out)
            ev = rec["eval"]
            print(
                f"{row.key:>18} seed {seed}: Pass@{ev['k']} {ev['score_mean']:.3f} "
                f"var {ev['score_variance']:.3f} ({rec['seconds']:.0f}s)",
                flush=True,
            )
            records.append(rec)
    (out / "rows.json").write_text(json.dumps(records, indent=2, default=str) + "\n")
    write_report = report_writer(profile)

    meta = {
        "profile": dataclasses.asdict(profile),
        "policy": policy,
        "problems": problems,
        "command": "python benchmarks/learning.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": git_commit(out),
        "seconds": time.perf_counter() - t0,
        "notes": scope_notes(profile),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg()[0],
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    report = write_report(out, records, meta)
    print(f"report: {report} ({meta['seconds']:.0f}s)")
    return 0


def scope_notes(profile: Profile) -> list[str]:
    """What this profile leaves out, and the command for the full report."""
    if profile.row_set == "mechanism":
        if profile.seeds >= 3:
            return []
        return [
            "",
            f"This `{profile.name}` report runs {profile.seeds} seed(s), {profile.steps} RL steps, "
            f"{profile.eval_problems} held-out problems x k = {profile.eval_k}. The acceptance run is:",
            "",
            "    python benchmarks/learning.py --profile mechanism --out benchmarks/results/mechanism",
        ]
    full = PROFILES["full"]
    if profile.rows == full.rows and profile.seeds >= 3:
        return []
    return [
        "",
        f"This `{profile.name}` report runs {len(profile.rows)} of {len(full.rows)} rows, {profile.seeds} "
        f"seed(s), {profile.steps} RL steps and {profile.eval_problems} held-out problems × k = "
        f"{profile.eval_k}. The full report (every row, 3 seeds, {full.steps} steps, {full.eval_problems} × "
        f"{full.eval_k}; resumable, rows may run in parallel streams into one --out) is produced by:",
        "",
        "    python benchmarks/learning.py --out benchmarks/results/full",
    ]


def rows_for_profile(profile: Profile) -> list[Row]:
    table = row_table(profile)
    unknown = [k for k in profile.rows if k not in table]
    if unknown:
        raise SystemExit(f"unknown row(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return [table[k] for k in profile.rows] if profile.rows else rows_for(profile.name)


def report_writer(profile: Profile) -> Callable[[Path, list[dict[str, Any]], dict[str, Any]], Path]:
    """The paper report (``learning_report``) or the mechanism report (``learning_mechanism``)."""
    if profile.row_set == "mechanism":
        from learning_mechanism import write_mechanism_report

        return write_mechanism_report
    from learning_report import write_report

    return write_report


if __name__ == "__main__":
    raise SystemExit(main())
