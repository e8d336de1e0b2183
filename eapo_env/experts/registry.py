"""Expert registry: names → factories, built-ins resolved lazily, plus the ``eapo.experts`` entry points."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib import metadata
from typing import Any

from eapo_env.experts.base import Expert

ENTRY_POINT_GROUP = "eapo.experts"

# name -> "module:attribute"; imported only when asked for, so e.g. vllm/transformers stay optional.
_BUILTINS: dict[str, str] = {
    "reference": "eapo_env.experts.simple:ReferenceExpert",
    "hint": "eapo_env.experts.simple:HintExpert",
    "constant": "eapo_env.experts.simple:ConstantExpert",
    "noisy": "eapo_env.experts.simple:NoisyExpert",
    "openai": "eapo_env.experts.openai_backend:OpenAIExpert",
    "replay": "eapo_env.experts.replay:ReplayExpert",
    "pool": "eapo_env.experts.pool:ExpertPool",
    "transformers": "eapo_env.experts.local:TransformersExpert",
    "vllm": "eapo_env.experts.local:VLLMExpert",
    "policy": "eapo_env.experts.local:PolicyExpert",
}
_REGISTERED: dict[str, Callable[..., Expert]] = {}


def register_expert(name: str, factory: Callable[..., Expert]) -> None:
    """Register ``factory(**kwargs) -> Expert`` under ``name`` (overrides a built-in of that name)."""
    _REGISTERED[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available_experts() -> list[str]:
    """Every name :func:`make_expert` accepts."""
    return sorted(set(_BUILTINS) | set(_REGISTERED) | set(_entry_points()))


def _resolve(name: str) -> Callable[..., Expert]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTINS:
        module, _, attr = _BUILTINS[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    raise ValueError(f"unknown expert {name!r}; available: {', '.join(available_experts())}")


def make_expert(name: str | Expert, **kwargs: Any) -> Expert:
    """Build an expert by registered name, or pass an expert object through unchanged.

    Example:
        >>> from eapo_env.experts import make_expert
        >>> make_expert("noisy", base="reference", error_rate=0.5).error_rate
        0.5
    """
    if not isinstance(name, str):
        if kwargs:
            raise TypeError("keyword arguments are only accepted with an expert name")
        if not callable(getattr(name, "consult", None)):
            raise TypeError(f"{type(name).__name__} does not follow the Expert protocol (no consult method)")
        return name
    return _resolve(name)(**kwargs)
