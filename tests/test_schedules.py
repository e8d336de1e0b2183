"""Schedules: values, monotonicity, parse/str/dict round trips, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eapo_env.schedules import (
    GRAMMAR,
    Constant,
    Cosine,
    Exponential,
    Linear,
    Piecewise,
    Schedule,
    Step,
    as_schedule,
    parse_schedule,
    schedule_from_dict,
)


def test_values_at_key_steps() -> None:
    assert [Constant(0.5)(s) for s in (0, 7, 10**9)] == [0.5, 0.5, 0.5]
    lin = Linear(1.0, 0.0, 500)
    assert [lin(s) for s in (0, 100, 250, 499, 500, 501, 10**6)] == pytest.approx(
        [1.0, 0.8, 0.5, 0.002, 0.0, 0.0, 0.0], abs=1e-12
    )
    assert lin(500) == 0.0 and lin(0) == 1.0  # exact at the ends
    exp = Exponential(1.0, 0.5)
    assert [exp(s) for s in (0, 1, 2, 10)] == [1.0, 0.5, 0.25, 0.5**10]
    assert Exponential(1.0, 0.5, floor=0.2)(3) == 0.2 and Exponential(1.0, 0.5, floor=0.2)(2) == 0.25
    assert Exponential(1.0, 0.99)(10**6) == 0.0  # underflows cleanly to the floor
    assert Exponential(1.0, 2.0)(10**6) == math.inf and Exponential(0.0, 2.0)(10**6) == 0.0
    assert Step(0.0, 3.0, 1)(10**6) == 0.0 and Step(-1.0, 3.0, 1)(10**6) == -math.inf
    cos = Cosine(1.0, 0.0, 100)
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.5) and cos(100) == 0.0 and cos(10**6) == 0.0
    assert cos(25) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    stp = Step(1.0, 0.5, 100)
    assert [stp(s) for s in (0, 99, 100, 199, 200, 350)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    pw = Piecewise(((0, 1.0), (100, 0.5), (300, 0.0)))
    assert [pw(s) for s in (0, 50, 100, 200, 300, 10**6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    late = Piecewise(((10, 2.0), (20, 4.0)))
    assert (late(0), late(15), late(25)) == (2.0, 3.0, 4.0)  # clamped at both ends
    assert isinstance(lin(3), float) and isinstance(Constant(1)(0), float)


def test_step_argument_checks() -> None:
    lin = Linear(1.0, 0.0, 10)
    with pytest.raises(ValueError):
        lin(-1)
    with pytest.raises(ValueError):
        lin(1.5)
    with pytest.raises(TypeError):
        lin("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        lin(True)
    assert lin(np.int64(5)) == 0.5 and lin(5.0) == 0.5


@pytest.mark.parametrize(
    "schedule",
    [
        Linear(1.0, 0.0, 300),
        Exponential(1.0, 0.97),
        Exponential(2.0, 0.9, 0.3),
        Cosine(1.0, 0.1, 300),
        Step(1.0, 0.5, 40),
        Piecewise(((0, 1.0), (50, 0.7), (120, 0.7), (300, 0.0))),
    ],
)
def test_decaying_schedules_never_increase(schedule: Schedule) -> None:
    values = [schedule(s) for s in range(0, 400)]
    assert all(b <= a for a, b in zip(values, values[1:]))
    assert values[-1] < values[0]


def test_increasing_schedules_never_decrease() -> None:
    for schedule in (Linear(2.0, 8.0, 100), Cosine(0.0, 1.0, 100), Step(1.0, 2.0, 10)):
        values = [schedule(s) for s in range(200)]
        assert all(b >= a for a, b in zip(values, values[1:]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("const:0.5", Constant(0.5)),
        ("0.5", Constant(0.5)),
        (" -2 ", Constant(-2.0)),
        ("linear:1.0:0.0:500", Linear(1.0, 0.0, 500)),
        ("exp:1.0:0.99", Exponential(1.0, 0.99)),
        ("exp:1:0.99:0.05", Exponential(1.0, 0.99, 0.05)),
        ("exp:1:0.99:-inf", Exponential(1.0, 0.99, -math.inf)),
        ("cosine:1.0:0.0:500", Cosine(1.0, 0.0, 500)),
        ("step:1.0:0.5:100", Step(1.0, 0.5, 100)),
        ("piecewise:0=1.0,100=0.5,300=0.0", Piecewise(((0, 1.0), (100, 0.5), (300, 0.0)))),
        ("piecewise: 0 = 1 , 10=2", Piecewise(((0, 1.0), (10, 2.0)))),
    ],
)
def test_parse(text: str, expected: Schedule) -> None:
    parsed = parse_schedule(text)
    assert parsed == expected and type(parsed) is type(expected)
    assert parse_schedule(str(parsed)) == parsed


def test_canonical_strings() -> None:
    assert str(parse_schedule("0.5")) == "const:0.5"
    assert str(Linear(1, 0, 500)) == "linear:1.0:0.0:500"
    assert str(Exponential(1.0, 0.99)) == "exp:1.0:0.99"
    assert str(Exponential(1.0, 0.99, 0.1)) == "exp:1.0:0.99:0.1"
    assert str(Piecewise(((0, 1), (100, 0.5)))) == "piecewise:0=1.0,100=0.5"
    assert Constant(1) == Constant(1.0) and hash(Constant(1)) == hash(Constant(1.0))
    assert Linear(1.0, 0.0, 10) != Cosine(1.0, 0.0, 10)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "const",
        "const:",
        "const:x",
        "linear:1:0",
        "linear:1:0:0",
        "linear:1:0:-5",
        "linear:1:0:2.5",
        "exp:1",
        "exp:1:0",
        "exp:1:-0.5",
        "cosine:a:b:c",
        "step:1:0.5:0",
        "piecewise:",
        "piecewise:0=1,0=2",
        "piecewise:10=1,5=2",
        "piecewise:-1=1",
        "piecewise:0:1",
        "warmup:1:2",
        "nan",
        "inf",
        "1:2",
        "const:1:2",
    ],
)
def test_bad_strings_list_the_grammar(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    assert GRAMMAR in str(info.value)


def test_bad_constructor_arguments() -> None:
    for make in (
        lambda: Linear(1.0, 0.0, 0),
        lambda: Cosine(1.0, math.nan, 5),
        lambda: Step(1.0, 0.5, True),
        lambda: Constant(math.inf),
        lambda: Exponential(1.0, 0.0),
        lambda: Piecewise(()),
        lambda: Piecewise(((5, 1.0), (5, 2.0))),
        lambda: Constant("1"),
    ):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            make()
    with pytest.raises(TypeError):
        parse_schedule(0.5)  # type: ignore[arg-type]


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_steps = st.integers(1, 10**7)
_schedules = st.one_of(
    st.builds(Constant, _finite),
    st.builds(Linear, _finite, _finite, _steps),
    st.builds(Exponential, _finite, st.floats(min_value=1e-6, max_value=2.0), _finite),
    st.builds(Cosine, _finite, _finite, _steps),
    st.builds(Step, _finite, _finite, _steps),
    st.lists(st.tuples(st.integers(0, 10**7), _finite), min_size=1, max_size=6, unique_by=lambda p: p[0]).map(
        lambda pts: Piecewise(tuple(sorted(pts)))
    ),
)


@given(schedule=_schedules, step=st.integers(0, 10**8))
def test_round_trips(schedule: Schedule, step: int) -> None:
    again = parse_schedule(str(schedule))
    assert again == schedule and hash(again) == hash(schedule)
    from_dict = schedule_from_dict(json.loads(json.dumps(schedule.to_dict())))
    assert from_dict == schedule
    a, b = schedule(step), again(step)
    assert a == b or (math.isnan(a) and math.isnan(b))


_bounded = _schedules.filter(lambda s: not isinstance(s, (Step, Exponential)))


@given(schedule=_bounded, step=st.integers(0, 10**8))
def test_bounded_schedules_stay_within_their_endpoints(schedule: Schedule, step: int) -> None:
    if isinstance(schedule, Piecewise):
        values = [v for _, v in schedule.points]
    elif isinstance(schedule, Constant):
        values = [schedule.value]
    else:
        values = [schedule.start, schedule.end]
    assert min(values) - 1e-9 * (1 + max(map(abs, values))) <= schedule(step)
    assert schedule(step) <= max(values) + 1e-9 * (1 + max(map(abs, values)))


def test_dicts_and_coercion() -> None:
    sched = Cosine(1.0, 0.0, 500)
    assert sched.to_dict() == {"kind": "cosine", "spec": "cosine:1.0:0.0:500"}
    assert schedule_from_dict(sched.to_dict()) == sched
    with pytest.raises(ValueError):
        schedule_from_dict({"kind": "linear", "spec": "cosine:1.0:0.0:500"})
    with pytest.raises(ValueError):
        schedule_from_dict({"kind": "linear"})
    assert as_schedule(sched) is sched
    assert as_schedule("step:1:0.5:10") == Step(1.0, 0.5, 10)
    assert as_schedule(0.3) == Constant(0.3) and as_schedule(2) == Constant(2.0)
    assert as_schedule({"kind": "const", "spec": "const:0.1"}) == Constant(0.1)
    with pytest.raises(TypeError):
        as_schedule(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        as_schedule(True)  # type: ignore[arg-type]


# ------------------------------------------------------------------ relative step counts (share of the run)
_shares = st.integers(1, 800).map(lambda half_percent: half_percent / 2)  # 0.5 % .. 400 %, e.g. 12.5
_horizons = st.integers(1, 10**6)


def _pct(share: float) -> str:
    return f"{share:g}%"


@given(kind=st.sampled_from(["linear", "cosine", "step"]), a=_finite, b=_finite, share=_shares, horizon=_horizons)
def test_a_relative_count_is_that_share_of_the_horizon(
    kind: str, a: float, b: float, share: float, horizon: int
) -> None:
    relative = parse_schedule(f"{kind}:{a!r}:{b!r}:{_pct(share)}", horizon=horizon)
    absolute = parse_schedule(f"{kind}:{a!r}:{b!r}:{max(1, round(share * horizon / 100))}")
    assert relative == absolute and str(relative) == str(absolute)
    assert relative.to_dict() == {**absolute.to_dict(), "source": f"{kind}:{a!r}:{b!r}:{_pct(share)}"}


@given(
    shares=st.lists(st.integers(0, 400), min_size=1, max_size=5, unique=True).map(sorted),
    values=st.lists(_finite, min_size=5, max_size=5),
    horizon=_horizons,
)
def test_relative_piecewise_points_round_to_steps(shares: list[int], values: list[float], horizon: int) -> None:
    spec = "piecewise:" + ",".join(f"{s}%={v!r}" for s, v in zip(shares, values))
    steps = [round(s * horizon / 100) for s in shares]
    if len(set(steps)) < len(steps):  # two shares landing on one step: the same error as written out
        with pytest.raises(ValueError, match="strictly increasing"):
            parse_schedule(spec, horizon=horizon)
        return
    absolute = parse_schedule("piecewise:" + ",".join(f"{s}={v!r}" for s, v in zip(steps, values)))
    assert parse_schedule(spec, horizon=horizon) == absolute


@given(
    kind=st.sampled_from(["linear", "cosine", "step", "piecewise"]),
    percent=st.integers(1, 100),
    hundreds=st.integers(1, 20),
    factor=st.integers(2, 7),
    fraction=st.floats(0.0, 1.5),
)
def test_changing_steps_keeps_the_shape(kind: str, percent: int, hundreds: int, factor: int, fraction: float) -> None:
    """The same relative spec over a run ``factor`` times longer takes the same values ``factor`` times later."""
    spec = f"piecewise:0=1.0,{percent}%=0.25,{percent + 50}%=0.0" if kind == "piecewise" else f"{kind}:1:0.5:{percent}%"
    short, long = parse_schedule(spec, horizon=100 * hundreds), parse_schedule(spec, horizon=100 * hundreds * factor)
    step = int(fraction * 100 * hundreds)
    assert long(factor * step) == pytest.approx(short(step), rel=1e-12, abs=1e-12)  # cosine: pi*t/n rounding


def test_relative_specs_need_a_horizon_and_stay_resolved_through_dicts() -> None:
    for spec in ("linear:1:0:25%", "piecewise:0=1,50%=0.5", "cosine:1:0:10%", "step:1:0.5:5%"):
        with pytest.raises(ValueError, match="horizon"):
            parse_schedule(spec)
    resolved = parse_schedule("piecewise:0=1,50%=0.5", horizon=60)
    saved = json.loads(json.dumps(resolved.to_dict()))
    assert saved == {"kind": "piecewise", "spec": "piecewise:0=1.0,30=0.5", "source": "piecewise:0=1,50%=0.5"}
    back = schedule_from_dict(saved)
    assert back == resolved == parse_schedule(saved["spec"]) and back.to_dict() == saved  # a resume runs `spec`
    assert parse_schedule("linear:1:0:25", horizon=60) == Linear(1.0, 0.0, 25)  # absolute counts ignore it
    assert parse_schedule("exp:1.0:0.99", horizon=60) == Exponential(1.0, 0.99)  # per-step decay: no share


@pytest.mark.parametrize(
    ("spec", "horizon"),
    [
        ("linear:1:0:0%", 10),
        ("linear:1:0:-5%", 10),
        ("piecewise:-5%=1", 10),
        ("linear:1:0:x%", 10),
        ("exp:1:99%", 10),
        ("linear:1:0:25%", 0),
        ("linear:1:0:25%", True),
        ("const:0.5", -3),
    ],
)
def test_bad_relative_specs_and_horizons(spec: str, horizon: int) -> None:
    with pytest.raises(ValueError):
        parse_schedule(spec, horizon=horizon)
    with pytest.raises(ValueError):
        schedule_from_dict({"kind": "const", "spec": "const:1.0", "source": "const:1.0"})  # nothing to resolve
