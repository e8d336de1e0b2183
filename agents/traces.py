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
* ``workflow`` (``workflow_frac`` > 0): the expert-assisted workflow of ``eapo eval --expert``: the
  evaluation prompt whose question carries an experts block (what
  :func:`agents.baselines.workflow_problems` shows), then the policy's own worked solution.

What the policy writes after a reply is ``reply_turn``: ``"answer"`` (the shipped tiny base: a bare
``<answer>``, which teaches "consult, copy the number") or ``"solve"`` (the expert-reader recipe:
its *own* worked solution ending in the answer, the same text whether the reply was the full
solution, a ``hint`` without the final answer, or ``unavailable``) or ``"continue"`` (the
expert-reader-continue recipe: the policy carries out what the reply leaves undone, restating the
unfinished step, so a small model need not re-copy a long reply it cannot copy faithfully). With ``hint_prob`` > 0 that
share of consult/workflow traces shows ``hint`` replies (:func:`eapo_env.experts.simple.withhold_answer`),
so the policy must carry out the last steps itself (DESIGN §8).

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
ReplyTurn = Literal["answer", "solve", "continue"]
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
        reply_turn: the turn after the experts block: ``"answer"`` (bare answer), ``"solve"`` (the
            solution's steps, when at most ``max_reason_chars``, then the answer) or ``"continue"``
            (the steps the reply leaves undone, see :func:`continuation`, then the answer; all the
            steps when no reply came).
        hint_prob: share of consult and workflow traces whose replies are ``hint`` replies (no
            final answer) instead of the reference solution. 0 draws nothing (old traces unchanged).
        hint_first_step_prob: among hint traces, share with only the first worked step.
        workflow_frac: share of all traces in the expert-assisted workflow format (evaluation
            prompt, replies inside the question). 0 draws nothing.
        workflow_max_replies: replies in a workflow trace's experts block (1..this, uniform).
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
    reply_turn: ReplyTurn = "answer"
    hint_prob: float = 0.0
    hint_first_step_prob: float = 0.0
    workflow_frac: float = 0.0
    workflow_max_replies: int = 1


def solution_steps(problem: Problem) -> str:
    """The worked solution without its closing ``The answer is \\boxed{X}.`` sentence."""
    return _BOXED_TAIL.sub("", problem.solution).strip()


def solution_reply(problem: Problem, query: str) -> str:
    """Fallback expert: the worked solution, exactly what the ``reference`` expert replies."""
    return problem.solution or f"The answer is \\boxed{{{problem.answer}}}."


def hint_reply_fn(first_step: bool = False) -> ReplyFn:
    """Replies of the ``hint`` expert: the worked solution without its final answer (or its first step)."""
    from eapo_env.experts.simple import withhold_answer

    def reply(problem: Problem, query: str) -> str:
        text = withhold_answer(problem.solution, problem.answer)
        return text.split("\n", 1)[0] if first_step else text

    return reply


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


def expert_solution_turn(problem: Problem) -> str:
    """The reference's whole worked solution written as the policy's answer turn (steps, then the answer
    tag): the member off-policy guidance adds to a group (:mod:`agents.guidance`)."""
    return _answer(solution_steps(problem), problem.answer)


def _own_solution(problem: Problem, cfg: TraceConfig) -> str:
    """The policy's own worked solution: the steps (when short enough), then the answer."""
    steps = solution_steps(problem)
    return _answer(steps if 0 < len(steps) <= cfg.max_reason_chars else "", problem.answer)


def continuation(steps: str, reply: str) -> str:
    r"""What is left of the worked ``steps`` after ``reply``: the steps from the first one the reply
    does not finish. A hint cut inside a formula restarts at that formula's ``$``, so the policy
    states the expression it computes; a reply sharing nothing leaves all the steps.

    Example:
        >>> continuation("$17 + 8 = 25$, $25 - 4 = 21$.", "$17 + 8 = 25$, $25 - 4$.")
        '$25 - 4 = 21$.'
        >>> continuation("First: $2 + 3 = 5$.\nThen: $5 - 1 = 4$.", "First: $2 + 3 = 5$.")
        'Then: $5 - 1 = 4$.'
    """
    shared = 0
    for a, b in zip(steps, reply):
        if a != b:
            break
        shared += 1
    if steps[:shared].count("$") % 2 == 1:  # cut inside a formula: restate it from its opening $
        shared = steps.rfind("$", 0, shared)
    return steps[shared:].strip()


def _reply_turn(problem: Problem, replies: Sequence[str | None], cfg: TraceConfig) -> str:
    """The policy's turn after the experts block (``cfg.reply_turn``; see the module docstring)."""
    if cfg.reply_turn == "answer":
        return _answer("", problem.answer)
    shown = [r for r in replies if r is not None]
    if cfg.reply_turn == "solve" or not shown:
        return _own_solution(problem, cfg)
    return _answer(continuation(solution_steps(problem), shown[0]), problem.answer)


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
    turn = _reply_turn(problem, replies, cfg)
    turn = f"{prefix} {turn}" if prefix else turn
    return [
        _prompt(problem, cfg),
        ("policy", _consult(queries)),
        ("expert", render_experts_block(replies)),
        ("policy", turn),
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


def workflow_trace(problem: Problem, rng: random.Random, cfg: TraceConfig, reply_fn: ReplyFn = solution_reply) -> Trace:
    """The expert-assisted workflow: the evaluation prompt whose question carries the replies, then
    the policy's own worked solution (byte for byte what ``eapo eval --expert`` shows the policy)."""
    n = rng.randint(1, cfg.workflow_max_replies) if cfg.workflow_max_replies > 1 else 1
    replies = [None if rng.random() < cfg.unavailable_prob else reply_fn(problem, problem.question) for _ in range(n)]
    question = problem.question + render_experts_block(replies)
    prompt = render_prompt(question, eval_mode=True, max_experts=cfg.max_experts, max_turns=cfg.max_turns)
    return [("prompt", prompt), ("policy", _reply_turn(problem, replies, cfg))]


def _reply_source(rng: random.Random, cfg: TraceConfig, reference: ReplyFn, hints: tuple[ReplyFn, ReplyFn]) -> ReplyFn:
    """The reference replies, or (``hint_prob``) hint replies; no draw at all when hints are off."""
    if cfg.hint_prob <= 0 or rng.random() >= cfg.hint_prob:
        return reference
    return hints[1] if rng.random() < cfg.hint_first_step_prob else hints[0]


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
    hints = (hint_reply_fn(False), hint_reply_fn(True))
    rng = random.Random(seed)
    traces: list[Trace] = []
    for problem in problems:
        if cfg.workflow_frac > 0 and rng.random() < cfg.workflow_frac:
            traces.append(workflow_trace(problem, rng, cfg, _reply_source(rng, cfg, fn, hints)))
            continue
        if rng.random() < cfg.eval_frac:
            traces.append(self_trace(problem, rng, cfg, eval_mode=True))
            continue
        weights = list(cfg.mix)
        if _level(problem) not in cfg.self_levels:
            weights[0] = 0.0
        paradigm = rng.choices(PARADIGMS, weights=weights)[0]
        source = fn if paradigm == "self" else _reply_source(rng, cfg, fn, hints)
        traces.append(make_trace(problem, paradigm, rng, cfg, source))
    return traces


def trace_text(trace: Trace) -> str:
    """The whole transcript as one string (for the tokenizer corpus and for reading)."""
    return "".join(text for _, text in trace)


def policy_text(trace: Trace) -> str:
    """Only what the policy wrote."""
    return "".join(text for source, text in trace if source == "policy")
