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

_BOX_CMDS = ("\\boxed", "\\fbox")
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
_TRAILING_WORDS = re.compile(r"^([-+]?[\d.,/]+\s*(?:\\%|%)?)\s*(?:[A-Za-z]{2,}\.?\s*)+$")
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
    """Content of the last balanced ``\\boxed{}``; linear in ``len(text)``."""
    starts = [i for cmd in _BOX_CMDS for i in _find_all(text, cmd)]
    if not starts:
        return None
    starts.sort()
    # Fast path: the last box is usually balanced; only scan from it.
    for idx in reversed(starts):
        body = _box_body(text, idx, None)
        if body is not None:
            return body
        break
    # Slow path (unbalanced last box): one pass from the first box gives every match.
    matches = _match_braces(text, starts[0])
    for idx in reversed(starts[:-1]):
        body = _box_body(text, idx, matches)
        if body is not None:
            return body
    return None


def _find_all(text: str, needle: str) -> list[int]:
    out, i = [], text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + 1)
    return out


def _box_body(text: str, idx: int, matches: dict[int, int] | None) -> str | None:
    cmd_end = text.find("{", idx)
    name_end = idx + (6 if text.startswith("\\boxed", idx) else 5)
    between = text[name_end:cmd_end] if cmd_end >= 0 else text[name_end:name_end + 1]
    if cmd_end < 0 or between.strip():
        # "\boxed 5" form: the next whitespace-delimited token.
        m = re.match(r"\s+([^\s$]+)", text[name_end:name_end + 200])
        return m.group(1) if m else None
    if matches is not None:
        close = matches.get(cmd_end, -1)
    else:
        close = _match_one(text, cmd_end)
    return text[cmd_end + 1:close] if close >= 0 else None


def _match_one(text: str, open_idx: int) -> int:
    depth = 0
    for m in _BRACE.finditer(text, open_idx):
        tok = m.group()
        if len(tok) == 2:
            continue  # escaped \{ or \} is content, not grouping
        depth += 1 if tok == "{" else -1
        if depth == 0:
            return m.start()
    return -1


def _match_braces(text: str, start: int) -> dict[int, int]:
    stack: list[int] = []
    out: dict[int, int] = {}
    for m in _BRACE.finditer(text, start):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            out[stack.pop()] = m.start()
    return out


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
    # "x is $5$": keep the last $...$ span when the rest is words.
    if s.count("$") >= 2 and not s.startswith("$"):
        j = s.rfind("$")
        i = s.rfind("$", 0, j)
        return s[i + 1:j].strip()
    return s
