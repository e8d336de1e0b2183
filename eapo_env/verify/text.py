"""Token F1 for free-text answers, with SQuAD's normalisation.

Normalisation: lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace.

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
