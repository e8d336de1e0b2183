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
}
# Backends this distribution registers through ``eapo.experts`` from an optional extra (the learner's
# own experts live in ``agents``, which ``eapo_env`` never imports): name -> the extra that provides it.
_EXTRA_BACKENDS: dict[str, str] = {"policy": "agents"}
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
        return _load(eps[name])
    if name in _EXTRA_BACKENDS:
        raise ImportError(
            f"the {name!r} expert is registered through the {ENTRY_POINT_GROUP!r} entry point of the eapo "
            f"package, which is not installed here: pip install 'eapo[{_EXTRA_BACKENDS[name]}]' "
            "(or pip install -e . in a checkout)"
        )
    raise ValueError(f"unknown expert {name!r}; available: {', '.join(available_experts())}")


def _load(entry_point: metadata.EntryPoint) -> Callable[..., Expert]:
    """Import an entry point's factory; a missing optional dependency names the extra to install.

    Why: the entry point is declared whenever the package is installed, but its module may need an
    extra (the ``policy`` expert needs torch and transformers), and a bare ``No module named 'torch'``
    does not say which.
    """
    try:
        return entry_point.load()
    except ImportError as exc:
        dist = entry_point.dist.name if entry_point.dist is not None else "eapo"
        extras = list(entry_point.extras)
        if not extras and entry_point.name in _EXTRA_BACKENDS:
            extras = [_EXTRA_BACKENDS[entry_point.name]]
        fix = f"needs the optional extra {dist}[{','.join(extras)}]: pip install '{dist}[{','.join(extras)}]'"
        raise ImportError(
            f"the {entry_point.name!r} expert ({entry_point.value}) could not be imported ({exc}); it "
            + (fix if extras else f"needs a dependency of {dist} that is not installed")
        ) from exc


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
