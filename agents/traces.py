"""SFT warm-start traces in the env's exact text format, for the three rollout paradigms (DESIGN §1).

A trace is what ``env.unwrapped.transcript`` would hold after a successful episode: a list of
``(source, text)`` segments with ``source`` in {``prompt``, ``policy``, ``expert``, ``env``}. Only
``policy`` segments are trained on. Every non-policy text comes from :mod:`eapo_env.prompts`
(``render_prompt``, ``render_experts_block``), so it matches what the env emits byte for byte.

Paradigms:

* ``self``: the policy reasons briefly and answers in one turn. Under the training prompt only on
  easy levels (the ones a tiny model could plausibly compute itself); under the evaluation prompt
  (a share ``eval_frac`` of all traces, every level) always, since at evaluation the policy must
  answer alone.
* ``direct``: the same question to 1-3 experts, then a reconciling answer. The query is the
  question verbatim when it is short; a long one is replaced by ``DIRECT_QUERY`` (every expert
  backend receives the problem statement with the query, so nothing is lost, and a ~1M-parameter
  model cannot copy a 100-character expression reliably after a few minutes of SFT).
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
DIRECT_QUERY = "Solve this problem."
_RECONCILE = ("The experts agree.", "Checking the replies.", "From the replies:", "")
_FUSE = ("Combining the steps.", "Putting the parts together.", "")
_ALONE = ("No expert replied, so I solve it alone.", "I answer on my own.")


@dataclass(frozen=True)
class TraceConfig:
    """Knobs of :func:`make_traces`.

    Attributes:
        mix: relative weights of ``self``, ``direct``, ``decompose`` under the training prompt.
        self_levels: levels with self-resolution traces under the training prompt (others consult).
        eval_frac: share of traces that use the evaluation prompt (always self-resolution).
        max_query_chars: a direct-consultation query is the question verbatim up to this length,
            else ``DIRECT_QUERY``.
        unavailable_prob: chance that each expert reply is shown as unavailable.
        max_reason_chars: self-resolution reasoning longer than this is dropped (answer only).
        max_consult_chars: budget on a consult trace's query + reply text; the number of queries
            is lowered until the trace fits (a decomposition that does not fit with two becomes a
            one-query direct consultation). Replies are never shortened: they are verbatim.
        phrases: start the answer turn after a consult with a short reconciling phrase. Off by
            default: the phrases teach nothing checkable and dilute the loss on the answer
            tokens the tiny model must learn to copy from the replies.
        max_experts, max_turns: the env settings the training prompt announces.
    """

    mix: tuple[float, float, float] = (0.4, 0.35, 0.25)
    self_levels: tuple[int, ...] = (1, 2)
    eval_frac: float = 0.3
    max_query_chars: int = 48
    unavailable_prob: float = 0.15
    max_reason_chars: int = 160
    max_consult_chars: int = 450
    phrases: bool = False
    max_experts: int = 3
    max_turns: int = 8


def solution_steps(problem: Problem) -> str:
    """The worked solution without its closing ``The answer is \\boxed{X}.`` sentence."""
    return _BOXED_TAIL.sub("", problem.solution).strip()


def solution_reply(problem: Problem, query: str) -> str:
    """Fallback expert: the worked solution, exactly what the ``reference`` expert replies."""
    return problem.solution or f"The answer is \\boxed{{{problem.answer}}}."


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


def self_trace(problem: Problem, rng: random.Random, cfg: TraceConfig, eval_mode: bool = False) -> Trace:
    """Reason briefly (the solution's steps when short enough), then answer, in one turn."""
    steps = solution_steps(problem)
    reason = steps if 0 < len(steps) <= cfg.max_reason_chars else ""
    return [_prompt(problem, cfg, eval_mode), ("policy", _answer(reason, problem.answer))]


def _fit(queries: list[str], reply_len: int, min_queries: int, cfg: TraceConfig) -> list[str]:
    """Drop queries from the front until queries + replies fit ``cfg.max_consult_chars``.

    From the front, so a decomposition keeps its final sub-question.
    """
    while len(queries) > min_queries and sum(len(q) + reply_len for q in queries) > cfg.max_consult_chars:
        queries = queries[1:]
    return queries


def _consult_trace(
    problem: Problem,
    queries: list[str],
    closers: Sequence[str],
    rng: random.Random,
    cfg: TraceConfig,
    reply_fn: ReplyFn,
) -> Trace:
    # Verbatim replies (the experts block must be what the env would show); a share unavailable.
    replies = [None if rng.random() < cfg.unavailable_prob else reply_fn(problem, q) for q in queries]
    prefix = ""
    if cfg.phrases:
        prefix = rng.choice(closers) if any(r is not None for r in replies) else rng.choice(_ALONE)
    return [
        _prompt(problem, cfg),
        ("policy", _consult(queries)),
        ("expert", render_experts_block(replies)),
        ("policy", _answer(prefix, problem.answer)),
    ]


def _reply_len(problem: Problem, reply_fn: ReplyFn) -> int:
    return len(reply_fn(problem, problem.question) or "")


def direct_trace(problem: Problem, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply) -> Trace:
    """The question itself to 1..K experts (fewer when long), then reconcile the replies."""
    k = rng.randint(1, cfg.max_experts)
    query = problem.question if len(problem.question) <= cfg.max_query_chars else DIRECT_QUERY
    queries = _fit([query] * k, _reply_len(problem, reply_fn), 1, cfg)
    return _consult_trace(problem, queries, _RECONCILE, rng, cfg, reply_fn)


def decompose_trace(
    problem: Problem, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply
) -> Trace:
    """2..K short sub-questions (in order), then fuse the replies into one answer.

    When two sub-questions and their replies do not fit the budget, a one-query direct
    consultation is made instead (one sub-question is not a decomposition).
    """
    k = rng.randint(2, max(2, min(cfg.max_experts, len(SUB_QUESTIONS))))
    queries = list(SUB_QUESTIONS[: k - 1]) + [SUB_QUESTIONS[-1]]
    reply_len = _reply_len(problem, reply_fn)
    queries = _fit(queries, reply_len, 2, cfg)
    if sum(len(q) + reply_len for q in queries) > cfg.max_consult_chars:
        return direct_trace(problem, rng, cfg, reply_fn)
    return _consult_trace(problem, queries, _FUSE, rng, cfg, reply_fn)


def make_trace(
    problem: Problem,
    paradigm: Paradigm,
    rng: random.Random,
    cfg: TraceConfig,
    reply_fn: ReplyFn = solution_reply,
    eval_mode: bool = False,
) -> Trace:
    """One trace of the given paradigm for ``problem`` (``eval_mode``: the evaluation prompt, ``self`` only)."""
    if eval_mode and paradigm != "self":
        raise ValueError("under the evaluation prompt consultation is disabled: only the 'self' paradigm")
    if paradigm == "self":
        return self_trace(problem, rng, cfg, eval_mode)
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
    """One trace per problem: evaluation prompt with probability ``eval_frac`` (self-resolution),
    else the training prompt with a paradigm drawn from ``config.mix`` (self only on easy levels).

    Example:
        >>> p = Problem("p/1", "What is 2 + 3?", "5", "2 + 3 = 5. The answer is \\\\boxed{5}.", {"level": 1})
        >>> t = make_traces([p] * 20, seed=0, reply_fn=solution_reply)
        >>> sorted({len(x) for x in t})  # 2 segments: self-resolution; 4: a consult and an answer
        [2, 4]
        >>> make_trace(p, "self", random.Random(0), TraceConfig())[-1]
        ('policy', '2 + 3 = 5. <answer>5</answer>')
    """
    cfg = config or TraceConfig()
    fn = reply_fn or reference_reply_fn()
    rng = random.Random(seed)
    traces: list[Trace] = []
    for problem in problems:
        if rng.random() < cfg.eval_frac:
            traces.append(self_trace(problem, rng, cfg, eval_mode=True))
            continue
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
