"""``verify``: the tiered answer checker (fast exact tier, bounded symbolic tier, sympy fallback).

Order of work for ``answer_type="math"``:

1. Extract (:mod:`.final`): the ``<answer>`` body, else the last balanced ``\\boxed`` with the
   boxes grouped with it, unless a final-answer sentence follows it; prose without a box is read
   for its final-answer sentence or last number; anything else is read whole. A bare integer
   skips all of it (the hot path of RL answers).
2. Fast tier: both sides plain numbers -> exact ``Fraction`` comparison (no sympy, no mpmath).
3. Normalise (leading words, delimiters, units), retry the fast tier.
4. Read both sides into trees (:mod:`.answers`: lists, labels, chains, decimal comma; the safe
   parser of :mod:`.parser`) and compare them structurally (:mod:`.equivalence`: sets, tuples,
   intervals, matrices, relations, ``\\pm``) with the bounded evaluator at the leaves.
5. Only when a leaf is undecidable (e.g. two different towers of powers): sympy in a killable
   worker process, within what is left of ``timeout_s``.

The rules on which users disagree are fields of :class:`.options.VerifyOptions` (``options=``).

Statuses: ``unparseable`` when the prediction has no answer or falls outside the grammar;
``error`` when the gold itself cannot be parsed (a data problem, not the policy's) or on an
internal failure; ``timeout`` when the budget runs out. Non-``str`` inputs raise TypeError and
an unknown ``answer_type`` raises ValueError (caller bugs); nothing else raises.

Example:
    >>> verify("so the answer is <answer>1,000</answer>", "1000")
    Verdict(status='correct', score=1.0)
    >>> verify(r"\\boxed{2\\sqrt{2}}", r"\\sqrt{8}").correct
    True
    >>> verify("asdf", "5").status
    'unparseable'
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from . import worker
from ._types import (
    CORRECT,
    ERROR,
    INCORRECT,
    MAX_ANSWER_CHARS,
    TIMEOUT,
    UNPARSEABLE,
    ParseFailure,
    Verdict,
    VerifyTimeout,
)
from .answers import read_answer
from .equivalence import equivalent
from .evaluate import scalar_equal
from .extract import clean_answer, extract_answer
from .fast import MIN_TOLERANT_DECIMALS, Num, numbers_match, parse_number
from .final import find_answer
from .options import DEFAULT_OPTIONS, VerifyOptions
from .parser import Node
from .text import f1_score, normalize_text

ANSWER_TYPES = ("math", "text")


def verify(
    prediction: str,
    gold: str,
    *,
    answer_type: str = "math",
    timeout_s: float = 1.0,
    options: VerifyOptions | None = None,
) -> Verdict:
    """Check ``prediction`` against ``gold``; never raises for ``str`` inputs.

    ``score`` is 1.0 for a correct math answer and 0.0 otherwise; for ``answer_type="text"``
    it is the token F1 and the status is ``correct`` only on a normalised exact match.

    Example:
        >>> verify("<answer>The Eiffel Tower</answer>", "Eiffel Tower", answer_type="text")
        Verdict(status='correct', score=1.0)
    """
    if not isinstance(prediction, str) or not isinstance(gold, str):
        raise TypeError("verify() takes two str arguments")
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"answer_type must be one of {ANSWER_TYPES}, not {answer_type!r}")
    try:
        if answer_type == "text":
            return _verify_text(prediction, gold)
        return _verify_math(prediction, gold, float(timeout_s), options or DEFAULT_OPTIONS)
    except VerifyTimeout:
        return TIMEOUT
    except (ParseFailure, RecursionError):
        return UNPARSEABLE
    except Exception:  # noqa: BLE001 - a failure is a status, never a crash (DESIGN §5)
        return ERROR


def verify_many(
    predictions: Sequence[str], golds: Sequence[str], *, answer_type: str = "math", timeout_s: float = 1.0
) -> list[Verdict]:
    """``[verify(p, g) for p, g in zip(predictions, golds)]``, for a batch (a vector env's answers).

    Integer answers against integer-decidable golds (the AIME case, most of a batch) are decided in
    the loop itself, by exactly the rule :func:`verify` applies first; every other pair goes through
    :func:`verify`.

    Example:
        >>> [v.status for v in verify_many(["12", "asdf", "-3"], ["12", "5", "0.5"])]
        ['correct', 'unparseable', 'incorrect']
    """
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions but {len(golds)} golds")
    if answer_type != "math":
        return [verify(p, g, answer_type=answer_type, timeout_s=timeout_s) for p, g in zip(predictions, golds)]
    out: list[Verdict] = []
    append = out.append
    for p, g in zip(predictions, golds):
        if type(p) is str and type(g) is str and "\\" not in p and "<answer>" not in p:
            q = p.strip()  # _candidate's no-extraction case
            verdict = _integer_verdict(q, _gold_forms(g)) if q else None
            if verdict is not None:
                append(verdict)
                continue
        append(verify(p, g, answer_type=answer_type, timeout_s=timeout_s))
    return out


def _candidate(text: str, options: VerifyOptions = DEFAULT_OPTIONS) -> str:
    if "\\" not in text and "<answer>" not in text:
        s = text.strip()
        if not s or (len(s) < 400 and _is_int(s)):
            return s  # a bare integer: nothing to extract, the hot path for env answers
    found = find_answer(text, options)
    return text.strip() if found is None else found.strip()


def _text_candidate(text: str) -> str:
    found = extract_answer(text)  # a tag or a box; never the number-hunting prose rule of math answers
    return (found if found is not None else text).strip()


def _verify_text(prediction: str, gold: str) -> Verdict:
    p, g = _text_candidate(prediction), _text_candidate(gold)
    score = f1_score(p, g)
    exact = normalize_text(p) == normalize_text(g)
    return Verdict("correct" if exact else "incorrect", 1.0 if exact else min(score, 1.0))


class _Gold(NamedTuple):
    text: str  # the extracted answer
    number: Num | None  # its plain-number form (None for a plain integer: built on demand)
    int_value: int | None  # its value when that is an integer
    int_decides: bool  # a plain-integer prediction is decided by comparing with int_value alone


@functools.lru_cache(maxsize=65536)
def _gold_forms(gold: str) -> _Gold:
    """The gold's answer text and number forms, parsed once per distinct gold string.

    A reference answer is trusted data that every episode of its problem (and every sample of a
    GRPO group) is verified against. Predictions and verdicts are never cached. One ``str``
    argument: the cache's cheapest key (the hot path); other options use :func:`_gold_forms_with`.
    """
    return _gold_forms_with(gold, DEFAULT_OPTIONS)


@functools.lru_cache(maxsize=4096)
def _gold_forms_with(gold: str, options: VerifyOptions) -> _Gold:
    """:func:`_gold_forms` under non-default options."""
    g = _candidate(gold, options)
    if not g or len(g) > MAX_ANSWER_CHARS:
        return _Gold(g, None, None, False)
    if len(g) < 400 and _is_int(g):  # a plain integer: its Fraction form is built only if ever needed
        return _Gold(g, None, int(g), True)
    n = parse_number(g)
    if n is None:
        return _Gold(g, None, None, False)
    int_value = n.value.numerator if n.value.denominator == 1 else None
    # An integer prediction carries no rounding tolerance; the gold has none below
    # MIN_TOLERANT_DECIMALS digits, and percent golds have their own rule (numbers_match).
    return _Gold(g, n, int_value, not n.percent and n.decimals < min(options.float_rounding, MIN_TOLERANT_DECIMALS))


def _verify_math(prediction: str, gold_text: str, timeout_s: float, options: VerifyOptions) -> Verdict:
    p = _candidate(prediction, options)
    gold = _gold_forms(gold_text) if options is DEFAULT_OPTIONS else _gold_forms_with(gold_text, options)
    g, gn, g_int = gold.text, gold.number, gold.int_value
    if not p or len(p) > MAX_ANSWER_CHARS:
        return UNPARSEABLE
    if not g or len(g) > MAX_ANSWER_CHARS:
        return ERROR
    verdict = _integer_verdict(p, gold)
    if verdict is not None:
        return verdict
    pn = parse_number(p)
    if gn is None and g_int is not None:
        gn = parse_number(g)  # an integer gold against a non-integer prediction
    digits = options.float_rounding
    if pn is not None and gn is not None:  # fast tier: the common case for AIME-style answers
        return CORRECT if numbers_match(pn, gn, digits) else INCORRECT
    # Labels stay: "x = 7" vs "y = 7" and "y = 2x" vs "2x - y = 0" are decided as relations.
    p, g = clean_answer(p, assignments=False)[0], clean_answer(g, assignments=False)[0]
    if not p:
        return UNPARSEABLE
    pn, gn = parse_number(p), parse_number(g)
    if pn is not None and gn is not None:
        return CORRECT if numbers_match(pn, gn, digits) else INCORRECT
    # The clock starts here: the tiers above are bounded by the input size, not by time.
    return _symbolic(p, g, pn, gn, time.perf_counter() + timeout_s, options)


def _integer_verdict(p: str, gold: _Gold) -> Verdict | None:
    """An integer answer (the AIME case) against an integer-decidable gold: exact, else None.

    ``p`` is a non-empty extracted answer; the first rule of :func:`verify`'s math tier, shared with
    :func:`verify_many`.
    """
    if gold.int_decides and len(p) < 400 and _is_int(p):
        return CORRECT if int(p) == gold.int_value else INCORRECT
    return None


def _is_int(s: str) -> bool:
    """ASCII digits with an optional leading minus (``isdigit`` alone also admits ``²`` and friends)."""
    if s[0] == "-":
        s = s[1:]
    return s.isascii() and s.isdigit()


def _symbolic(p: str, g: str, pn: Num | None, gn: Num | None, deadline: float, options: VerifyOptions) -> Verdict:
    try:
        gt = _as_tree(g, gn, options)
    except ParseFailure:
        return CORRECT if _same_text(p, g) else ERROR  # gold outside the grammar: data issue
    try:
        pt = _as_tree(p, pn, options)
    except ParseFailure:
        return CORRECT if _same_text(p, g) else UNPARSEABLE
    rewrites = any(m in s for s in (p, g) for m in ("\\pm", "\\mp", "\\begin"))
    result = equivalent(pt, gt, deadline, _scalar_with_fallback, options, rewrites)
    return CORRECT if result else INCORRECT


def _as_tree(s: str, n: Num | None, options: VerifyOptions) -> Node:
    if n is not None:  # already parsed by the fast tier: keep its exact value and digits
        node: Node = ("num", n.value, n.decimals)
        return ("pct", node) if n.percent else node
    return read_answer(s, options)


def _scalar_with_fallback(a: Node, b: Node, deadline: float, tol: Fraction | None) -> bool | None:
    r = scalar_equal(a, b, deadline, tol)
    if r is not None:
        return r
    if a == b:
        return True  # identical trees, e.g. the same tower of powers on both sides
    left = deadline - time.perf_counter()
    if left <= 0:
        raise VerifyTimeout()
    return worker.decide(a, b, left)


def _same_text(p: str, g: str) -> bool:
    return "".join(p.split()).lower() == "".join(g.split()).lower()
