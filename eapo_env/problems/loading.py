"""``load_problems(spec)``: turn the ``problems=`` argument of ``gym.make`` into a problem source.

Accepted specs:

* ``"generated"`` — every generated family at every level;
* ``"generated:<families>"`` and ``"generated:<families>:<levels>"`` — comma lists, ``*``/``all`` for
  every family, levels as ``2``, ``1,3`` or a range ``2-4`` (e.g. ``"generated:arithmetic,linear:1-3"``);
* a path (``str`` or ``os.PathLike``) to a ``.jsonl``, ``.json``, ``.parquet`` or ``.csv`` file, or a
  ``datasets.save_to_disk`` directory; schema detected from the columns (see
  :mod:`eapo_env.problems.datasets`);
* a list or tuple of :class:`Problem` (or of dicts in our schema);
* an existing :class:`ProblemSource`, returned as is.

Anything else is a ``ValueError`` (or ``TypeError`` for a value of the wrong type) saying what is
accepted.

Example:
    >>> src = load_problems("generated:modular:2-3", seed=1)
    >>> src.families, src.levels, src[0].id
    (('modular',), (2, 3), 'gen/modular/L2/0@1')
    >>> load_problems(src) is src
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from eapo_env.problems.base import Problem, ProblemSource, SequenceSource
from eapo_env.problems.datasets import read_problems
from eapo_env.problems.generated import FAMILIES, LEVELS, GeneratedSource

__all__ = ["load_problems", "parse_generated_spec"]

_GRAMMAR = (
    "accepted problem specs: 'generated', 'generated:<family[,family...]|*>[:<level[,level...]|lo-hi>]' "
    f"(families: {', '.join(FAMILIES)}; levels {LEVELS[0]}-{LEVELS[-1]}), a path to a "
    ".jsonl/.json/.parquet/.csv file or a datasets directory, a list of Problem, or a ProblemSource"
)


def _parse_levels(text: str, spec: str) -> tuple[int, ...]:
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                levels.extend(range(lo, hi + 1))
            else:
                levels.append(int(part))
        except ValueError:
            raise ValueError(f"bad level {part!r} in problem spec {spec!r}; {_GRAMMAR}") from None
    bad = [lv for lv in levels if lv not in LEVELS]
    if bad or not levels:
        raise ValueError(f"levels {bad or levels} in problem spec {spec!r} not in {LEVELS}")
    return tuple(dict.fromkeys(levels))  # keep order, drop repeats


def parse_generated_spec(spec: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``(families, levels)`` of a ``generated[:families[:levels]]`` spec.

    >>> parse_generated_spec("generated:linear,counting:4")
    (('linear', 'counting'), (4,))
    """
    parts = spec.strip().split(":")
    if parts[0].strip() != "generated" or len(parts) > 3:
        raise ValueError(f"bad generated spec {spec!r}; {_GRAMMAR}")
    families: tuple[str, ...] = tuple(FAMILIES)
    if len(parts) > 1 and parts[1].strip() not in ("", "*", "all"):
        families = tuple(dict.fromkeys(f.strip() for f in parts[1].split(",")))
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ValueError(
                f"unknown generated family {', '.join(map(repr, unknown))} in {spec!r}; "
                f"known families: {', '.join(FAMILIES)}"
            )
    levels = _parse_levels(parts[2], spec) if len(parts) > 2 and parts[2].strip() else LEVELS
    return families, levels


def _is_path_like(spec: Any) -> bool:
    return isinstance(spec, os.PathLike) or isinstance(spec, str)


def load_problems(
    spec: Any,
    *,
    seed: int = 0,
    size: int = 100_000,
    name: str | None = None,
    skip_invalid: bool = False,
) -> ProblemSource:
    """A :class:`ProblemSource` for ``spec`` (see the module docs for the accepted forms).

    Args:
        spec: the problem spec.
        seed: seed of generated families (ignored for files and lists).
        size: number of items of a generated source.
        name: id prefix for file schemas without ids (default: inferred from the file name).
        skip_invalid: for files, drop rows missing a question or answer instead of raising.

    Raises:
        ValueError: unknown family or level, missing/empty/unreadable file, unknown schema (the
            message lists the columns seen), a row without an answer (unless ``skip_invalid``).
        TypeError: a spec of an unsupported type.
    """
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("empty problem list")
        problems = []
        for i, item in enumerate(spec):
            if isinstance(item, Problem):
                problems.append(item)
            elif isinstance(item, Mapping):
                try:
                    problems.append(Problem.from_dict(item))
                except KeyError as exc:
                    raise ValueError(f"problem list item {i} lacks the key {exc}") from None
            else:
                raise TypeError(f"problem list item {i} is a {type(item).__name__}, not a Problem")
        return SequenceSource(problems, name=name or "list")
    if _is_path_like(spec):
        text = os.fspath(spec)
        if isinstance(spec, str) and text.strip().split(":", 1)[0] == "generated":
            families, levels = parse_generated_spec(text)
            return GeneratedSource(families, levels, seed=seed, size=size)
        if not text.strip():
            raise ValueError(f"empty problem spec; {_GRAMMAR}")
        if not os.path.exists(text):
            if isinstance(spec, str) and not text.lower().endswith((".jsonl", ".json", ".parquet", ".csv")):
                raise ValueError(f"unknown problem spec {text!r}; {_GRAMMAR}")
            raise ValueError(f"problem file not found: {text!r}")
        problems = read_problems(text, name=name, skip_invalid=skip_invalid)
        return SequenceSource(problems, name=os.path.basename(text.rstrip("/\\")) or text)
    if not isinstance(spec, Mapping) and isinstance(spec, ProblemSource):
        return spec
    raise TypeError(f"unsupported problem spec of type {type(spec).__name__}; {_GRAMMAR}")
