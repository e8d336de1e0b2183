"""Token F1 for free-text answers, with SQuAD's normalisation.

Normalisation: lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.
:func:`qa_match` and :func:`best_qa_match` are the QA task's scorer (SQuAD v1.1 / HotpotQA's
evaluation scripts): exact match and token-F1, HotpotQA's yes/no/noanswer rule, the best over golds.

Example:
    >>> f1_score("The Eiffel Tower", "eiffel tower")
    1.0
    >>> round(f1_score("Paris, France", "Paris"), 3)
    0.667
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(s: str) -> str:
    """SQuAD-style normalisation.

    Example:
        >>> normalize_text("  The  Answer: an Apple! ")
        'answer apple'
    """
    s = s.lower().translate(_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def f1_score(prediction: str, gold: str) -> float:
    """Token-level F1 between normalised ``prediction`` and ``gold`` (1.0 if both are empty).

    Example:
        >>> f1_score("", ""), f1_score("cat", "dog")
        (1.0, 0.0)
    """
    p, g = normalize_text(prediction).split(), normalize_text(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


#: HotpotQA's special answers: when either normalised side is one of these and the two differ, the
#: score is 0 (a "yes" must not earn partial F1 from a "yes, because ..." or vice versa).
SPECIAL_ANSWERS = frozenset({"yes", "no", "noanswer"})


class QAMatch(NamedTuple):
    """Exact match and token-F1 of one prediction (EM implies F1 = 1)."""

    exact_match: bool
    f1: float


def qa_match(prediction: str, gold: str) -> QAMatch:
    """EM and token-F1 of ``prediction`` against one ``gold``, with HotpotQA's yes/no/noanswer rule.

    Example:
        >>> qa_match("The Eiffel Tower!", "eiffel tower")
        QAMatch(exact_match=True, f1=1.0)
        >>> qa_match("yes it is", "yes")
        QAMatch(exact_match=False, f1=0.0)
    """
    p, g = normalize_text(prediction), normalize_text(gold)
    if p == g:
        return QAMatch(True, 1.0)
    if p in SPECIAL_ANSWERS or g in SPECIAL_ANSWERS:
        return QAMatch(False, 0.0)
    return QAMatch(False, min(f1_score(p, g), 1.0))


def best_qa_match(prediction: str, golds: Iterable[str]) -> QAMatch:
    """The best EM and the best F1 over ``golds``, each taken on its own (SQuAD's ``metric_max_over_ground_truths``).

    Raises:
        ValueError: ``golds`` is empty.

    Example:
        >>> best_qa_match("Paris", ["Lyon", "Paris, France"])
        QAMatch(exact_match=False, f1=0.6666666666666666)
    """
    matches = [qa_match(prediction, g) for g in golds]
    if not matches:
        raise ValueError("best_qa_match needs at least one gold answer")
    return QAMatch(any(m.exact_match for m in matches), max(m.f1 for m in matches))
