"""Hypothesis strategies for the EAPO env: policy turns, problems of any task, expert replies, schedules.

What an EAPO env must survive is what a policy writes (DESIGN §3): reasoning, answers, consults with
0..K+2 queries, unclosed, nested and repeated tags, blank queries, overlong and non-ASCII text; what
experts reply, faults included (``timeout``, ``error``, a malformed return value); and the schedules the
annealing wrappers run. These strategies draw them, for your own tests and for
:func:`~eapo_env.testing.check_eapo_env`.

The token :data:`GOLD` stands for the episode's reference answer, unknown when the turn is drawn
(the problem is drawn by ``reset``): :func:`fill_gold` puts it in before the turn is stepped.

Example:
    >>> from hypothesis import given
    >>> from eapo_env import parse_action
    >>> @given(policy_turns(max_experts=2))
    ... def test_parser_is_total(action):
    ...     assert parse_action(action, max_queries=2).kind in ("reason", "consult", "answer")
    >>> test_parser_is_total()
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any, cast

from hypothesis import strategies as st

from eapo_env.experts.base import ExpertReply
from eapo_env.problems import Problem, ProblemSource
from eapo_env.protocol import PROTOCOL_TAGS
from eapo_env.schedules import Constant, Cosine, Exponential, Linear, Piecewise, Schedule, Step
from eapo_env.tasks import Task, resolve_task
from eapo_env.testing.experts import FAULT_MARKERS

#: Stands for the episode's reference answer in a drawn turn; :func:`fill_gold` replaces it.
GOLD = "<GOLD>"
#: Non-ASCII snippets: accents, CJK, math symbols, emoji, zero-width and bidi controls, a combining mark.
NON_ASCII = ("é", "ß", "数学题", "∑ᵢ x²", "🙂🚀", "\u200b", "\u202eevil", "e\u0301", "Ω", "\u00a0")
#: Blank query bodies (dropped by the env, DESIGN §3.3).
BLANKS = ("", " ", "\n", "\t ", "\u3000")
#: Hand-written malformed turns: unclosed, stray closers, wrong case, nested and repeated tags.
MALFORMED = (
    "<answer>7",
    "7</answer>",
    "</consult>",
    "<consult><query>a",
    "<consult><query>a</query>",
    "<consult></consult>",
    "<consult>no query tags</consult>",
    "<ANSWER>1</ANSWER>",
    "<answer>1 <answer>2</answer>",
    "<answer>1</answer><answer>2</answer>",
    "<consult><query><query>inner</query></query></consult>",
    "<consult><query>x</query><answer>5</answer></consult>",
    "<think><answer>3</think>",
    "<consult><query>a</query></consult><answer>1</answer>",
    '<experts><expert index="1">fake</expert></experts>',
)


def fill_gold(action: str, problem: Problem) -> str:
    """``action`` with every :data:`GOLD` replaced by ``problem.answer``."""
    return action.replace(GOLD, problem.answer) if GOLD in action else action


def texts(max_size: int = 20) -> st.SearchStrategy[str]:
    """Free text: any Unicode, non-ASCII snippets, and protocol tags mixed in."""
    return st.one_of(
        st.text(max_size=max_size),
        st.sampled_from(NON_ASCII),
        st.lists(st.one_of(st.sampled_from(PROTOCOL_TAGS), st.text(max_size=4)), max_size=4).map("".join),
    )


def queries() -> st.SearchStrategy[str]:
    """One query body: plain, blank, non-ASCII, tag-bearing, or carrying a fault marker of
    :class:`~eapo_env.testing.experts.FaultyExpert` (``slow``, ``err``, ``bad``, ``long``, ``evil``)."""
    plain = st.text(alphabet="abcxyz ?", min_size=1, max_size=8)
    return st.one_of(plain, plain, st.sampled_from(BLANKS), st.sampled_from(FAULT_MARKERS), texts(8))


def reasoning_turns() -> st.SearchStrategy[str]:
    """Turns with no complete block: free text, ``<think>`` blocks."""
    return st.one_of(texts(40), texts(20).map(lambda t: f"<think>{t}</think>"))


def answer_turns(gold: bool = True) -> st.SearchStrategy[str]:
    """``<answer>…</answer>`` turns (the body :data:`GOLD`, when ``gold``, a number, text or blank),
    maybe after some reasoning."""
    bodies = st.one_of(st.sampled_from(["0", "7", "-1/2", "x", "", " 42 "]), texts(10))
    if gold:
        bodies = st.one_of(st.just(GOLD), st.just(GOLD), bodies)
    head = st.sampled_from(["", "", "so ", "<think>ok</think> "])
    return st.builds(lambda h, b: f"{h}<answer>{b}</answer>", head, bodies)


def consult_turns(max_experts: int = 3) -> st.SearchStrategy[str]:
    """``<consult>`` turns with 0..K+2 queries (surplus ones are dropped, none is a format error),
    whitespace between tags, sometimes text after the block."""
    sep = st.sampled_from(["", "", " ", "\n"])
    tail = st.sampled_from(["", "", " then", "<answer>1</answer>"])
    listed = st.lists(queries(), max_size=max_experts + 2)
    return st.builds(
        lambda qs, s, t: "<consult>" + s.join(f"<query>{q}</query>" for q in qs) + s + "</consult>" + t,
        listed,
        sep,
        tail,
    )


def malformed_turns() -> st.SearchStrategy[str]:
    """Malformed turns: hand-written cases and random tag soup."""
    return st.one_of(st.sampled_from(MALFORMED), tag_soup())


def overlong_turns(max_chars: int) -> st.SearchStrategy[str]:
    """Turns around the action space's length ``max_chars``: the env cuts them (``action_truncated``),
    so a block at the end may be cut off."""
    tails = st.sampled_from(["", "<answer>1</answer>", "<consult><query>a</query></consult>", "数学"])
    return st.builds(lambda n, t: "x" * n + t, st.integers(max(0, max_chars - 12), max_chars + 12), tails)


def policy_turns(max_experts: int = 3, max_chars: int | None = None, gold: bool = True) -> st.SearchStrategy[str]:
    """Any policy turn (see the module docs); ``max_chars``: add turns around that length."""
    kinds = [reasoning_turns(), answer_turns(gold), consult_turns(max_experts), malformed_turns()]
    if max_chars is not None:
        kinds.append(overlong_turns(max_chars))
    return st.one_of(*kinds)


def tag_soup(max_tags: int = 30) -> st.SearchStrategy[str]:
    """Protocol tags and short texts in any order: the parser's hardest inputs."""
    return st.lists(st.one_of(st.sampled_from(PROTOCOL_TAGS), st.text(max_size=8)), max_size=max_tags).map("".join)


_near_text = st.lists(
    st.one_of(st.text(alphabet="ab <>/\n", max_size=4), st.sampled_from(PROTOCOL_TAGS)), max_size=3
).map("".join)


@st.composite
def near_canonical(draw: st.DrawFn) -> str:
    """Actions in (or one edit away from) the prompt's own format, what a policy mostly writes: stray
    ``<`` or tags in the texts, blank or surplus queries, whitespace between tags, text after the block."""
    head = draw(_near_text)
    if draw(st.booleans()):
        block = "<answer>" + draw(_near_text) + "</answer>"
    else:
        sep = draw(st.sampled_from(["", "", " ", "\n"]))
        plain = st.text(alphabet="ab \n", max_size=4)  # mostly well-formed
        bodies = draw(st.lists(st.one_of(plain, plain, _near_text), max_size=6))
        block = "<consult>" + sep.join("<query>" + q + "</query>" for q in bodies) + sep + "</consult>"
    return head + block + draw(st.sampled_from(["", "", " ", "x", "</answer>", "<answer>1</answer>"]))


# ---------------------------------------------------------------- problems of any task
@functools.lru_cache(maxsize=16)
def _source(task: Any, spec: Hashable) -> ProblemSource:
    return resolve_task(task).problems(spec)


def problems(task: Task | str = "math", spec: Any = None) -> st.SearchStrategy[Problem]:
    """Problems of ``task`` (a :class:`~eapo_env.tasks.Task` or its name in :data:`eapo_env.tasks.TASKS`:
    every registered task works, none is special-cased), drawn from ``task.problems(spec)`` (``None``:
    the task's default, its generated problems). The source is built once per ``(task, spec)``.

    Example:
        >>> from hypothesis import given
        >>> @given(problems("math", "generated:arithmetic"))
        ... def test_has_an_answer(problem):
        ...     assert problem.answer
        >>> test_has_an_answer()
    """
    try:
        source = _source(cast(Hashable, task), spec)
    except TypeError:  # an unhashable spec (a list of problems, say): not cacheable
        source = resolve_task(task).problems(spec)
    if len(source) == 0:
        raise ValueError(f"task {task!r} has no problems for {spec!r}")
    return st.integers(0, len(source) - 1).map(source.__getitem__)


# ---------------------------------------------------------------- expert replies
def ok_replies() -> st.SearchStrategy[ExpertReply]:
    """Well-formed ``ok`` replies, some carrying the experts block's delimiters or non-ASCII text."""
    body = st.one_of(texts(30), st.sampled_from(["</expert>", "</experts>", "<answer>9</answer>", "x" * 300]))
    return st.builds(
        ExpertReply, body, st.just("ok"), st.floats(0, 2, allow_nan=False), st.integers(0, 100), st.just("drawn")
    )


def fault_replies() -> st.SearchStrategy[ExpertReply]:
    """``timeout`` and ``error`` replies (what a backend returns for a failed request)."""
    return st.builds(
        ExpertReply,
        st.just(""),
        st.sampled_from(["timeout", "error"]),
        st.floats(0, 5, allow_nan=False),
        st.just(0),
        st.just("drawn"),
        st.sampled_from(["deadline", "HTTP 500", "connection reset"]),
    )


def malformed_replies() -> st.SearchStrategy[object]:
    """Values a buggy backend returns in place of an ``ExpertReply``: ``None``, a bare string, a dict,
    a reply with an unknown status. The env must turn each into an ``unavailable`` entry."""
    return st.one_of(
        st.none(),
        st.text(max_size=10),
        st.just({"text": "a dict"}),
        st.builds(lambda s: ExpertReply("text", s), st.sampled_from(["OK", "pending", ""])),
    )


def expert_replies(faults: bool = True) -> st.SearchStrategy[Any]:
    """One reply: ok, or (``faults``) a timeout, an error or a malformed value."""
    if not faults:
        return ok_replies()
    return st.one_of(ok_replies(), ok_replies(), fault_replies(), malformed_replies())


def reply_batches(size: int, faults: bool = True) -> st.SearchStrategy[Any]:
    """A backend's return value for ``size`` requests: mostly ``size`` replies; with ``faults`` also a
    wrong count or a value that is not a list."""
    right = st.lists(expert_replies(faults), min_size=size, max_size=size)
    if not faults:
        return right
    wrong = st.lists(expert_replies(False), max_size=size + 2).filter(lambda r: len(r) != size)
    return st.one_of(right, right, wrong, st.none(), st.just("not a list"))


# ---------------------------------------------------------------- schedules
_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_steps = st.integers(1, 10**7)


def schedules(low: float | None = None, high: float | None = None) -> st.SearchStrategy[Schedule]:
    """Schedules of every kind (:mod:`eapo_env.schedules`). With ``low``/``high`` the endpoints lie in
    ``[low, high]`` (so does every value of the bounded kinds: const, linear, cosine, piecewise)."""
    if low is None and high is None:
        values = _finite
    else:
        values = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    points = st.lists(st.tuples(st.integers(0, 10**7), values), min_size=1, max_size=6, unique_by=lambda p: p[0])
    bounded = st.one_of(
        st.builds(Constant, values),
        st.builds(Linear, values, values, _steps),
        st.builds(Cosine, values, values, _steps),
        points.map(lambda pts: Piecewise(tuple(sorted(pts)))),
    )
    if low is not None or high is not None:
        return bounded
    return st.one_of(
        bounded,
        st.builds(Exponential, _finite, st.floats(min_value=1e-6, max_value=2.0), _finite),
        st.builds(Step, _finite, _finite, _steps),
    )


def acceptance_schedules(horizon: int = 100) -> st.SearchStrategy[Schedule]:
    """Schedules for p(t) (``AcceptanceAnnealing``): values in [0, 1], short horizons (so they move)."""
    short = st.integers(1, horizon)
    return st.one_of(
        st.builds(Constant, _unit),
        st.builds(Linear, _unit, _unit, short),
        st.builds(Cosine, _unit, _unit, short),
        st.builds(Exponential, _unit, st.floats(0.5, 1.0)),
    )


def turn_schedules(max_turns: int = 8, horizon: int = 100) -> st.SearchStrategy[Schedule]:
    """Schedules for the turn budget (``TurnBudget``): values in [1, ``max_turns``]."""
    budget = st.integers(1, max_turns).map(float)
    return st.one_of(st.builds(Constant, budget), st.builds(Linear, budget, budget, st.integers(1, horizon)))


def schedule_specs() -> st.SearchStrategy[str]:
    """Schedule strings in the grammar of :func:`eapo_env.schedules.parse_schedule` (canonical forms)."""
    return schedules().map(str)
