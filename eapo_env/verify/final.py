"""Where the final answer is in a text: ``<answer>``, boxes, or a final-answer sentence.

Order (DESIGN §5): the ``<answer>`` body; else the last ``\\boxed{}`` (with the boxes grouped
with it, see :mod:`.extract`), unless a final-answer sentence ("Final Answer: ...", "The final
answer is ...") comes after it; else, for prose (words, several ``$...$`` pieces), the
final-answer sentence, or failing that the last math piece or number of the text. Plain short
answers (``x = 7``, ``\\frac{3}{4}``, ``12 cm``) are read whole by the caller.

Inside the chosen span the answer is the last math piece (``$...$``, ``$$...$$``, ``\\(...\\)``,
``\\[...\\]``) or bare number (``2/3``, ``1,000.99``, ``28%``), whichever ends last, together
with the pieces just before it joined by ``,``/``and``/``or`` ("``$12$ and $13$``" -> ``12, 13``).
An inline ``$...$`` or ``\\(...\\)`` may not span a line break: such a pair is not math, and what
it encloses is not read at all. A number glued to letters (``AZYUK2A``) is not a number.

Only the last ``PROSE_WINDOW`` characters of a text are scanned, with linear-time scans.

Example:
    >>> prose_answer("Final Answer: The largest $n$ is 34.")
    '34'
    >>> prose_answer(r"The roots are $1$ and $2$, as checked.")
    '1, 2'
"""

from __future__ import annotations

import re

from ._types import MAX_ANSWER_CHARS
from .extract import last_box_group
from .lexer import FUNCS
from .options import VerifyOptions

PROSE_WINDOW = 4 * MAX_ANSWER_CHARS
_FINAL = re.compile(r"final\s+answer\s*(?:is\b|:)?|answer\s+is\b|answer\s*:", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?=\s+[A-Z\"'*<]|\s*$)|\n\s*\n|\bI hope\b")
_DELIM = re.compile(r"(?<!\\)\$\$|(?<!\\)\$|\\\(|\\\)|\\\[|\\\]")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_NUMBER = re.compile(r"(?<![\w.\\])[-+]?\d+(?:[.,]\d+)*(?:/\d+)?(?:\s*(?:\\?%|percent\b|pct\b))?")
_JOIN = re.compile(r"\s*(?:,|;|\band\b|\bor\b|\\quad|\\text\{\s*(?:and|or|,)\s*\})?\s*[\"']?\s*", re.IGNORECASE)
_PCT_AFTER = re.compile(r"\s*(?:\\?%|percent\b|pct\b)", re.IGNORECASE)
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_CMD_ARG = re.compile(r"\\[A-Za-z]+\*?(?:\s*\{[^{}]*\})?")
_MATH_WORDS = FUNCS | {"sqrt", "frac", "pi", "inf", "infty", "and", "or"}


def find_answer(text: str, options: VerifyOptions) -> str | None:
    """The answer text of ``text`` by the module's rules ("" if none), or None to read ``text`` whole.

    Example:
        >>> find_answer(r"\\boxed{200} ... Final Answer: The final answer is $10,455$.", VerifyOptions())
        '10,455'
    """
    start = text.find("<answer>")
    if start < 0:  # fast path: one plain box near the end ("... is $\\boxed{42}$."), the usual policy answer
        last = text.rfind("\\boxed{")
        close = text.find("}", last + 7) if last >= 0 else -1
        # No box may follow it (an \\fbox) nor start just before it (a group): "box" within 600 characters.
        if (
            close >= 0
            and len(text) - close < 12
            and text.find("{", last + 7, close) < 0
            and text.find("\\fbox", close) < 0
            and (not options.box_groups or text.rfind("box", max(0, last - 600), last) < 0)
        ):
            return text[last + 7 : close].strip()  # too little text after it for a final-answer sentence
    if start >= 0:
        end = text.find("</answer>", start + 8)
        if end >= 0:
            body = text[start + 8 : end]
            found = last_box_group(body, options.box_groups)
            return (", ".join(found[0]) if found is not None else body).strip()
    found = last_box_group(text, options.box_groups)
    if found is not None:
        rest = text[found[1] :]
        if options.prose_answers and _FINAL.search(rest[:PROSE_WINDOW]):
            later = prose_answer(rest)
            if later is not None:
                return later
        return ", ".join(found[0]).strip()
    if options.prose_answers and looks_like_prose(text):
        return prose_answer(text) or ""  # prose without any answer in it: nothing to read
    return None


def looks_like_prose(text: str) -> bool:
    """Words (not math names) or several math pieces: a sentence rather than a bare answer."""
    tail = text[-PROSE_WINDOW:]
    if "$" not in tail and "\\(" not in tail and "\\[" not in tail and _WORD.search(tail) is None:
        return False  # no math delimiters and no word at all: a bare answer (the common case)
    pieces, skipped = _math_pieces(tail)
    if len(pieces) >= 2 or skipped:
        return True
    if pieces:
        start, end, _ = pieces[0]
        outside = tail[:start] + " " + tail[end:]
        if outside.strip(" .\n"):
            return True  # "$28$ %", "$125$ miles", "Answer $9$"
    else:
        outside = tail
    outside = _CMD_ARG.sub(" ", outside)
    return any(w.lower() not in _MATH_WORDS for w in _WORD.findall(outside))


def prose_answer(text: str) -> str | None:
    """The answer of a prose text: its last final-answer sentence, else its last piece or number."""
    tail = text[-PROSE_WINDOW:]
    cut = tail.find("<|")  # a chat template's next turn ("<|im_start|>user") is not the answer
    if cut >= 0:
        tail = tail[:cut]
    last = None
    for found in _FINAL.finditer(tail):
        last = found
    if last is not None:
        span = tail[last.end() :]
        end = _SENTENCE_END.search(span)
        answer = _answer_in(span[: end.start()] if end else span)
        if answer is not None:
            return answer
    return _answer_in(tail)


def _math_pieces(span: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """Valid math pieces ``(start, end, content)`` and the skipped regions (inline pairs over a line)."""
    pieces: list[tuple[int, int, str]] = []
    skipped: list[tuple[int, int]] = []
    opener, open_at, content_at = "", -1, -1
    for m in _DELIM.finditer(span):
        tok = m.group()
        if not opener:
            if tok in _CLOSER:
                opener, open_at, content_at = tok, m.start(), m.end()
            continue
        if tok != _CLOSER[opener]:
            continue
        content = span[content_at : m.start()]
        if opener in ("$", "\\(") and "\n" in content:
            skipped.append((open_at, m.end()))
        else:
            pieces.append((open_at, m.end(), content.strip()))
        opener = ""
    return pieces, skipped


def _answer_in(span: str) -> str | None:
    """The last math piece or number of ``span``, with the pieces joined to it (module doc)."""
    pieces, skipped = _math_pieces(span)
    blocked = [(a, b) for a, b, _ in pieces] + skipped
    items = [(a, b, c) for a, b, c in pieces if c]
    for m in _NUMBER.finditer(span):
        if not any(a <= m.start() < b for a, b in blocked):
            items.append((m.start(), m.end(), m.group().strip()))
    if not items:
        return None
    items.sort()
    run = [items[-1]]
    for item in reversed(items[:-1]):
        if item[1] > run[-1][0] or not _JOIN.fullmatch(span[item[1] : run[-1][0]]):
            break
        run.append(item)
    last_end = items[-1][1]
    pct = _PCT_AFTER.match(span, last_end)
    answer = ", ".join(c for _, _, c in reversed(run))
    if pct and items[-1] in pieces:  # "$28$ percent"
        answer += "%"
    return answer
