r"""Generated problem families: exact answers, worked solutions, derived from ``(seed, index)``.

Every item is a pure function of ``(family, level, index, seed)``: a private ``random.Random`` is
seeded from a stable integer packing of those four values (never Python's ``hash()`` of a string,
which is salted per process, and never the global RNG), so the same id names the same problem in every
process. Generators draw only through ``random()``, the one stream Python keeps stable across versions.
Generation avoids sympy: it is on the ``reset`` path of every episode.

Ids are ``gen/<family>/L<level>/<index>`` for seed 0 and ``gen/<family>/L<level>/<index>@<seed>``
otherwise, so ids from different seeds never collide (recorded expert replies are keyed by id).

Example:
    >>> p = generate("linear", 1, 0)
    >>> p.id, p.meta["family"], p.meta["level"]
    ('gen/linear/L1/0', 'linear', 1)
    >>> p == generate("linear", 1, 0)
    True
    >>> p.solution.endswith("The answer is \\boxed{" + p.answer + "}.")
    True
    >>> src = GeneratedSource(["arithmetic", "counting"], levels=(1, 2), size=10)
    >>> [src[i].id for i in range(3)]
    ['gen/arithmetic/L1/0', 'gen/arithmetic/L2/1', 'gen/counting/L1/2']
    >>> src.get("gen/counting/L1/2") == src[2]
    True
"""

from __future__ import annotations

import functools
import random
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from eapo_env.problems.base import Problem
from eapo_env.problems.families import (
    Generated,
    arithmetic,
    counting,
    fmt_number,
    fmt_ratio,
    fractions,
    linear,
    modular,
)

__all__ = [
    "FAMILIES",
    "LEVELS",
    "Generated",
    "GeneratedSource",
    "fmt_number",
    "fmt_ratio",
    "generate",
    "parse_generated_id",
    "problem_id",
]

GeneratorFn = Callable[[random.Random, int], Generated]

#: Registry: family name -> generator ``(rng, level) -> Generated(question, answer, solution, params)``.
#: Registry order is the default round-robin order of :class:`GeneratedSource`.
FAMILIES: dict[str, GeneratorFn] = {
    "arithmetic": arithmetic,
    "linear": linear,
    "modular": modular,
    "counting": counting,
    "fractions": fractions,
}
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

_ID_RE = re.compile(r"gen/([a-z_][a-z0-9_]*)/L(\d+)/(\d+)(?:@(\d+))?")


def _family_code(name: str) -> int:
    # crc32 is stable across processes and platforms, unlike hash(str).
    return zlib.crc32(name.encode("utf-8"))


_CODES: dict[str, int] = {}


def _item_seed(seed: int, family: str, level: int, index: int) -> int:
    """The integer that seeds item ``(seed, family, level, index)``'s private ``random.Random``.

    The fields are packed side by side (index: 64 bits, level: 8, family crc32: 32, seed: the rest),
    so distinct items get distinct keys; ``random.Random`` hashes the whole key into its state
    (``init_by_array``), which is cheaper than mixing it in Python first.
    """
    code = _CODES.get(family)
    if code is None:
        code = _CODES[family] = _family_code(family)
    return index | level << 64 | code << 72 | seed << 104


def problem_id(family: str, level: int, index: int, seed: int = 0) -> str:
    """The id of a generated item (the seed appears only when non-zero).

    >>> problem_id("modular", 3, 42), problem_id("modular", 3, 42, seed=7)
    ('gen/modular/L3/42', 'gen/modular/L3/42@7')
    """
    base = f"gen/{family}/L{level}/{index}"
    return base if seed == 0 else f"{base}@{seed}"


def parse_generated_id(problem_id: str) -> tuple[str, int, int, int]:
    """``(family, level, index, seed)`` from a generated id; ``KeyError`` if it is not one.

    >>> parse_generated_id("gen/fractions/L5/9@3")
    ('fractions', 5, 9, 3)
    """
    m = _ID_RE.fullmatch(problem_id) if isinstance(problem_id, str) else None
    if m is None:
        raise KeyError(f"not a generated problem id: {problem_id!r}")
    family, level, index, seed = m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)
    if family not in FAMILIES or level not in LEVELS:
        raise KeyError(f"unknown generated family/level in id {problem_id!r}")
    return family, level, index, seed


def _check(family: str, level: int, index: int, seed: int) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known families: {', '.join(FAMILIES)}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if not 0 <= index < 1 << 64 or seed < 0:
        raise ValueError(f"need 0 <= index < 2**64 and seed >= 0, got index={index}, seed={seed}")


# A GRPO group resets its G envs on one problem, and generating it is most of a reset's CPU: the
# recent items are kept (problems are immutable; a dataset source also hands out shared objects).
@functools.lru_cache(maxsize=4096)
def generate(family: str, level: int, index: int, seed: int = 0) -> Problem:
    """The ``index``-th problem of ``family`` at ``level`` for ``seed`` (deterministic; the last
    4096 items are cached, so equal calls return the same object).

    >>> p = generate("arithmetic", 2, 5, seed=1)
    >>> p.id, p.meta["source"], p.meta["seed"]
    ('gen/arithmetic/L2/5@1', 'generated', 1)
    """
    _check(family, level, index, seed)
    rng = random.Random(_item_seed(seed, family, level, index))
    question, answer, solution, params = FAMILIES[family](rng, level)
    meta: dict[str, Any] = {
        "family": family,
        "level": level,
        "source": "generated",
        "answer_type": "math",
        "seed": seed,
        "index": index,
        "params": params,
    }
    return Problem(problem_id(family, level, index, seed), question, answer, solution, meta)


class GeneratedSource:
    """A :class:`~eapo_env.problems.base.ProblemSource` over generated families.

    Index ``i`` maps round-robin onto the (family, level) pairs, families outermost, so any window of
    ``len(families) * len(levels)`` consecutive indices covers every pair once. ``get(id)`` regenerates
    the problem the id names (the id carries family, level, index and seed), so it also answers for
    well-formed generated ids outside this source's pairs or size.

    >>> src = GeneratedSource(seed=3, size=50)
    >>> len(src), src[0].meta["seed"], src[-1].id == src[49].id
    (50, 3, True)
    """

    def __init__(
        self,
        families: Sequence[str] | None = None,
        levels: Sequence[int] = LEVELS,
        seed: int = 0,
        size: int = 100_000,
    ) -> None:
        fams = tuple(FAMILIES) if families is None else tuple(families)
        levs = tuple(levels)
        if not fams or not levs:
            raise ValueError("GeneratedSource needs at least one family and one level")
        for f in fams:
            _check(f, LEVELS[0], 0, 0)
        for lv in levs:
            _check(fams[0], lv, 0, 0)
        if len(set(fams)) != len(fams) or len(set(levs)) != len(levs):
            raise ValueError(f"duplicate families or levels: {fams}, {levs}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.families, self.levels, self.seed, self.size = fams, levs, seed, int(size)
        self._pairs = [(f, lv) for f in fams for lv in levs]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Problem:
        i = int(index)
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"index {index} out of range for GeneratedSource of size {self.size}")
        family, level = self._pairs[i % len(self._pairs)]
        return generate(family, level, i, self.seed)

    def __iter__(self) -> Iterator[Problem]:
        return (self[i] for i in range(self.size))

    def get(self, problem_id: str) -> Problem:
        family, level, index, seed = parse_generated_id(problem_id)
        return generate(family, level, index, seed)

    def __repr__(self) -> str:
        return (
            f"GeneratedSource(families={list(self.families)}, levels={list(self.levels)}, "
            f"seed={self.seed}, size={self.size})"
        )
