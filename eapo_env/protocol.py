"""The action protocol: parse one policy turn into *reason*, *consult* or *answer*.

Grammar (tags are literal and case-sensitive)::

    free reasoning text (optionally inside <think>...</think>)
    <consult><query>q1</query><query>q2</query>...</consult>     # 1..K queries
    <answer>final answer</answer>

Resolution (DESIGN §3): the first *complete* ``<answer>…</answer>`` or ``<consult>…</consult>``
block — the one whose closing tag comes first and has an opening tag before it — decides the turn.
Its body starts after the *last* opening tag before that closing tag, so a repeated or nested
opener (``<answer>1 <answer>2</answer>``) resolves to the innermost body (``2``). No complete block
means a reasoning turn. Inside a consult, ``<query>…</query>`` pairs are read in order; an unclosed
trailing ``<query>`` is ignored; blank queries are dropped; queries beyond ``max_queries`` are dropped
and counted. A consult with no query left is a format error.

The parser only ever reads the action string; it is linear in its length and never raises for any
``str`` input.

Example:
    >>> a = parse_action("Let me ask. <consult><query>What is 6*7?</query></consult>", max_queries=3)
    >>> a.kind, a.queries
    ('consult', ('What is 6*7?',))
    >>> parse_action("so <answer>42</answer> done", 3).answer
    '42'
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
CONSULT_OPEN, CONSULT_CLOSE = "<consult>", "</consult>"
QUERY_OPEN, QUERY_CLOSE = "<query>", "</query>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
EXPERTS_OPEN, EXPERTS_CLOSE = "<experts>", "</experts>"
#: Generation stops at the first of these (a turn is over once a block closes).
STOP_STRINGS: tuple[str, ...] = (CONSULT_CLOSE, ANSWER_CLOSE)
#: Every tag of the protocol; tokenizers add them as single tokens.
PROTOCOL_TAGS: tuple[str, ...] = (
    THINK_OPEN,
    THINK_CLOSE,
    CONSULT_OPEN,
    CONSULT_CLOSE,
    QUERY_OPEN,
    QUERY_CLOSE,
    ANSWER_OPEN,
    ANSWER_CLOSE,
    EXPERTS_OPEN,
    EXPERTS_CLOSE,
)

ActionKind = Literal["reason", "consult", "answer"]
FormatError = Literal["", "empty_consult"]


class ParsedAction(NamedTuple):
    """The meaning of one policy turn (an immutable NamedTuple).

    Attributes:
        kind: ``"reason"``, ``"consult"`` or ``"answer"``.
        answer: the answer body, stripped (``kind == "answer"`` only).
        queries: the kept queries, stripped, at most ``max_queries`` (``kind == "consult"`` only).
        dropped_queries: non-blank queries beyond ``max_queries``, dropped.
        blank_queries: empty or whitespace-only queries, dropped.
        format_error: ``"empty_consult"`` when a consult kept no query, else ``""``.
    """

    kind: ActionKind
    answer: str | None = None
    queries: tuple[str, ...] = ()
    dropped_queries: int = 0
    blank_queries: int = 0
    format_error: FormatError = ""


REASON = ParsedAction("reason")


#: The closing tags that can decide a turn; one C-level scan finds the first of them.
_BLOCK_CLOSE = re.compile(r"</(answer|consult)>")


def parse_action(action: str, max_queries: int) -> ParsedAction:
    """Parse one policy turn. Never raises for a ``str``; see the module docstring for the rules."""
    if not isinstance(action, str):
        raise TypeError(f"action must be str, got {type(action).__name__}")
    search = _BLOCK_CLOSE.search
    # Where an opener may still be: a failed rfind proves there is none before that closing tag,
    # so the next search starts there (keeps many stray closers linear, not quadratic). A policy
    # that stops at the closing tag leaves the loop on its first pass.
    answer_from = consult_from = 0
    match = search(action)
    while match is not None:
        close = match.start()
        if action[close + 2] == "a":  # "</answer>"
            start = action.rfind(ANSWER_OPEN, answer_from, close)
            if start >= 0:
                return ParsedAction("answer", action[start + len(ANSWER_OPEN) : close].strip())
            answer_from = close
        else:
            start = action.rfind(CONSULT_OPEN, consult_from, close)
            if start >= 0:
                return _consult_action(action[start + len(CONSULT_OPEN) : close], max_queries)
            consult_from = close
        match = search(action, match.end())  # a stray closing tag: keep looking after it
    return REASON


def _consult_action(body: str, max_queries: int) -> ParsedAction:
    """The consult whose block body is ``body``.

    Each ``</query>`` closes the text after the last ``<query>`` before it (a repeated opener
    starts the query afresh, as for blocks); a closer with no opener since the previous closer
    is stray and ignored, and so is an unclosed trailing query. One ``str.split`` pass over the
    body; the last part is never closed.
    """
    texts = []
    for part in body.split(QUERY_CLOSE)[:-1]:
        opener = part.rfind(QUERY_OPEN)
        if opener >= 0:
            texts.append(part[opener + len(QUERY_OPEN) :].strip())
    queries = [q for q in texts if q]
    blank = len(texts) - len(queries)
    kept = tuple(queries[:max_queries])
    return ParsedAction("consult", None, kept, len(queries) - len(kept), blank, "" if kept else "empty_consult")


def escape_expert_text(text: str) -> str:
    """Make expert text safe to embed in an experts block.

    Every ``</expert`` (which also covers ``</experts>``) becomes ``<\\/expert``, so the transcript
    always parses back into the same entries; an existing ``<\\`` is doubled first so that
    :func:`unescape_expert_text` is an exact inverse (no expert text is ever lost).
    """
    if "</expert" not in text and "<\\" not in text:
        return text
    return text.replace("<\\", "<\\\\").replace("</expert", "<\\/expert")


def unescape_expert_text(text: str) -> str:
    """Exact inverse of :func:`escape_expert_text`."""
    return text.replace("<\\/expert", "</expert").replace("<\\\\", "<\\")
