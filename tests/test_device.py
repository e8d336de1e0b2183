"""One device rule (issue 21 item 4): ``auto`` means CUDA when present, everywhere a device is decided.

No GPU exists on CI, so "a GPU is present" is simulated by monkeypatching ``torch.cuda.is_available``
(the one fake in these tests). A CPU-only torch then fails the moment a model is really moved to
CUDA, and that failure is the evidence that a caller chose CUDA for ``auto``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from agents import distributed  # noqa: E402
from agents.baselines import _evaluate_dir  # noqa: E402
from agents.config import load_config  # noqa: E402
from agents.device import pick_device  # noqa: E402
from agents.policy import load_policy, resolve_policy_path  # noqa: E402

AGENTS = Path(__file__).resolve().parents[1] / "agents"


@pytest.fixture
def gpu_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_the_rule(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    assert pick_device("cpu") == torch.device("cpu")  # an explicit device is never overridden
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError):
        pick_device("gpu")  # not a device: torch's own error, at once


def test_the_process_group_follows_the_rule(gpu_present):
    with distributed.session("auto", 5.0) as device:  # a plain (one-process) run joins no group
        assert device == torch.device("cuda")


def test_auto_without_a_gpu_loads_on_cpu(no_gpu):
    model, _ = load_policy("tiny-base", device="auto")
    assert next(model.parameters()).device.type == "cpu"


def _cuda_refused(exc: BaseException) -> bool:
    return "CUDA" in str(exc) or "cuda" in str(exc)


def test_policy_loader_and_baseline_evaluation_choose_cuda_for_auto(gpu_present, tmp_path):
    """The bug this fixes: baselines evaluated on ``"cuda" if device == "cuda" else "cpu"``, so ``auto``
    on a GPU evaluated on CPU. Now both try CUDA (and a CPU-only torch refuses, as it must)."""
    if torch.backends.cuda.is_built():
        pytest.fail("this test expects a CPU-only torch (it proves the CUDA choice by torch refusing it)")
    with pytest.raises((AssertionError, RuntimeError)) as loaded:
        load_policy("tiny-base", device="auto")
    assert _cuda_refused(loaded.value)
    config = load_config("base", device="auto", policy="tiny-base", threads=1)
    with pytest.raises((AssertionError, RuntimeError)) as evaluated:
        _evaluate_dir(config, Path(resolve_policy_path("tiny-base")), tmp_path / "eval")
    assert _cuda_refused(evaluated.value)


def test_no_module_but_agents_device_spells_the_rule_out():
    """``"cuda" if ... else "cpu"`` (either order) outside :mod:`agents.device` is a second device rule."""
    offenders = []
    for path in sorted(AGENTS.rglob("*.py")):
        if path.name == "device.py" and path.parent == AGENTS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.IfExp) and all(isinstance(b, ast.Constant) for b in (node.body, node.orelse)):
                if {node.body.value, node.orelse.value} == {"cuda", "cpu"}:  # type: ignore[attr-defined]
                    offenders.append(f"{path.relative_to(AGENTS.parent)}:{node.lineno}")
    assert not offenders, f"decide the device with agents.device.pick_device instead: {offenders}"
