"""The first SFT losses of a short rebuild from a recorded ``build_args`` (the first-loss tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.policy import build_policy


class _Stop(Exception):
    pass


def first_sft_losses(args: dict[str, Any], out: Path, n: int = 5) -> list[float]:
    """Run ``build_policy`` with the recorded arguments (recipe and init included) and stop after ``n`` steps.

    The learning-rate schedule has no horizon, so these are the first ``n`` losses of the full build.
    """
    seen: list[float] = []

    def stop_after(step: int, loss: float) -> None:
        seen.append(loss)
        if step == n:
            raise _Stop

    try:
        build_policy(
            out,
            args["size"],
            args["sft_steps"],
            args["seed"],
            args["problems"],
            n_train=args["n_train"],
            n_heldout=0,
            batch_size=args["batch_size"],
            lr=args["lr"],
            threads=1,
            verbose=False,
            recipe=args.get("recipe", "base"),
            init_policy=args.get("init"),
            on_sft_step=stop_after,
        )
    except _Stop:
        return seen
    raise AssertionError(f"the build finished before {n} SFT steps")
