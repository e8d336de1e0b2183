"""Answer extraction (``<answer>`` / ``\\boxed``) and string normalisation.

Everything here is linear-time string work (``str.find``, non-backtracking regexes), so a
megabyte of policy output costs milliseconds, never a regex blow-up.

Example:
    >>> extract_answer("so <answer>$x = 7$ cm</answer>")
    '$x = 7$ cm'
    >>> extract_answer(r"we get \\boxed{\\frac{3}{4}}.")
    '\\\\frac{3}{4}'
    >>> clean_answer(r"The answer is $x = \\dfrac{3}{4}$.")
    ('\\\\frac{3}{4}', 'x')
"""

from __future__ import annotations

import re

from ._types import MAX_ANSWER_CHARS

_BOX_CMDS = ("\\boxed", "\\fbox")
_MAX_BOXES = 64
_BRACE = re.compile(r"\\[{}]|[{}]")

# Unicode and LaTeX spellings folded onto one form before anything else looks at the text.
_REPLACE = (
    ("\u2212", "-"), ("\u2013", "-"), ("\u00d7", "\\times "), ("\u00f7", "\\div "),
    ("\u03c0", "\\pi "), ("\u221a", "\\sqrt"), ("\u221e", "\\infty "), ("\u00b7", "\\cdot "),
    ("\u2264", "\\le "), ("\u2265", "\\ge "), ("\u2260", "\\ne "), ("{,}", ""),
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\dbinom", "\\binom"), ("\\tbinom", "\\binom"),
    ("\\left", ""), ("\\right", ""), ("\\displaystyle", ""), ("\\!", ""), ("\\,", ""),
    ("\\;", " "), ("\\:", " "), ("\\qquad", " "), ("\\quad", " "), ("\\ ", " "), ("~", " "),
    ("\\$", ""), ("\\lvert", "|"), ("\\rvert", "|"), ("\\vert", "|"),
)
_LEAD = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\s*,?\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:|=)?\s*",
    re.IGNORECASE,
)
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\u00b0|\\degree")
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|mbox|textrm|operatorname)\s*\{([^{}]*)\}$")
_TRAILING_TEXT = re.compile(r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\s*\{?\d\}?)?$")
# Possessive ``{2,}+``: without it "12 ab abab..." backtracks exponentially (a hang seen in RL).
_TRAILING_WORDS = re.compile(r"^([-+]?[\d.,/]+\s*(?:\\%|%)?)\s*(?:[A-Za-z]{2,}+\.?\s*)+$")
_ASSIGN = re.compile(r"^([A-Za-z]|\\[A-Za-z]+)\s*=\s*(?!=)(.+)$", re.DOTALL)
_PLAIN_INT = re.compile(r"[-+]?\d+")


def extract_answer(text: str) -> str | None:
    """Return the answer part of ``text``, or None when it holds no marked answer.

    The first complete ``<answer>...</answer>`` body wins (a ``\\boxed`` inside it is then
    unwrapped); otherwise the content of the last balanced ``\\boxed{...}`` / ``\\fbox{...}``.

    Example:
        >>> extract_answer(r"\\boxed{1} then \\boxed{2}"), extract_answer("no answer here")
        ('2', None)
    """
    start = text.find("<answer>")
    if start >= 0:
        end = text.find("</answer>", start + 8)
        if end >= 0:
            body = text[start + 8:end]
            boxed = _last_boxed(body)
            return (boxed if boxed is not None else body).strip()
    boxed = _last_boxed(text)
    return None if boxed is None else boxed.strip()


def _last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{}``.

    Cost is bounded whatever the text: at most ``_MAX_BOXES`` candidates, from the last, and
    each brace scan stops after ``MAX_ANSWER_CHARS`` characters (a longer box content is
    returned as is, and rejected later as too long).
    """
    last = text.rfind("\\boxed{")
    if last >= 0 and text.find("\\fbox", last) < 0:  # fast path: a last box without nesting
        close = text.find("}", last + 7)
        if close >= 0 and "{" not in text[last + 7:close]:
            return text[last + 7:close]
    starts = sorted(i for cmd in _BOX_CMDS for i in _find_last(text, cmd, _MAX_BOXES))
    for idx in reversed(starts[-_MAX_BOXES:]):
        body = _box_body(text, idx)
        if body is not None:
            return body
    return None


def _find_last(text: str, needle: str, k: int) -> list[int]:
    """Start indices of the last ``k`` occurrences of ``needle``."""
    out, i = [], text.rfind(needle)
    while i >= 0 and len(out) < k:
        out.append(i)
        i = text.rfind(needle, 0, i)
    return out


def _box_body(text: str, idx: int) -> str | None:
    name_end = idx + (6 if text.startswith("\\boxed", idx) else 5)
    open_idx = text.find("{", name_end, name_end + 64)
    if open_idx < 0 or text[name_end:open_idx].strip():
        # "\boxed 5" form: the next whitespace-delimited token.
        m = re.match(r"\s+([^\s$]+)", text[name_end:name_end + 200])
        return m.group(1) if m else None
    close = _match_one(text, open_idx)
    if close == -2:  # still open after MAX_ANSWER_CHARS: too long to be an answer
        return text[open_idx + 1:open_idx + MAX_ANSWER_CHARS + 2]
    return text[open_idx + 1:close] if close >= 0 else None


def _match_one(text: str, open_idx: int) -> int:
    """Index of the brace closing ``text[open_idx]``; -1 if none, -2 if beyond the window."""
    depth = 0
    limit = open_idx + MAX_ANSWER_CHARS + 1
    for m in _BRACE.finditer(text, open_idx, min(limit, len(text))):
        tok = m.group()
        if len(tok) == 2:
            continue  # escaped \{ or \} is content, not grouping
        depth += 1 if tok == "{" else -1
        if depth == 0:
            return m.start()
    return -2 if limit < len(text) else -1


def clean_answer(answer: str) -> tuple[str, str | None]:
    """Normalise an extracted answer; return ``(text, assigned_variable_or_None)``.

    Strips leading words, ``$``/``\\(``/``\\[`` delimiters, ``\\left``/``\\right`` and spacing
    commands, degree signs, trailing units and periods, and one ``x =`` assignment.

    Example:
        >>> clean_answer(r"\\[ 30^{\\circ} \\]"), clean_answer("12 cm."), clean_answer("y=2x+1")
        (('30', None), ('12', None), ('2x+1', 'y'))
    """
    s = answer.strip()
    if _PLAIN_INT.fullmatch(s):
        return s, None
    for old, new in _REPLACE:
        if old in s:
            s = s.replace(old, new)
    for _ in range(4):  # peel layers like "Answer: $\boxed{5}$." until stable
        prev = s
        s = _LEAD.sub("", s.strip()).strip()
        s = _strip_delims(s)
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        boxed = _last_boxed(s) if s.startswith(("\\boxed", "\\fbox")) else None
        if boxed is not None:
            s = boxed.strip()
        if s == prev:
            break
    s = _DEGREES.sub("", s).strip()
    s = _TRAILING_TEXT.sub("", s).strip()
    m = _TEXT_WRAP.match(s)
    if m:
        s = m.group(1).strip()
    m = _TRAILING_WORDS.match(s)
    if m:
        s = m.group(1).strip()
    var = None
    m = _ASSIGN.match(s)
    if m and "=" not in m.group(2):
        var, s = m.group(1), m.group(2).strip()
    return s, var


def _strip_delims(s: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            return s[len(left):len(s) - len(right)].strip()
    if s.count("$") == 1:  # a currency sign: "$5"
        return s.replace("$", "").strip()
    # "x is $5$": keep the last $...$ span when the rest is words.
    if s.count("$") >= 2 and not s.startswith("$"):
        j = s.rfind("$")
        i = s.rfind("$", 0, j)
        return s[i + 1:j].strip()
    return s
