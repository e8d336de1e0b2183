"""Atomic checkpoints: model, optimizer, LR scheduler, RNG states, schedules, step, config.

Layout::

    <out>/checkpoints/step_000010/
        model.pt        state_dict of the trained module (LoRA adapters included when used)
        optimizer.pt    AdamW state
        scheduler.pt    LR scheduler state
        rng.pt          python / numpy / torch (and CUDA) RNG states
        state.json      {"step": 10, "config": {...}, "schedules": {...}, "format": ...}
        config.json, model.safetensors, tokenizer files, eapo_policy.json
                        with a tokenizer given: the policy at this step as a policy directory
                        (LoRA merged into a copy), so ``load_policy(ckpt)`` and plain
                        ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained(ckpt)`` load it

``step`` is the number of completed training steps: a run resumed from ``step_000010`` runs step
index 10 next. A checkpoint is written into a temporary sibling directory, every file fsynced, then
renamed into place with ``os.replace`` (atomic on POSIX) and the parent directory fsynced: a killed
run leaves either the whole checkpoint or none (stale ``.tmp-*`` directories are ignored and
cleaned up).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
FORMAT = "eapo-checkpoint/1"
_NAME = re.compile(r"^step_(\d+)$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _save(obj: Any, path: Path) -> None:
    with path.open("wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    keep: int = 2,
    tokenizer: Any = None,
) -> Path:
    """Write ``<out>/checkpoints/step_<step>`` atomically; keep the newest ``keep``; return its path.

    With ``tokenizer``, the checkpoint is also a policy directory, written by the one writer
    (:func:`agents.policy.directory.write_policy_dir`; its ``eapo_policy.json`` names
    ``state["policy_dir"]`` as the source). ``model.pt`` stays what a resume loads.
    """
    root = Path(out_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    _save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
    _save(optimizer.state_dict(), tmp / "optimizer.pt")
    _save(scheduler.state_dict(), tmp / "scheduler.pt")
    _save(rng_state(), tmp / "rng.pt")
    if tokenizer is not None:
        from agents.policy.directory import write_policy_dir

        source = state.get("policy_dir")
        write_policy_dir(tmp, model, tokenizer, written_by="checkpoint", source=source, details={"step": int(step)})
        for written in tmp.iterdir():
            if written.is_file():
                _fsync_file(written)
    meta = {"format": FORMAT, "step": int(step), **state}
    with (tmp / "state.json").open("w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    if final.exists():  # re-saving the same step (e.g. the last one): replace it
        old = root / f".old-step_{step:06d}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for stale in list_checkpoints(out_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(stale, ignore_errors=True)
    for junk in root.glob(".tmp-*"):
        if junk != tmp:
            shutil.rmtree(junk, ignore_errors=True)
    return final


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(out_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    cps = list_checkpoints(out_dir)
    return cps[-1] if cps else None


def read_state(ckpt: str | Path) -> dict[str, Any]:
    return json.loads((Path(ckpt) / "state.json").read_text(encoding="utf-8"))


def load_checkpoint(
    ckpt: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and optimizer/scheduler/RNG); returns its ``state.json``."""
    ckpt = Path(ckpt)
    model.load_state_dict(torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    if restore_rng:
        set_rng_state(torch.load(ckpt / "rng.pt", weights_only=False))
    return read_state(ckpt)
