"""Answer extraction (``<answer>`` / ``\\boxed``) and string normalisation.

Rules (DESIGN §5):

* the first complete ``<answer>...</answer>`` body wins (a ``\\boxed`` inside it is unwrapped);
* otherwise the last balanced ``\\boxed{}`` / ``\\fbox{}``, together with the boxes just before
  it when only a short connector separates them (``\\boxed{1}, \\boxed{2}``,
  ``\\boxed{(2,2)} \\text{ and } \\boxed{(6,2)}``): such a group is one list answer, read
  ``"1, 2"``. Boxes far apart (a draft box, then a final one) are not grouped: the last wins.
  ``box_groups=False`` keeps the last box alone.
* a final-answer sentence after the last box, and text without any box, are read by
  :mod:`.final` (configurable through :class:`.options.VerifyOptions`).

Normalisation folds Unicode and LaTeX spellings onto one form: ``\\dfrac``/``\\tfrac``/``\\cfrac``
-> ``\\frac``, ``\\left``/``\\right`` and spacing commands dropped, ``\\\\le`` (an escaped
backslash written twice) -> ``\\le`` outside matrices, and the thousands marks ``{,}`` and
``,\\!`` -> nothing (so ``32,\\! 349`` is 32349 while ``32, 349`` stays a list).

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
    ("\u2212", "-"),
    ("\u2013", "-"),
    ("\u00d7", "\\times "),
    ("\u00f7", "\\div "),
    ("\u03c0", "\\pi "),
    ("\u221a", "\\sqrt"),
    ("\u221e", "\\infty "),
    ("\u00b7", "\\cdot "),
    ("\u2264", "\\le "),
    ("\u2265", "\\ge "),
    ("\u2260", "\\ne "),
    ("{,}", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cfrac", "\\frac"),
    ("\\dbinom", "\\binom"),
    ("\\tbinom", "\\binom"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\displaystyle", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", " "),
    ("\\:", " "),
    ("\\qquad", " "),
    ("\\quad", " "),
    ("~", " "),
    ("\\$", ""),
    ("\\lvert", "|"),
    ("\\rvert", "|"),
    ("\\vert", "|"),
)
_LEAD = re.compile(
    r"^(?:(?:so|thus|therefore|hence)\s*,?\s+)?(?:the\s+)?(?:final\s+)?answer\s*(?:is\s*:?|:|=)?\s*",
    re.IGNORECASE,
)
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\u00b0|\\degree")
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|mathrm|mathbf|mbox|textrm|textnormal|operatorname)\s*\{([^{}]*)\}$")
_TRAILING_TEXT = re.compile(
    r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm|textbf|textnormal|textit)\s*\{\s*[A-Za-z][A-Za-z .]*\}(?:\^\s*\{?\d\}?)?$"
)
# Possessive ``{2,}+``: without it "12 ab abab..." backtracks exponentially (a hang seen in RL).
_TRAILING_WORDS = re.compile(r"^([-+]?[\d.,/]+\s*(?:\\%|%)?)\s*(?:[A-Za-z]{2,}+\.?\s*)+$")
_ASSIGN = re.compile(r"^([A-Za-z]|\\[A-Za-z]+)\s*=\s*(?!=)(.+)$", re.DOTALL)
_PLAIN_INT = re.compile(r"[-+]?\d+")


def extract_answer(text: str, box_groups: bool = True) -> str | None:
    """Return the answer part of ``text``, or None when it holds no marked answer.

    The first complete ``<answer>...</answer>`` body wins (a ``\\boxed`` inside it is then
    unwrapped); otherwise the content of the last balanced ``\\boxed{...}`` / ``\\fbox{...}``,
    joined with the boxes grouped with it (see the module doc).

    Example:
        >>> extract_answer(r"\\boxed{1} then \\boxed{2}"), extract_answer("no answer here")
        ('2', None)
        >>> extract_answer(r"$\\boxed{1}$ and $\\boxed{2}$")
        '1, 2'
    """
    start = text.find("<answer>")
    if start >= 0:
        end = text.find("</answer>", start + 8)
        if end >= 0:
            body = text[start + 8 : end]
            found = last_box_group(body, box_groups)
            return (", ".join(found[0]) if found is not None else body).strip()
    found = last_box_group(text, box_groups)
    return None if found is None else ", ".join(found[0]).strip()


def last_box_group(text: str, group: bool = True) -> tuple[list[str], int] | None:
    """Contents of the last balanced box (and of the boxes grouped with it), and where it ends.

    Cost is bounded whatever the text: at most ``_MAX_BOXES`` candidates, from the last, and
    each brace scan stops after ``MAX_ANSWER_CHARS`` characters (a longer box content is
    returned as is, and rejected later as too long).
    """
    last = text.rfind("\\boxed")
    if "\\fbox" not in text:
        if last < 0:
            return None
        if not group or "\\boxed" not in text[max(0, last - 600) : last]:  # fast path: one box, none just before
            close = text.find("}", last + 7)
            if text.startswith("{", last + 6) and close >= 0 and "{" not in text[last + 7 : close]:
                return [text[last + 7 : close]], close + 1
            box = _box_body(text, last)
            if box is not None:
                return [box[0]], box[1]
    starts = sorted(i for cmd in _BOX_CMDS for i in _find_last(text, cmd, _MAX_BOXES))
    found: list[tuple[int, str, int]] = []  # (start, body, end) from the last box backwards
    for idx in reversed(starts[-_MAX_BOXES:]):
        box = _box_body(text, idx)
        if box is None:
            continue
        if found and not (group and box[1] <= found[-1][0] and _is_connector(text[box[1] : found[-1][0]])):
            break
        found.append((idx, box[0], box[1]))
        if not group:
            break
    if not found:
        return None
    return [body.strip() for _, body, _ in reversed(found)], found[0][2]


_CONNECTOR = re.compile(r"[^.!?\n]{0,40}")
_SEQUENCE_WORDS = frozenset(
    "then so thus hence therefore but not no wait actually instead is gives equals becomes".split()
)
_GAP_WORD = re.compile(r"(?<!\\)\b[A-Za-z]+")


def _is_connector(gap: str) -> bool:
    """Only a short connector between two boxes: one list.

    At most 40 characters, no sentence end, and either no words at all (``, ``, ``$ $``,
    ``\\quad``) or a conjunction among them (``\\text{ and }``, ``papers and``, ``or``).
    """
    if len(gap) > 40 or "\n\n" in gap or _CONNECTOR.fullmatch(gap.replace("\n", " ")) is None:
        return False
    words = {w.lower() for w in _GAP_WORD.findall(gap)} - {"quad", "qquad", "text", "mbox", "textrm"}
    if words & _SEQUENCE_WORDS:
        return False  # "\\boxed{1} and then \\boxed{2}": a correction, not a list
    return not words or bool(words & {"and", "or"}) or "," in gap or ";" in gap


def _last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{}`` alone."""
    found = last_box_group(text, group=False)
    return None if found is None else found[0][0]


def _find_last(text: str, needle: str, k: int) -> list[int]:
    """Start indices of the last ``k`` occurrences of ``needle``."""
    out: list[int] = []
    i = text.rfind(needle)
    while i >= 0 and len(out) < k:
        out.append(i)
        i = text.rfind(needle, 0, i)
    return out


def _box_body(text: str, idx: int) -> tuple[str, int] | None:
    name_end = idx + (6 if text.startswith("\\boxed", idx) else 5)
    open_idx = text.find("{", name_end, name_end + 64)
    if open_idx < 0 or text[name_end:open_idx].strip():
        # "\boxed 5" form: the next whitespace-delimited token.
        m = re.match(r"\s+([^\s$]+)", text[name_end : name_end + 200])
        return (m.group(1), name_end + m.end()) if m else None
    close = _match_one(text, open_idx)
    if close == -2:  # still open after MAX_ANSWER_CHARS: too long to be an answer
        return text[open_idx + 1 : open_idx + MAX_ANSWER_CHARS + 2], open_idx + MAX_ANSWER_CHARS + 2
    return (text[open_idx + 1 : close], close + 1) if close >= 0 else None


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


_ESCAPED_SPACE = re.compile(r"(?<!\\)\\ ")  # "\ " is a space; "\\ " (a matrix row end, then a space) is not
_DOUBLED_CMD = re.compile(r"\\\\(?=[A-Za-z])")
_THOUSANDS_MARK = re.compile(r"\s*\\!\s*|\s*\{\s*,\s*\}\s*(?=\d)")


def normalize_latex(s: str) -> str:
    """Fold Unicode and LaTeX spellings onto one form (see the module doc).

    Example:
        >>> normalize_latex(r"\\\\left( \\cfrac{1}{2} \\right)"), normalize_latex(r"32,\\! 349")
        ('( \\\\frac{1}{2} )', '32,349')
    """
    if "\\\\" in s and "\\begin" not in s:
        s = _DOUBLED_CMD.sub(r"\\", s)
    if "\\!" in s or "{" in s:
        s = _THOUSANDS_MARK.sub("", s)
    for old, new in _REPLACE:
        if old in s:
            s = s.replace(old, new)
    if "\\ " in s:
        s = _ESCAPED_SPACE.sub(" ", s)
    return s


def clean_answer(answer: str, assignments: bool = True) -> tuple[str, str | None]:
    """Normalise an extracted answer; return ``(text, assigned_variable_or_None)``.

    Strips leading words, ``$``/``\\(``/``\\[`` delimiters, ``\\left``/``\\right`` and spacing
    commands, degree signs, trailing units and periods, and (``assignments=True``) one ``x =``
    assignment.

    Example:
        >>> clean_answer(r"\\[ 30^{\\circ} \\]"), clean_answer("12 cm."), clean_answer("y=2x+1")
        (('30', None), ('12', None), ('2x+1', 'y'))
    """
    s = answer.strip()
    if _PLAIN_INT.fullmatch(s):
        return s, None
    s = normalize_latex(s)
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
    m = _ASSIGN.match(s) if assignments else None
    if m and "=" not in m.group(2):
        var, s = m.group(1), m.group(2).strip()
    return s, var


def _strip_delims(s: str) -> str:
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right):
            inner = s[len(left) : len(s) - len(right)]
            if left in ("$", "\\(") and "\n" in inner:
                return ""  # an inline formula cannot span lines: this is no answer
            return inner.strip()
    if s.count("$") == 1:  # a currency sign: "$5"
        return s.replace("$", "").strip()
    # "x is $5$": keep the last $...$ span when the rest is words.
    if s.count("$") >= 2 and not s.startswith("$"):
        j = s.rfind("$")
        i = s.rfind("$", 0, j)
        return s[i + 1 : j].strip()
    return s
