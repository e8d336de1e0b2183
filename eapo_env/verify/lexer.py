"""Tokens of the answer grammar: one anchored regex, LaTeX commands mapped to operators.

Example:
    >>> tokenize(r"2\\cdot x \\pm 1")
    [('num', '2'), ('op', '*'), ('sym', 'x'), ('op', 'pm'), ('num', '1')]
"""

from __future__ import annotations

import re

from ._types import ParseFailure

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\(?:[A-Za-z]+|[{}%|\\]))"
    r"|(?P<word>[A-Za-z]+)|(?P<op><=|>=|!=|[-+*/^_()\[\]{}=,;:&!|<>%]))"
)
FUNCS = frozenset("sin cos tan sec csc cot arcsin arccos arctan sinh cosh tanh ln log exp".split())
_GREEK = frozenset(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu "
    "xi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi "
    "Psi Omega".split()
)
_CMD_OPS = {
    "\\cdot": "*",
    "\\times": "*",
    "\\ast": "*",
    "\\div": "/",
    "\\le": "<=",
    "\\leq": "<=",
    "\\leqslant": "<=",
    "\\ge": ">=",
    "\\geq": ">=",
    "\\geqslant": ">=",
    "\\ne": "!=",
    "\\neq": "!=",
    "\\lt": "<",
    "\\gt": ">",
    "\\%": "%",
    "\\|": "|",
    "\\{": "\\{",
    "\\}": "\\}",
    "\\approx": "=",
    "\\in": "in",
    "\\cup": "cup",
    "\\pm": "pm",
    "\\mp": "pm",
    "\\\\": "\\\\",
    "\\emptyset": "empty",
    "\\varnothing": "empty",
    "\\begin": "\\begin",
    "\\end": "\\end",
    "\\colon": ":",
}
# Wrappers whose argument is read as ordinary math (their brace group follows).
_TRANSPARENT = frozenset(
    "\\text \\textbf \\textrm \\textnormal \\textit \\mathrm \\mathbf \\mathit \\mathsf \\mbox "
    "\\operatorname \\boxed \\hline".split()
)
_KEEP = frozenset(("\\rfloor", "\\rceil", "\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\lfloor", "\\lceil"))
# Environment names (after \begin{...}) that are words, not symbols.
ENVIRONMENTS = frozenset(("pmatrix", "bmatrix", "vmatrix", "matrix", "array", "smallmatrix"))


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split ``text`` into ``(kind, value)`` tokens; unknown characters raise ParseFailure.

    Example:
        >>> tokenize(r"2\\cdot x")
        [('num', '2'), ('op', '*'), ('sym', 'x')]
    """
    out: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise ParseFailure(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)  # type: ignore[arg-type]
        if kind == "cmd":
            if val in _CMD_OPS:
                out.append(("op", _CMD_OPS[val]))
            elif val in _TRANSPARENT:
                continue
            elif val[1:] in FUNCS:
                out.append(("func", val[1:]))
            elif val[1:] in _GREEK:
                out.append(("sym", val[1:]))
            elif val in _KEEP:
                out.append(("op", val))
            else:
                raise ParseFailure(f"unsupported command {val}")
        elif kind == "word":
            if val in FUNCS or val == "sqrt":
                out.append(("func", val) if val != "sqrt" else ("op", "\\sqrt"))
            elif val in ENVIRONMENTS and out and out[-1] == ("op", "{"):
                out.append(("env", val))
            elif len(out) >= 2 and out[-1] == ("op", "{") and out[-2] == ("op", "_"):
                out.append(("sym", val))  # a word as a subscript: S_{MBCN}
            elif len(val) >= 3:
                raise ParseFailure(f"word {val!r} is not math")
            else:
                out.extend(("sym", ch) for ch in val)
        elif val == ";":
            out.append(("op", ","))  # "(0;1;2)": a semicolon inside brackets separates like a comma
        else:
            out.append((kind, val))  # type: ignore[arg-type]
    return out
