"""From an extracted answer text to one tree: lists, labelled answers, chains, decimal commas.

Rules (DESIGN §5):

* **Lists.** Top-level ``;``, ``and``/``or`` (also ``\\text{ and }``) separate answers; within
  each, top-level commas do. Items that are themselves bare lists are flattened, so
  ``19, 46, and 82`` is the list ``19, 46, 82``. A list compares as a set (see
  :mod:`.equivalence`).
* **Thousands separators only when unambiguous.** ``1,000`` and ``12,000,023`` (groups of three
  digits, no space) are numbers; ``32, 349`` (comma and space) is a list of two numbers.
* **Decimal comma.** A whole answer ``a,bc`` with one comma and not three digits after it
  (``1000,99``, ``2,74``), or ``0,bcd``, is a decimal: European notation. One digit after the
  comma (``1,2``, ``0,0``) stays a list. ``VerifyOptions(decimal_comma=False)`` turns this off.
* **Labelled answers.** In a list, ``x = 5`` / ``x \\in S`` with a label on the left (a name,
  ``f(x)``, ``|AB|``, ``(p, q)``, ``A:B``, ``\\frac{NO}{BO}``) reads as its value; a list made only
  of assignments to *different* labels (``AB=4, CD=5``, ``k = 45, n = 2``) is one solution
  ``("assign", labels, values)``: matched label by label against another such list, in order
  against a bare list or tuple. A single labelled answer keeps its relation and is compared by :mod:`.equivalence`.
* **Chains.** ``a = b = c`` reads as its last member; ``x \\approx 11`` as ``11``;
  ``x = 1/3 \\approx 0.33`` as ``1/3`` (what follows ``\\approx`` is only an approximation).

Example:
    >>> read_answer("19, 46, and 82")[0], len(read_answer("19, 46, and 82")[2])
    ('seq', 3)
    >>> read_answer("x = 5+5+1 = 7 = 11")
    ('num', Fraction(11, 1), -1)
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ._types import ParseFailure
from .extract import clean_answer
from .options import VerifyOptions
from .parser import Node, parse

MAX_ITEMS = 256
_GROUP_SEP = re.compile(
    r"\\\{|\\\}|[()\[\]{}]|;|\\text\s*\{\s*(?:and|or)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])", re.IGNORECASE
)
_ITEM_SEP = re.compile(r"\\\{|\\\}|[()\[\]{}]|,")
_EQUALS = re.compile(r"\\\{|\\\}|[()\[\]{}]|\\approx|(?<![<>!=])=(?!=)")
_DECIMAL_COMMA = re.compile(r"[-+]?(?:0,\d\d+|\d+,(?:\d\d|\d{4,}))")
_MAY_SPLIT = re.compile(r"[,;=]|\\approx|and|or|\\text")
_OPEN, _CLOSE = frozenset(("(", "[", "{", "\\{")), frozenset((")", "]", "}", "\\}"))


def _top_level(text: str, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """The matches of ``pattern`` that stand outside any bracket (``pattern`` matches the brackets too)."""
    depth = 0
    for m in pattern.finditer(text):
        tok = m.group()
        if tok in _OPEN:
            depth += 1
        elif tok in _CLOSE:
            depth -= 1
        elif depth == 0:
            yield m


def _split(text: str, sep: re.Pattern[str]) -> list[str]:
    """``text`` cut at the separators of ``sep`` that stand outside any bracket."""
    parts, start = [], 0
    for m in _top_level(text, sep):
        if m.group() == "," and _thousands_at(text, m.start()):
            continue
        parts.append(text[start : m.start()])
        start = m.end()
        if len(parts) > MAX_ITEMS:
            raise ParseFailure("too many list items")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _thousands_at(text: str, i: int) -> bool:
    """The comma at ``i`` groups digits (``1,000``): a digit before, exactly three digits after, no space."""
    if i == 0 or not text[i - 1].isdigit() or not text[i + 1 : i + 4].isdigit() or len(text[i + 1 : i + 4]) < 3:
        return False
    if i + 4 < len(text) and text[i + 4].isdigit():
        return False
    j = i - 1
    while j >= 0 and text[j].isdigit():
        j -= 1
    lead = text[j + 1 : i]
    return len(lead) <= 3 and not lead.startswith("0")


def read_answer(text: str, options: VerifyOptions | None = None) -> Node:
    """One tree for the answer ``text`` (already cleaned by :func:`.extract.clean_answer`)."""
    decimal_comma = options.decimal_comma if options is not None else True
    s = text.strip()
    if not _MAY_SPLIT.search(s):
        return parse(s)  # one plain item (most answers): no list, label or chain to read
    if decimal_comma and _DECIMAL_COMMA.fullmatch(s) and not _thousands_at(s, s.index(",")):
        return parse(s.replace(",", "."))
    if len(s) > 2 and s[0] == "{" and s[-1] == "}" and _balanced(s[1:-1]):
        s = s[1:-1]  # "{1, 2}": a brace group around a list (LaTeX grouping, not a set)
    groups = [g for g in _split(s, _GROUP_SEP) if g.strip(" ,")]
    if not groups:
        raise ParseFailure("empty answer")
    if len(groups) == 1 and len(_split(s, _ITEM_SEP)) == 1:  # one item, already cleaned: "(3, 5)", "x = 7"
        return parse(_last_member(s) if "=" in s or "\\approx" in s else s)
    nodes = [_read_group(g.strip(" ,")) for g in groups]
    if len(nodes) == 1:
        return nodes[0]
    items: list[Node] = []
    for node in nodes:
        node = _value_of(node)
        items.extend(node[2] if node[0] == "seq" and node[1] == "" else (node,))
    return ("seq", "", tuple(items))


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _read_group(text: str) -> Node:
    """One ``;``/``and``-separated group: a comma list, labelled items turned into values."""
    parts = [p for p in _split(text, _ITEM_SEP) if p]
    if not parts:
        raise ParseFailure("empty list item")
    nodes = [_read_item(p) for p in parts]
    if len(nodes) == 1:
        return nodes[0]
    labels = [n[2] for n in nodes if n[0] == "rel" and n[1] == "=" and is_label(n[2])]
    values = [_value_of(n) for n in nodes]
    if len(labels) == len(nodes) and len(set(labels)) == len(labels):
        # "AB=4, CD=5": one solution; components matched by label, or in order against a bare list
        return ("assign", tuple(labels), tuple(values))
    return ("seq", "", tuple(values))


def _read_item(text: str) -> Node:
    """One list item: cleaned of units and words, chains and approximations reduced, parsed."""
    s, _ = clean_answer(text, assignments=False)
    if "=" in s or "\\approx" in s:
        s = _last_member(s)
    if not s:
        raise ParseFailure("empty list item")
    return parse(s)


def _last_member(s: str) -> str:
    """``a = b = c`` -> ``c``; ``x \\approx 11`` -> ``11``; ``x = 1/3 \\approx 0.3`` -> ``x = 1/3``."""
    members, ops, start = [], [], 0
    for m in _top_level(s, _EQUALS):
        members.append(s[start : m.start()].strip())
        ops.append(m.group())
        start = m.end()
    members.append(s[start:].strip())
    if "\\approx" in ops:
        k = ops.index("\\approx")
        members = members[: k + 1] if k > 0 or not _is_label_text(members[0]) else members[1:2]
    if len(members) >= 3:
        return members[-1]
    return " = ".join(members)


def _is_label_text(s: str) -> bool:
    try:
        return is_label(parse(s))
    except ParseFailure:
        return False


def _value_of(node: Node) -> Node:
    """The value of a labelled item (``x = 5`` -> 5, ``x \\in [0, 1]`` -> the interval), else the item."""
    if node[0] == "rel" and node[1] in ("=", "in") and is_label(node[2]):
        return node[3]
    return node


def is_label(node: Node) -> bool:
    """A name standing for the answer: ``x``, ``x_1``, ``AB``, ``f(x)``, ``|AB|``, ``(p, q)``, ``A:B``, ``NO/BO``.

    Example:
        >>> is_label(parse("f(x)")), is_label(parse("(p, q)")), is_label(parse("2x + z"))
        (True, True, False)
    """
    kind = node[0]
    if kind == "sym":
        return True
    if kind == "mul":
        return all(is_label(n) for n in node[1])
    if kind == "div":
        return is_label(node[1]) and is_label(node[2])
    if kind == "func" and node[1] == "abs":
        return is_label(node[2][0])
    if kind == "seq" and node[1] in ("()", ":", ""):
        return bool(node[2]) and all(is_label(n) for n in node[2])
    return False
