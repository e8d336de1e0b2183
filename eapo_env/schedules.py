"""Schedules: the global training step (int >= 0) -> a float (DESIGN §6).

The annealing wrappers drive the expert acceptance probability and the turn budget with these. Every
schedule is a frozen dataclass (value equality, hashable), prints as a canonical short string that
:func:`parse_schedule` reads back to an equal schedule, and round-trips through
:meth:`~Schedule.to_dict` / :func:`schedule_from_dict` for checkpoints.

Grammar (numbers are Python floats; ``steps``/``every`` and piecewise steps are integers, or a share
of the run written ``P%``, see below):

====================================  =============================================================
``const:V`` or ``V``                  ``V``
``linear:START:END:STEPS``            straight line, then ``END`` from ``STEPS`` on
``exp:START:DECAY[:FLOOR]``           ``max(START * DECAY**step, FLOOR)``, ``FLOOR`` default 0
``cosine:START:END:STEPS``            half cosine from ``START`` to ``END``, then ``END``
``step:START:GAMMA:EVERY``            ``START * GAMMA**(step // EVERY)``
``piecewise:S0=V0,S1=V1,...``         linear between points, clamped to the first/last value
====================================  =============================================================

Relative step counts. Any step count of ``linear``/``cosine``/``step`` and any piecewise step may be
written as a percentage of the run, ``P%`` (``P`` a number >= 0, > 0 for a count), so one config
keeps its shape when a run's ``steps`` changes. Such a spec is resolved where it is used, by
``parse_schedule(spec, horizon=steps)``: a count ``P%`` becomes ``round(P * steps / 100)`` (at least 1
for ``linear``/``cosine``/``step``). Parsing a relative spec without a horizon is a ``ValueError``:
there is no run length to take a share of. The resolved schedule is the absolute one (equal to it,
printed as it); it remembers the spec it came from in ``source``, and :meth:`~Schedule.to_dict` keeps
both (``spec``: the absolute form a resume reads back; ``source``: what the config said).
``exp`` has no step count: its ``DECAY`` is per step, so it stays absolute (a longer run decays further).

Example:
    >>> str(parse_schedule("piecewise:0=1,20%=1,45%=0", horizon=80))
    'piecewise:0=1.0,16=1.0,36=0.0'
    >>> parse_schedule("linear:1.0:0.0:25%", horizon=400).to_dict()
    {'kind': 'linear', 'spec': 'linear:1.0:0.0:100', 'source': 'linear:1.0:0.0:25%'}
    >>> s = parse_schedule("linear:1.0:0.0:500")
    >>> s(0), s(250), s(500), s(10_000)
    (1.0, 0.5, 0.0, 0.0)
    >>> parse_schedule(str(s)) == s, str(s)
    (True, 'linear:1.0:0.0:500')
    >>> schedule_from_dict(parse_schedule("piecewise:0=1,100=0.5").to_dict())(50)
    0.75
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, cast

__all__ = [
    "GRAMMAR",
    "Constant",
    "Cosine",
    "Exponential",
    "Linear",
    "Piecewise",
    "Schedule",
    "Step",
    "as_schedule",
    "parse_schedule",
    "schedule_from_dict",
]

GRAMMAR = (
    "accepted schedules: 'const:V' or a bare number 'V', 'linear:START:END:STEPS', "
    "'exp:START:DECAY[:FLOOR]', 'cosine:START:END:STEPS', 'step:START:GAMMA:EVERY', "
    "'piecewise:STEP=VALUE,STEP=VALUE,...' (STEPS/EVERY/STEP integers > 0, >= 0 for points, or a share "
    "of the run 'P%' resolved with parse_schedule(spec, horizon=steps))"
)


def _num(x: float) -> str:
    # repr() of a float is the shortest string that reads back to the same float: exact round-trip.
    return repr(float(x))


def _check_float(name: str, v: Any, allow_inf: bool = False) -> float:
    ok = not isinstance(v, bool) and isinstance(v, (int, float))
    if not ok or math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name}: expected a finite number, got {v!r}")
    return float(v)


def _floats(obj: Any, *names: str) -> None:
    # Validate and store as float, so Constant(1) and Constant(1.0) print and compare the same.
    for n in names:
        object.__setattr__(obj, n, _check_float(f"{obj.kind} {n}", getattr(obj, n)))


def _positive_int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")


def _as_step(value: object) -> int:
    """``value`` as a step: ints, numpy integers (via ``__index__``) and integral floats are fine;
    strings and bools are not."""
    if isinstance(value, bool):
        raise TypeError(f"schedule step must be an int, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"schedule step must be an integer, got {value!r}")
        return int(value)
    if isinstance(value, int):
        return value
    if not hasattr(value, "__index__"):
        raise TypeError(f"schedule step must be an int, got {type(value).__name__}")
    return operator.index(value)  # has __index__: checked above


class Schedule:
    """Base class: ``schedule(step) -> float`` for integer ``step >= 0``."""

    kind: ClassVar[str] = ""

    def __call__(self, step: int) -> float:
        step = _as_step(step)
        if step < 0:
            raise ValueError(f"schedule step must be >= 0, got {step}")
        return float(self._value(step))

    def _value(self, step: int) -> float:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :func:`schedule_from_dict` reads it back. ``spec`` is the absolute form (what
        a resume runs); ``source``, present for a schedule resolved from a relative spec, is that spec."""
        source = getattr(self, "source", "")
        return {"kind": self.kind, "spec": str(self), **({"source": source} if source else {})}


@dataclass(frozen=True)
class Constant(Schedule):
    """Always ``value``. ``str`` is ``const:V``."""

    value: float
    kind: ClassVar[str] = "const"

    def __post_init__(self) -> None:
        _floats(self, "value")

    def _value(self, step: int) -> float:
        return self.value

    def __str__(self) -> str:
        return f"const:{_num(self.value)}"


@dataclass(frozen=True)
class Linear(Schedule):
    """From ``start`` at step 0 to ``end`` at ``steps``, then ``end``."""

    start: float
    end: float
    steps: int
    source: str = field(default="", compare=False, repr=False)  # the relative spec it was resolved from
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        _floats(self, "start", "end")
        _positive_int("linear steps", self.steps)

    def _value(self, step: int) -> float:
        if step >= self.steps:
            return self.end
        return self.start + (self.end - self.start) * (step / self.steps)

    def __str__(self) -> str:
        return f"linear:{_num(self.start)}:{_num(self.end)}:{self.steps}"


@dataclass(frozen=True)
class Exponential(Schedule):
    """``max(start * decay**step, floor)``; ``floor`` is a lower bound (``-inf`` allowed)."""

    start: float
    decay: float
    floor: float = 0.0
    kind: ClassVar[str] = "exp"

    def __post_init__(self) -> None:
        _floats(self, "start", "decay")
        object.__setattr__(self, "floor", _check_float("exp floor", self.floor, allow_inf=True))
        if self.decay <= 0:
            raise ValueError(f"exp decay must be > 0, got {self.decay!r}")

    def _value(self, step: int) -> float:
        try:
            v = self.start * self.decay**step
        except OverflowError:  # decay > 1 after many steps: the value runs off to +-inf (0 stays 0)
            v = 0.0 if self.start == 0 else math.copysign(math.inf, self.start)
        return max(v, self.floor)

    def __str__(self) -> str:
        tail = f":{_num(self.floor)}" if self.floor != 0.0 else ""
        return f"exp:{_num(self.start)}:{_num(self.decay)}{tail}"


@dataclass(frozen=True)
class Cosine(Schedule):
    """Half-cosine from ``start`` to ``end`` over ``steps``, then ``end``."""

    start: float
    end: float
    steps: int
    source: str = field(default="", compare=False, repr=False)  # the relative spec it was resolved from
    kind: ClassVar[str] = "cosine"

    def __post_init__(self) -> None:
        _floats(self, "start", "end")
        _positive_int("cosine steps", self.steps)

    def _value(self, step: int) -> float:
        if step >= self.steps:
            return self.end
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * step / self.steps))

    def __str__(self) -> str:
        return f"cosine:{_num(self.start)}:{_num(self.end)}:{self.steps}"


@dataclass(frozen=True)
class Step(Schedule):
    """``start * gamma**(step // every)``: multiply by ``gamma`` every ``every`` steps."""

    start: float
    gamma: float
    every: int
    source: str = field(default="", compare=False, repr=False)  # the relative spec it was resolved from
    kind: ClassVar[str] = "step"

    def __post_init__(self) -> None:
        _floats(self, "start", "gamma")
        _positive_int("step every", self.every)

    def _value(self, step: int) -> float:
        try:
            return self.start * self.gamma ** (step // self.every)
        except OverflowError:
            return 0.0 if self.start == 0 else math.copysign(math.inf, self.start)

    def __str__(self) -> str:
        return f"step:{_num(self.start)}:{_num(self.gamma)}:{self.every}"


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Linear interpolation between ``(step, value)`` points (strictly increasing steps)."""

    points: tuple[tuple[int, float], ...]
    source: str = field(default="", compare=False, repr=False)  # the relative spec it was resolved from
    kind: ClassVar[str] = "piecewise"

    def __post_init__(self) -> None:
        pts: list[tuple[int, float]] = []
        for point in self.points:
            s, v = point
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"piecewise step must be an integer >= 0, got {s!r}")
            pts.append((s, _check_float("piecewise value", v)))
        if not pts:
            raise ValueError("piecewise needs at least one point")
        if any(a[0] >= b[0] for a, b in zip(pts, pts[1:])):
            raise ValueError(f"piecewise steps must be strictly increasing, got {[s for s, _ in pts]}")
        object.__setattr__(self, "points", tuple(pts))  # a tuple of tuples: hashable, comparable

    def _value(self, step: int) -> float:
        pts = self.points
        if step <= pts[0][0]:
            return pts[0][1]
        for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
            if step <= s1:
                return v0 + (v1 - v0) * ((step - s0) / (s1 - s0))
        return pts[-1][1]

    def __str__(self) -> str:
        return "piecewise:" + ",".join(f"{s}={_num(v)}" for s, v in self.points)


def _float(text: str, spec: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"bad number {text!r} in schedule {spec!r}; {GRAMMAR}") from None
    if not math.isfinite(v):
        raise ValueError(f"non-finite number {text!r} in schedule {spec!r}; {GRAMMAR}")
    return v


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad integer {text!r} in schedule {spec!r}; {GRAMMAR}") from None


class _Counts:
    """Reads the step counts of one spec: integers, or ``P%`` of ``horizon`` (and notes that it saw one)."""

    def __init__(self, spec: str, horizon: int | None) -> None:
        self.spec, self.horizon, self.relative = spec, horizon, False

    def __call__(self, text: str, at_least_one: bool) -> int:
        text = text.strip()
        if not text.endswith("%"):
            return _int(text, self.spec)
        share = _float(text[:-1], self.spec)
        if share < 0 or (at_least_one and share == 0):
            raise ValueError(f"share {text!r} must be {'> 0' if at_least_one else '>= 0'}")
        if self.horizon is None:
            raise ValueError(f"{text!r} is a share of the run: parse it with horizon=<the run's steps>")
        self.relative = True
        count = round(share * self.horizon / 100)
        return max(1, count) if at_least_one else count


def parse_schedule(text: str, horizon: int | None = None) -> Schedule:
    """Parse a short schedule string (see the module grammar); ``ValueError`` on anything else.

    ``horizon``: the run's length in steps, which resolves ``P%`` counts (needed only for them).

    >>> parse_schedule("0.5"), parse_schedule("exp:1.0:0.99")(1), parse_schedule("cosine:1:0:50%", horizon=60)
    (Constant(value=0.5), 0.99, Cosine(start=1.0, end=0.0, steps=30))
    """
    if not isinstance(text, str):
        raise TypeError(f"schedule spec must be a str, got {type(text).__name__}")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0):
        raise ValueError(f"schedule horizon must be a positive integer (the run's steps), got {horizon!r}")
    spec = text.strip()
    count = _Counts(spec, horizon)
    schedule = _parse(spec, text, count)
    return replace(cast(Any, schedule), source=spec) if count.relative else schedule


def _parse(spec: str, text: str, count: _Counts) -> Schedule:
    kind, _, rest = spec.partition(":")
    args = rest.split(":") if rest else []
    arity = {"const": (1,), "linear": (3,), "exp": (2, 3), "cosine": (3,), "step": (3,)}
    try:
        if not _ and kind not in arity and kind != "piecewise":
            return Constant(_float(spec, spec))
        if kind == "piecewise":
            if not rest:
                raise ValueError("no points")
            points = []
            for item in rest.split(","):
                s, eq, v = item.partition("=")
                if not eq:
                    raise ValueError(f"point {item!r} is not STEP=VALUE")
                points.append((count(s, at_least_one=False), _float(v.strip(), spec)))
            return Piecewise(tuple(points))
        if kind not in arity or len(args) not in arity[kind]:
            raise ValueError("unknown kind or wrong number of fields")
        if kind == "const":
            return Constant(_float(args[0], spec))
        if kind == "exp":
            floor = args[2].strip() if len(args) == 3 else "0"
            return Exponential(
                _float(args[0], spec), _float(args[1], spec), -math.inf if floor == "-inf" else _float(floor, spec)
            )
        a, b = _float(args[0], spec), _float(args[1], spec)
        n = count(args[2], at_least_one=True)
        return {"linear": Linear, "cosine": Cosine, "step": Step}[kind](a, b, n)
    except ValueError as exc:
        msg = str(exc)
        if GRAMMAR in msg:
            raise
        raise ValueError(f"bad schedule {text!r} ({msg}); {GRAMMAR}") from None


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """Inverse of :meth:`Schedule.to_dict`."""
    if not isinstance(data, Mapping) or not isinstance(data.get("spec"), str):
        raise ValueError(f"not a schedule dict (expected {{'kind': ..., 'spec': ...}}): {data!r}")
    schedule = parse_schedule(data["spec"])
    if "kind" in data and data["kind"] != schedule.kind:
        raise ValueError(f"schedule dict kind {data['kind']!r} does not match its spec {data['spec']!r}")
    source = data.get("source", "")
    if not isinstance(source, str) or (source and not hasattr(schedule, "source")):
        raise ValueError(f"schedule dict source must be the spec it was resolved from, got {source!r}")
    return replace(cast(Any, schedule), source=source) if source else schedule


def as_schedule(value: Schedule | str | float | int | Sequence[Any] | Mapping[str, Any]) -> Schedule:
    """Coerce a config value into a schedule: a schedule, a string, a number, or a ``to_dict`` dict.

    >>> as_schedule(0.25), as_schedule("step:1:0.5:10")(25)
    (Constant(value=0.25), 0.25)
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return parse_schedule(value)
    if isinstance(value, Mapping):
        return schedule_from_dict(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Constant(float(value))
    raise TypeError(f"cannot make a schedule from {type(value).__name__}; {GRAMMAR}")
