"""``VerifyOptions``: the few verification rules on which users reasonably disagree.

Every field has the default that matches math-verify's own test suite; pass another instance to
:func:`eapo_env.verify.verify` (``options=``) to change a rule.

Example:
    >>> from eapo_env.verify import verify
    >>> verify("0.33", r"\\frac{1}{3}").status
    'incorrect'
    >>> verify("0.33", r"\\frac{1}{3}", options=VerifyOptions(float_rounding=2)).status
    'correct'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """Configurable rules of :func:`eapo_env.verify.verify`.

    Attributes:
        float_rounding: a decimal written with at least this many fractional digits also
            matches any value that rounds to it (``0.333333`` ~ ``1/3`` at 6; ``0.33`` at 2).
        relation_matches_set_gold: a relation in the prediction (``-2 <= x <= 7``) may match a
            set-membership gold (``x \\in [-2, 7]``). The other direction is always allowed.
        box_groups: boxes separated only by a short connector (``\\boxed{1}, \\boxed{2}``)
            form one list answer, in a prediction as in a gold (where it means a set of
            answers the prediction must list); off: the last box alone is the answer.
        prose_answers: without ``<answer>`` or ``\\boxed``, read a final-answer sentence
            ("The final answer is ...", "Final Answer: ...") or the last ``$...$`` of the
            text; off: such a prediction is read whole (usually ``unparseable``).
        decimal_comma: a whole answer ``a,bc`` (one comma, not three digits after it) or
            ``0,bcd`` is a decimal in European notation (``1000,99`` = 1000.99); off: a list.

    Example:
        >>> VerifyOptions().float_rounding
        6
    """

    float_rounding: int = 6
    relation_matches_set_gold: bool = False
    box_groups: bool = True
    prose_answers: bool = True
    decimal_comma: bool = True


DEFAULT_OPTIONS = VerifyOptions()
