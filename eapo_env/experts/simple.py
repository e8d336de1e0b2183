r"""Embedded experts with no server: ``reference``, ``hint``, ``constant`` and ``noisy``.

``reference``, ``hint`` and ``constant`` are :class:`SyncExpert` s (pure CPU, a few µs per request), so the env
calls their ``consult_sync`` directly and never touches an event loop.

Example:
    >>> from eapo_env.experts import ExpertRequest
    >>> from eapo_env.problems import Problem
    >>> p = Problem("toy/1", "What is $2+3$?", "5", "$2+3=5$.\nThe answer is \\boxed{5}.")
    >>> ReferenceExpert().consult_sync([ExpertRequest("r0", p, "what is the sum?")])[0].text
    '$2+3=5$.\nThe answer is \\boxed{5}.'
    >>> NoisyExpert(error_rate=1.0).consult_sync([ExpertRequest("r0", p, "q")])[0].text
    '$2+3=5$.\nThe answer is \\boxed{3}.'
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

from eapo_env.experts.base import Expert, ExpertReply, ExpertRequest, SyncExpert
from eapo_env.problems.base import Problem

MEANINGLESS = "I cannot offer you any assistance; please resolve the issue yourself."


def _approx_tokens(text: str) -> int:
    # A real tokenizer would cost far more than the expert itself; ~4 characters per token is the
    # usual estimate for English/LaTeX and is only used for call-cost accounting.
    return (len(text) + 3) // 4


class ReferenceExpert(SyncExpert):
    r"""Answers every query with the problem's worked solution (the embedded default expert).

    The query is deliberately ignored: whatever the policy asks (the whole problem, a hint, a
    sub-question), the reply is the same full worked solution, which ends with the boxed answer.
    That keeps it deterministic and makes it the strongest possible expert, the upper bound the
    noisy/constant experts are measured against. Problems without a solution get
    ``"The answer is \boxed{<answer>}."``.

    Example:
        >>> from eapo_env.problems import Problem
        >>> ReferenceExpert().consult_sync([ExpertRequest("r", Problem("p", "2+2?", "4"), "hint")])[0].text
        'The answer is \\boxed{4}.'
    """

    name = "reference"

    def __init__(self, cache_size: int = 65536) -> None:
        # Replies are frozen and latency-free, so one per problem is built once and shared.
        self.cache_size = int(cache_size)
        self._cache: dict[tuple[str, str, str], ExpertReply] = {}

    @staticmethod
    def reply_for(problem: Problem) -> ExpertReply:
        """The reply every query about ``problem`` gets."""
        text = problem.solution or f"The answer is \\boxed{{{problem.answer}}}."
        return ExpertReply(text, "ok", 0.0, _approx_tokens(text), "reference")

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return [self._reply(request.problem) for request in requests]

    def _reply(self, problem: Problem) -> ExpertReply:
        key = (problem.id, problem.solution, problem.answer)  # what the reply is made of
        reply = self._cache.get(key)
        if reply is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            reply = self._cache[key] = self.reply_for(problem)
        return reply


class ConstantExpert(SyncExpert):
    """Always the same content-free text (the paper's "meaningless guidance" control).

    Example:
        >>> from eapo_env.problems import Problem
        >>> ConstantExpert("no.").consult_sync([ExpertRequest("r", Problem("p", "?", "1"), "q")])[0].text
        'no.'
    """

    name = "constant"

    def __init__(self, text: str = MEANINGLESS) -> None:
        self.text = str(text)
        self._tokens = _approx_tokens(self.text)

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        reply = ExpertReply(self.text, "ok", 0.0, self._tokens, self.name)
        return [reply] * len(requests)  # an immutable NamedTuple: sharing one instance is safe


# --------------------------------------------------------------------------- hints
_BOXED_SENTENCE = re.compile(r"\s*The answer is \\boxed\{.*\}\.\s*$", re.DOTALL)
#: A result: a relation sign, then a number or a fraction (the forms generated answers take).
_RESULT = re.compile(r"(=|\\equiv)\s*(-?(?:\\[dt]?frac\{-?\d+\}\{\d+\}|\d+(?:\.\d+)?))")
_RELATION = re.compile(r"(=|\\equiv)")
_TRAILING_RELATION = re.compile(r"\s*(=|\\equiv)\s*$")
_TRAILING_OPERATOR = re.compile(r"(\+|-|\\times|\\cdot|/)\s*$")
HINT_MODES = ("steps", "first_step")
#: Reply when withholding the answer leaves no worked step (e.g. ``x + 0 = 7``: nothing to show).
NO_STEPS_HINT = "Isolate the unknown and compute it step by step."


def _standalone(answer: str) -> re.Pattern[str]:
    # The answer as a whole number/fraction: not a piece of 12, -2, 2.5, \frac{2}{..} or 2!.
    return re.compile(r"(?<![\w.\\{}-])" + re.escape(answer) + r"(?![\w.}!])")


def _close(text: str) -> str:
    """Tidy a cut: drop a dangling relation, mark a dangling operator, close an open ``$``."""
    text = text.rstrip()
    if text.endswith("$") and text.count("$") % 2:
        text = text[:-1].rstrip()  # a math span opened right before the cut
    text = _TRAILING_RELATION.sub("", text)
    if _TRAILING_OPERATOR.search(text):
        text += r" \dots"
    if text.count("$") % 2:
        text += "$"
    return text + "." if text and text[-1] not in ".:;" else text


def _drop_trailing_results(text: str, answer: str) -> str:
    r"""Cut before the last result while it is ``answer`` (``x \equiv 7 \equiv 7`` loses both)."""
    while (results := list(_RESULT.finditer(text))) and results[-1].group(2) == answer:
        text = text[: results[-1].start()]
    return text


def withhold_answer(solution: str, answer: str) -> str:
    r"""The worked solution with its final result taken out: the last step is left to the reader.

    The closing ``The answer is \boxed{..}.`` goes; then the solution is cut before the last place
    where ``answer`` is stated as a result (``= answer`` / ``\equiv answer``), again while the new
    last result is still ``answer`` (``x \equiv 7 \equiv 7``), so a check line after the result
    goes too. When the answer is never stated after a relation (``480 = 12 \times 40 + 0``,
    ``Combine the numerators: $\frac{5}{12}$``), the cut is before its first occurrence after the
    last relation. Pure string work: deterministic, no problem-family knowledge.

    Example:
        >>> withhold_answer("$17 + 8 = 25$, $25 - 4 = 21$.\nThe answer is \\boxed{21}.", "21")
        '$17 + 8 = 25$, $25 - 4$.'
        >>> withhold_answer("Divide: $480 = 12 \\times 40 + 0$ with $0 \\le 0 < 12$.", "0")
        'Divide: $480 = 12 \\times 40 + \\dots$.'
    """
    text = _BOXED_SENTENCE.sub("", solution or "").strip()
    if "\\boxed{" in text:  # a free-form solution: keep what comes before its boxed answer
        text = text[: text.rfind("\\boxed{")]
    ans = (answer or "").strip()
    if not ans:
        return _close(text) if text else NO_STEPS_HINT
    stated = [m for m in _RESULT.finditer(text) if m.group(2) == ans]
    if stated:
        text = _drop_trailing_results(text[: stated[-1].start()], ans)
    else:
        relations = list(_RELATION.finditer(text))
        after = relations[-1].end() if relations else 0
        if m := _standalone(ans).search(text, after):
            text = text[: m.start()]
    text = _close(text)
    return text if text.strip(" .:;$") else NO_STEPS_HINT


class HintExpert(SyncExpert):
    r"""The worked solution **without its final answer**: help the policy must carry out itself.

    ``reference`` hands over the boxed answer, so RL on its replies reinforces copying, which is
    worthless once p(t) = 0 (DESIGN §8). A hint keeps the worked steps (``mode="steps"``) or only
    the first one (``mode="first_step"``) and withholds the final result (:func:`withhold_answer`):
    the policy must still compute the last step. Deterministic; the query is ignored, as with
    ``reference``.

    Example:
        >>> from eapo_env.problems import Problem
        >>> p = Problem("p", "Compute $2 \\times 3 + 4$.", "10",
        ...             "Products first: $2 \\times 3 = 6$.\n$6 + 4 = 10$.\nThe answer is \\boxed{10}.")
        >>> HintExpert().consult_sync([ExpertRequest("r", p, "hint")])[0].text
        'Products first: $2 \\times 3 = 6$.\n$6 + 4$.'
        >>> HintExpert(mode="first_step").consult_sync([ExpertRequest("r", p, "hint")])[0].text
        'Products first: $2 \\times 3 = 6$.'
    """

    name = "hint"

    def __init__(self, mode: str = "steps", cache_size: int = 65536) -> None:
        if mode not in HINT_MODES:
            raise ValueError(f"hint mode must be one of {HINT_MODES}, got {mode!r}")
        self.mode = mode
        self.cache_size = int(cache_size)
        self._cache: dict[tuple[str, str, str], ExpertReply] = {}

    def hint_for(self, problem: Problem) -> str:
        """The hint text for ``problem`` (what every query about it gets)."""
        text = withhold_answer(problem.solution, problem.answer)
        if self.mode == "steps" or "\n" not in text:
            return text
        # The first step alone may end on an intermediate that equals the answer (3 x 9 - 22 + 22).
        first = _drop_trailing_results(text.split("\n", 1)[0], problem.answer.strip())
        return _close(first) if first.strip(" .:;$") else NO_STEPS_HINT

    def consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return [self._reply(request.problem) for request in requests]

    def _reply(self, problem: Problem) -> ExpertReply:
        key = (problem.id, problem.solution, problem.answer)
        reply = self._cache.get(key)
        if reply is None:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            text = self.hint_for(problem)
            reply = self._cache[key] = ExpertReply(text, "ok", 0.0, _approx_tokens(text), self.name)
        return reply


# --------------------------------------------------------------------------- answer perturbation
_INT = re.compile(r"^-?\d+$|^-?\d{1,3}(,\d{3})+$")  # thousands separators count as integers
_DECIMAL = re.compile(r"^-?\d+\.\d+$")
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")
_LAST_INT = re.compile(r"\d+(?!.*\d)", re.S)


def perturb_answer(answer: str, draw: int) -> str:
    r"""A plausible wrong answer, different from ``answer``; ``draw`` picks the offset.

    Integers and decimals move by a non-zero offset in ±1..±3 and ``\frac{a}{b}`` changes its
    numerator (same denominator), so for these the *value* provably differs. Other math changes its
    last integer (textually different; a contrived expression such as ``1^2`` could keep its value),
    and text with no digits gets a fixed distractor.

    Example:
        >>> perturb_answer("28", 0), perturb_answer("\\frac{3}{4}", 1), perturb_answer("2x+1", 2)
        ('29', '\\frac{2}{4}', '2x+4')
    """
    offset = (1, -1, 3, 2, -2, -3)[draw % 6]
    a = answer.strip()
    if _INT.match(a):
        return str(int(a.replace(",", "")) + offset)
    if _DECIMAL.match(a):
        digits = len(a.split(".")[1])
        return f"{float(a) + offset:.{digits}f}"
    if m := _FRAC.match(a):
        sign, num, den = m.groups()
        new = int(num) + offset
        if new == 0:  # a zero numerator would be plausible but is not a fraction any more
            new = int(num) - offset
        return f"{sign}\\frac{{{new}}}{{{den}}}"
    if m := _LAST_INT.search(a):
        new = int(m.group()) + abs(offset)  # abs: never produce "--" inside an expression
        return a[: m.start()] + str(new) + a[m.end() :]
    return "none of these" if a.lower() != "none of these" else "all of these"


def _replace_last_boxed(text: str, new: str) -> str | None:
    r"""``text`` with the body of its last balanced ``\boxed{...}`` replaced, or None if it has none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    while i < len(text):
        c = text[i]
        depth += (c == "{") - (c == "}")
        if depth == 0:
            return text[: start + len("\\boxed{")] + new + text[i:]
        i += 1
    return None


class NoisyExpert:
    r"""Wraps another expert and makes a fraction ``error_rate`` of its ok replies wrong.

    A corrupted reply keeps the base's text but its last ``\boxed{}`` holds
    :func:`perturb_answer` of the gold answer (the worked steps stay, as a subtly wrong expert's
    would); a reply with no ``\boxed{}`` gets ``"The answer is \boxed{<wrong>}."`` appended. Failed
    base replies pass through unchanged.

    Whether a request is corrupted is a stable hash (BLAKE2b) of ``(seed, request_id, problem id,
    query)``, never a global RNG: the same request always gets the same reply, and different turns
    (different request ids) draw independently.

    The async :meth:`consult` delegates to the base's async ``consult`` (the base may be a network
    expert). ``consult_sync`` exists only when the base has one: it is a property that raises
    ``AttributeError`` otherwise, so ``getattr(expert, "consult_sync", None)`` (what
    ``consult_blocking`` checks) sees None and takes the event-loop path.

    Args:
        base: an expert object or a registered name (built with :func:`make_expert`).
        error_rate: probability in [0, 1] that an ok reply is corrupted.
        seed: salt of the hash.
    """

    name = "noisy"

    def __init__(self, base: str | Expert = "reference", error_rate: float = 0.3, seed: int = 0) -> None:
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate}")
        self.base: Expert = _build(base)
        self.error_rate = float(error_rate)
        self.seed = int(seed)
        self._threshold = int(self.error_rate * 2**64)  # corrupt iff hash < threshold
        self._base_sync = getattr(self.base, "consult_sync", None)
        self.name = f"noisy({getattr(self.base, 'name', type(self.base).__name__)})"

    @property
    def consult_sync(self) -> Callable[[Sequence[ExpertRequest]], list[ExpertReply]]:
        """The blocking path; only exists (no ``AttributeError``) when the base has one."""
        if self._base_sync is None:
            raise AttributeError(f"{self.name}: the base expert is async-only (no consult_sync)")
        return self._consult_sync

    def _consult_sync(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        assert self._base_sync is not None
        return self._apply(requests, self._base_sync(requests))

    def corrupts(self, request: ExpertRequest) -> bool:
        """Whether this request's reply is made wrong (deterministic)."""
        return self._draw(request)[0]

    def _draw(self, request: ExpertRequest) -> tuple[bool, int]:
        if self._threshold == 0:
            return False, 0
        key = f"{self.seed}\x1f{request.request_id}\x1f{request.problem.id}\x1f{request.query}".encode()
        h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        return h < self._threshold, h >> 61  # high bits pick the offset independently of the decision

    def _apply(self, requests: Sequence[ExpertRequest], replies: Sequence[ExpertReply]) -> list[ExpertReply]:
        out = list(replies)
        if len(out) != len(requests):
            return out  # let consult_blocking's normalisation report the broken base
        for i, (request, reply) in enumerate(zip(requests, out)):
            if not isinstance(reply, ExpertReply) or reply.status != "ok":
                continue
            corrupt, draw = self._draw(request)
            if not corrupt:
                continue
            wrong = perturb_answer(request.problem.answer, draw)
            text = _replace_last_boxed(reply.text, wrong)
            if text is None:
                text = f"{reply.text}\nThe answer is \\boxed{{{wrong}}}."
            out[i] = ExpertReply(text, "ok", reply.latency_s, reply.tokens, reply.expert or self.name, reply.error)
        return out

    async def consult(self, requests: Sequence[ExpertRequest]) -> list[ExpertReply]:
        return self._apply(requests, await self.base.consult(requests))


def _build(base: str | Expert) -> Expert:
    from eapo_env.experts.registry import make_expert  # lazy: the registry imports this module

    return make_expert(base) if isinstance(base, str) else base
