"""The one registry of :attr:`agents.config.TrainConfig.method`: each name and the runner of it.

The names live here, in a module that imports nothing, so config validation reads them without
importing the runners (which import the config: a cycle). Each runner registers itself under its
names with :func:`register` in :mod:`agents.baselines`; registering a name not listed here fails at
import, and :func:`runner` fails with the names that have a runner, so the list and the runners
cannot drift apart (``tests/test_baselines.py`` checks every name has one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

#: Values of ``TrainConfig.method``, in the order they are documented.
METHODS: tuple[str, ...] = ("eapo", "self_explore", "base", "distill_sft", "expert_workflow")

Runner = Callable[..., dict[str, Any]]
R = TypeVar("R", bound=Runner)

#: ``method -> runner``, filled by :func:`register` when :mod:`agents.baselines` is imported.
RUNNERS: dict[str, Runner] = {}


def register(*names: str) -> Callable[[R], R]:
    """Decorator: the decorated function runs ``config.method`` for each of ``names``."""

    def add(fn: R) -> R:
        for name in names:
            if name not in METHODS:
                raise ValueError(f"method {name!r} is not in agents.methods.METHODS ({', '.join(METHODS)})")
            if name in RUNNERS:
                raise ValueError(f"method {name!r} already has a runner ({RUNNERS[name].__name__})")
            RUNNERS[name] = fn
        return fn

    return add


def runner(method: str) -> Runner:
    """The runner of ``method`` (imports :mod:`agents.baselines`, where the runners register)."""
    import agents.baselines  # noqa: F401  (registers the runners)

    if method not in RUNNERS:
        raise ValueError(f"method {method!r} has no runner; runners exist for {', '.join(sorted(RUNNERS))}")
    return RUNNERS[method]
