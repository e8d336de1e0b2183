"""Answer verification for EAPO (DESIGN §5): ``verify(prediction, gold) -> Verdict``.

Three tiers: a fast exact tier for plain numbers (pure ``str``/``int``/``Fraction`` work), a
bounded symbolic tier (own safe parser, exact rationals, 50-digit numerics, random-point
checks for expressions with variables), and a sympy fallback in a killable worker process that
gives a hard timeout from any thread or event loop. Text answers get SQuAD token F1.
No untrusted text is ever passed to ``eval``, ``exec``, ``sympify`` or ``parse_expr``.
Answer forms of MATH-style data (prose final answers, several boxes, lists, labelled answers,
chained equalities, intervals and unions, matrices, relations, ``\\pm``, decimal commas) are
read as structured values; :class:`VerifyOptions` holds the rules users may want changed.

Example:
    >>> from eapo_env.verify import verify
    >>> verify(r"The answer is \\boxed{\\dfrac{3}{4}}.", "0.75")
    Verdict(status='correct', score=1.0)
    >>> verify("x = 7", "7").correct, verify("8", "7").status
    (True, 'incorrect')
"""

from ._types import VERDICT_STATUSES, Verdict
from .core import ANSWER_TYPES, verify, verify_many
from .extract import clean_answer, extract_answer
from .options import VerifyOptions
from .problem import math_gold, verify_problem
from .text import QAMatch, best_qa_match, f1_score, normalize_text, qa_match
from .worker import warm_up

__all__ = [
    "ANSWER_TYPES",
    "QAMatch",
    "VERDICT_STATUSES",
    "Verdict",
    "VerifyOptions",
    "best_qa_match",
    "clean_answer",
    "extract_answer",
    "f1_score",
    "math_gold",
    "normalize_text",
    "qa_match",
    "verify",
    "verify_many",
    "verify_problem",
    "warm_up",
]
