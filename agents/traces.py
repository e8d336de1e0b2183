"""SFT warm-start traces in the env's exact text format, for the three rollout paradigms (DESIGN §1).

A trace is what ``env.unwrapped.transcript`` would hold after a successful episode: a list of
``(source, text)`` segments with ``source`` in {``prompt``, ``policy``, ``expert``, ``env``}. Only
``policy`` segments are trained on. Every non-policy text comes from :mod:`eapo_env.prompts`
(``render_prompt``, ``render_experts_block``), so it matches what the env emits byte for byte.

Paradigms:

* ``self``: the policy reasons briefly and answers in one turn (easy levels only: this is the one
  a tiny model could plausibly compute itself). A share of these use the evaluation prompt, so the
  policy also answers directly when consultation is off.
* ``direct``: the same question to 1-3 experts, then a reconciling answer.
* ``decompose``: 2-3 short sub-questions to experts, then a fused answer.

Expert replies come from the ``reference`` expert when it is installed (what the env would show),
else from the problem's worked solution; a share of replies is marked unavailable, as under an
acceptance probability below 1. The final answer is always the reference answer.

Be honest about what this teaches: a ~1M-parameter model mostly learns the *format* (when to
consult, how to close a block, where the answer goes), not the arithmetic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from eapo_env.problems import Problem
from eapo_env.prompts import render_experts_block, render_prompt
from eapo_env.protocol import ANSWER_CLOSE, ANSWER_OPEN, CONSULT_CLOSE, CONSULT_OPEN, QUERY_CLOSE, QUERY_OPEN

Source = Literal["prompt", "policy", "expert", "env"]
Segment = tuple[Source, str]
Trace = list[Segment]
Paradigm = Literal["self", "direct", "decompose"]
#: ``reply_fn(problem, query) -> reply text`` (``None`` means the expert failed).
ReplyFn = Callable[[Problem, str], "str | None"]

PARADIGMS: tuple[Paradigm, ...] = ("self", "direct", "decompose")
_BOXED_TAIL = re.compile(r"\s*The answer is \\boxed\{.*\}\.\s*$", re.DOTALL)
#: Short, family-agnostic sub-questions for decomposition (short on purpose: the tiny model's
#: context is small, and the expert sees the problem with every request anyway).
SUB_QUESTIONS: tuple[str, ...] = (
    "What is the first step?",
    "Which quantity must be computed?",
    "What is the final result?",
)
_RECONCILE = ("The experts agree.", "Checking the replies.", "From the replies:", "")
_FUSE = ("Combining the steps.", "Putting the parts together.", "")
_ALONE = ("No expert replied, so I solve it alone.", "I answer on my own.")


@dataclass(frozen=True)
class TraceConfig:
    """Knobs of :func:`make_traces`.

    Attributes:
        mix: relative weights of ``self``, ``direct``, ``decompose``.
        self_levels: levels where self-resolution traces are made (others only consult).
        eval_prompt_frac: share of self-resolution traces that use the evaluation prompt.
        unavailable_prob: chance that each expert reply is shown as unavailable.
        max_reply_chars: replies longer than this are shortened to their last sentences
            (keeps traces within the tiny model's context).
        max_reason_chars: self-resolution reasoning longer than this is dropped (answer only).
        max_consult_chars: budget on a consult trace's policy + expert text; the number of
            queries is lowered (down to the minimum) until the trace fits.
        max_experts, max_turns: the env settings the training prompt announces.
    """

    mix: tuple[float, float, float] = (0.4, 0.35, 0.25)
    self_levels: tuple[int, ...] = (1, 2)
    eval_prompt_frac: float = 0.3
    unavailable_prob: float = 0.15
    max_reply_chars: int = 100
    max_reason_chars: int = 160
    max_consult_chars: int = 400
    max_experts: int = 3
    max_turns: int = 8


def solution_steps(problem: Problem) -> str:
    """The worked solution without its closing ``The answer is \\boxed{X}.`` sentence."""
    return _BOXED_TAIL.sub("", problem.solution).strip()


def _shorten(text: str, max_chars: int) -> str:
    """The shortest tail of ``text`` that starts at a sentence and fits ``max_chars``.

    Cut at sentence starts, never rewritten (newlines kept), so the tail is verbatim expert text;
    the end of a worked solution carries the result (``The answer is \\boxed{X}.``).
    """
    if len(text) <= max_chars:
        return text
    for m in re.finditer(r"(?<=[.!?])\s+", text):
        if len(text) - m.end() <= max_chars:
            return text[m.end() :]
    return text[-max_chars:]


def solution_reply(problem: Problem, query: str) -> str:
    """Fallback expert: the worked solution (what the ``reference`` expert is built from)."""
    return problem.solution or f"The answer is {problem.answer}."


def reference_reply_fn() -> ReplyFn:
    """Replies from the ``reference`` expert (the env default), or the solution when it is missing."""
    try:
        from eapo_env.experts import ExpertRequest, consult_blocking, make_expert

        expert = make_expert("reference")
    except Exception:  # the expert module is optional here; the solution is what it would say
        return solution_reply

    def reply(problem: Problem, query: str) -> str | None:
        (r,) = consult_blocking(expert, [ExpertRequest("sft", problem, query)])
        return r.text if r.ok else None

    return reply


def _level(problem: Problem) -> int:
    try:
        return int(problem.meta.get("level", 1))
    except (TypeError, ValueError):
        return 1


def _answer(prefix: str, answer: str) -> str:
    body = f"{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"
    return f"{prefix} {body}" if prefix else body


def _consult(queries: Sequence[str]) -> str:
    return CONSULT_OPEN + "".join(f"{QUERY_OPEN}{q}{QUERY_CLOSE}" for q in queries) + CONSULT_CLOSE


def _prompt(problem: Problem, cfg: TraceConfig, eval_mode: bool = False) -> Segment:
    text = render_prompt(problem.question, eval_mode=eval_mode, max_experts=cfg.max_experts, max_turns=cfg.max_turns)
    return ("prompt", text)


def self_trace(problem: Problem, rng: random.Random, cfg: TraceConfig) -> Trace:
    """Reason briefly (the solution's steps when short enough), then answer, in one turn."""
    steps = solution_steps(problem)
    reason = steps if 0 < len(steps) <= cfg.max_reason_chars else ""
    eval_mode = rng.random() < cfg.eval_prompt_frac
    return [_prompt(problem, cfg, eval_mode), ("policy", _answer(reason, problem.answer))]


def _replies(problem: Problem, queries: Sequence[str], rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn) -> list[str | None]:
    out: list[str | None] = []
    for q in queries:
        if rng.random() < cfg.unavailable_prob:
            out.append(None)
            continue
        text = reply_fn(problem, q)
        out.append(None if text is None else _shorten(text, cfg.max_reply_chars))
    return out


def _consult_trace(
    problem: Problem, queries: list[str], min_queries: int, closers: Sequence[str], rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn
) -> Trace:
    replies = _replies(problem, queries, rng, cfg, reply_fn)
    # Fit the context budget: drop queries (and their replies) from the front until it fits, so a
    # decomposition keeps its final sub-question.
    while len(queries) > min_queries and sum(len(q) for q in queries) + sum(len(r or "") for r in replies) > cfg.max_consult_chars:
        queries, replies = queries[1:], replies[1:]
    prefix = rng.choice(closers) if any(r is not None for r in replies) else rng.choice(_ALONE)
    return [
        _prompt(problem, cfg),
        ("policy", _consult(queries)),
        ("expert", render_experts_block(replies)),
        ("policy", _answer(prefix, problem.answer)),
    ]


def direct_trace(problem: Problem, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply) -> Trace:
    """The question itself to 1..K experts, then reconcile their replies into one answer."""
    k = rng.randint(1, cfg.max_experts)
    return _consult_trace(problem, [problem.question] * k, 1, _RECONCILE, rng, cfg, reply_fn)


def decompose_trace(problem: Problem, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply) -> Trace:
    """2..K short sub-questions (in order), then fuse the replies into one answer."""
    k = rng.randint(2, max(2, min(cfg.max_experts, len(SUB_QUESTIONS))))
    queries = list(SUB_QUESTIONS[: k - 1]) + [SUB_QUESTIONS[-1]]
    return _consult_trace(problem, queries, 2, _FUSE, rng, cfg, reply_fn)


def make_trace(problem: Problem, paradigm: Paradigm, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply) -> Trace:
    """One trace of the given paradigm for ``problem``."""
    if paradigm == "self":
        return self_trace(problem, rng, cfg)
    if paradigm == "direct":
        return direct_trace(problem, rng, cfg, reply_fn)
    if paradigm == "decompose":
        return decompose_trace(problem, rng, cfg, reply_fn)
    raise ValueError(f"unknown paradigm {paradigm!r}; known: {', '.join(PARADIGMS)}")


def make_traces(
    problems: Iterable[Problem],
    seed: int = 0,
    config: TraceConfig | None = None,
    reply_fn: ReplyFn | None = None,
) -> list[Trace]:
    """One trace per problem, its paradigm drawn from ``config.mix`` (self only on easy levels).

    Example:
        >>> p = Problem("p/1", "What is 2 + 3?", "5", "2 + 3 = 5. The answer is \\\\boxed{5}.", {"level": 1})
        >>> t = make_traces([p], seed=0, reply_fn=solution_reply)[0]
        >>> [s for s, _ in t][0], t[-1]
        ('prompt', ('policy', '2 + 3 = 5. <answer>5</answer>'))
    """
    cfg = config or TraceConfig()
    fn = reply_fn or reference_reply_fn()
    rng = random.Random(seed)
    traces: list[Trace] = []
    for problem in problems:
        weights = list(cfg.mix)
        if _level(problem) not in cfg.self_levels:
            weights[0] = 0.0
        paradigm = rng.choices(PARADIGMS, weights=weights)[0]
        traces.append(make_trace(problem, paradigm, rng, cfg, fn))
    return traces


def trace_text(trace: Trace) -> str:
    """The whole transcript as one string (for the tokenizer corpus and for reading)."""
    return "".join(text for _, text in trace)


def policy_text(trace: Trace) -> str:
    """Only what the policy wrote."""
    return "".join(text for source, text in trace if source == "policy")
