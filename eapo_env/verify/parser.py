"""A small, safe recursive-descent parser for the LaTeX / plain-math answer subset.

Input is tokenised with one anchored regex (no backtracking blow-ups), parsed into a tree of
plain tuples, and never evaluated as code. Size and nesting are bounded: more than
``MAX_ANSWER_CHARS`` characters or ``MAX_DEPTH`` levels raise :class:`ParseFailure`.

Node shapes: ``("num", Fraction, decimals)``, ``("sym", name)``, ``("const", "pi"|"e"|"inf")``,
``("add", items)``, ``("mul", items)``, ``("neg", x)``, ``("inv", x)``, ``("div", a, b)``, ``("pow", a, b)``,
``("fact", x)``, ``("pct", x)``, ``("func", name, args)``, ``("seq", brackets, items)``,
``("rel", op, lhs, rhs)`` (op ``in`` for ``\\in``), ``("chain", ops, members)``, ``("union", items)``,
``("pm", a, b)`` (a plus or minus b), ``("mat", rows)``; brackets ``":"`` mark a ratio ``a:b``.

Example:
    >>> parse(r"2\\sqrt{2}")
    ('mul', (('num', Fraction(2, 1), -1), ('pow', ('num', Fraction(2, 1), -1), ('num', Fraction(1, 2), -1))))
    >>> parse("[1, 2)")[:2]
    ('seq', '[)')
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ._types import MAX_ANSWER_CHARS, MAX_DEPTH, ParseFailure
from .lexer import tokenize

Node = tuple[Any, ...]

_RELOPS = frozenset({"=", "<", ">", "<=", ">=", "!=", "in"})
_STARTS = frozenset(
    {
        "num",
        "sym",
        "word",
        "(",
        "{",
        "\\{",
        "\\frac",
        "\\sqrt",
        "\\binom",
        "\\pi",
        "\\infty",
        "func",
        "\\lfloor",
        "\\lceil",
        "\\begin",
    }
)
ONE = ("num", Fraction(1), -1)
ZERO = ("num", Fraction(0), -1)
HALF = ("num", Fraction(1, 2), -1)


def parse(text: str) -> Node:
    """Parse an answer string into a tree (see the module doc for node shapes).

    Example:
        >>> parse("x = 7")
        ('rel', '=', ('sym', 'x'), ('num', Fraction(7, 1), -1))
    """
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseFailure("answer too long")
    p = _Parser(tokenize(text))
    if not p.toks:
        raise ParseFailure("empty answer")
    node = p.top()
    if p.i != len(p.toks):
        raise ParseFailure(f"unexpected token {p.toks[p.i][1]!r}")
    return node


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks = toks
        # What peek() returns per position: the operator itself, or the token kind; "" at end.
        self.keys = [val if kind == "op" else kind for kind, val in toks] + [""]
        self.i = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------
    def peek(self) -> str:
        return self.keys[self.i]

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise ParseFailure("unexpected end")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, val: str) -> None:
        if self.peek() != val:
            raise ParseFailure(f"expected {val!r}")
        self.i += 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseFailure("nesting too deep")

    # -- grammar -------------------------------------------------------------------------
    def top(self) -> Node:
        items = [self.relation()]
        while self.peek() == ",":
            self.i += 1
            items.append(self.relation())
        return items[0] if len(items) == 1 else ("seq", "", tuple(items))

    def relation(self) -> Node:
        """``a op b`` -> ("rel", op, a, b); a longer chain ``a < x <= b`` -> ("chain", ops, members)."""
        members: list[Node] = [self.operand()]
        ops: list[str] = []
        while self.peek() in _RELOPS:
            if len(ops) >= MAX_DEPTH:
                raise ParseFailure("relation chain too long")
            ops.append(self.take()[1])
            members.append(self.operand())
        if not ops:
            return members[0]
        if len(ops) == 1:
            return ("rel", ops[0], members[0], members[1])
        return ("chain", tuple(ops), tuple(members))

    def operand(self) -> Node:
        """An additive expression, possibly joined by ``\\cup`` (unions) and ``:`` (ratios, looser)."""
        first = self.additive()
        if self.peek() not in ("cup", ":"):
            return first
        items = [self._union_rest(first)]
        while self.peek() == ":":  # "a : b": a ratio or a time, compared in order like a tuple
            self.i += 1
            items.append(self._union_rest(self.additive()))
        return items[0] if len(items) == 1 else ("seq", ":", tuple(items))

    def _union_rest(self, first: Node) -> Node:
        items = [first]
        while self.peek() == "cup":
            self.i += 1
            items.append(self.additive())
        return items[0] if len(items) == 1 else ("union", tuple(items))

    def additive(self) -> Node:
        self.enter()
        terms: list[Node] = []
        sign = ""
        if self.peek() == "pm":  # "\pm 2021"
            self.i += 1
            sign = "pm"
        while self.peek() in ("+", "-") and sign != "pm":
            sign = self.take()[1] if sign != "-" else ("+" if self.take()[1] == "-" else "-")
        first = self.term()
        terms.append(("neg", first) if sign == "-" else ("pm", ZERO, first) if sign == "pm" else first)
        while self.peek() in ("+", "-", "pm"):
            op = self.take()[1]
            t = self.term()
            if op == "pm":  # a \pm b: both signs, expanded into a set by the comparison
                left = terms[0] if len(terms) == 1 else ("add", tuple(terms))
                terms = [("pm", left, t)]
            else:
                terms.append(("neg", t) if op == "-" else t)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def term(self) -> Node:
        # Flat factor list (not a left-nested tree) so "xxxx..." stays shallow.
        factors = [self.unary()]
        while True:
            nxt = self.peek()
            if nxt == "*":
                self.i += 1
                factors.append(self.unary())
            elif nxt == "/":
                self.i += 1
                factors.append(("inv", self.unary()))
            elif nxt in _STARTS:
                factors.append(self.power())
            else:
                return factors[0] if len(factors) == 1 else ("mul", tuple(factors))

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            neg = self.take()[1] == "-"
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if neg else inner
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.peek() == "^":
            self.i += 1
            return self.postfix_tail(("pow", base, self.exponent()))
        return base

    def exponent(self) -> Node:
        self.enter()
        if self.peek() in ("-", "+"):
            neg = self.take()[1] == "-"
            e = self.exponent()
            node = ("neg", e) if neg else e
        else:
            atom = self.primary()
            node = ("pow", atom, self.exponent()) if self.peek() == "^" and self.take() else atom
        self.depth -= 1
        return node

    def postfix(self) -> Node:
        return self.postfix_tail(self.primary())

    def postfix_tail(self, node: Node) -> Node:
        count = 0
        while self.peek() in ("!", "%"):
            count += 1
            if count > MAX_DEPTH:
                raise ParseFailure("too many postfix operators")
            node = ("fact", node) if self.take()[1] == "!" else ("pct", node)
        return node

    def group_or_token(self, split_digits: bool) -> Node:
        """A ``{...}`` group, or one token (one digit of a number, LaTeX-style)."""
        if self.peek() == "{":
            return self.primary()
        if split_digits and self.peek() == "num":
            kind, val = self.toks[self.i]
            if len(val) > 1 and "." not in val:
                self.toks[self.i] = (kind, val[1:])
                return ("num", Fraction(int(val[0])), -1)
        return self.primary()

    def primary(self) -> Node:
        self.enter()
        try:
            return self._primary()
        finally:
            self.depth -= 1

    def _primary(self) -> Node:
        kind, val = self.take()
        if kind == "num":
            node = _number(val)
            if self.peek() == "\\frac" and "." not in val:  # mixed number 1\frac{1}{2}
                frac = self.primary()
                if frac[0] == "div" and frac[1][0] == frac[2][0] == "num":
                    return ("add", (node, frac))
                return ("mul", (node, frac))
            return node
        if kind == "sym":
            name = val
            if self.peek() == "_":
                self.i += 1
                sub = self.group_or_token(False)
                name = f"{val}_{sub!r}"
            return ("const", "e") if name == "e" else ("sym", name)
        if kind == "func":
            return self.function(val)
        if val in ("(", "["):
            items = [self.relation()]
            while self.peek() == ",":
                self.i += 1
                items.append(self.relation())
            close = self.take()[1]
            if close not in (")", "]"):
                raise ParseFailure("unbalanced bracket")
            if len(items) == 1 and (val + close) in ("()", "[]"):
                return items[0]
            return ("seq", val + close, tuple(items))
        if val in ("{", "\\{"):
            closing = "}" if val == "{" else "\\}"
            if val == "\\{" and self.peek() == closing:
                self.i += 1
                return ("seq", "{}", ())
            items = [self.relation()]
            while self.peek() == ",":
                self.i += 1
                items.append(self.relation())
            self.expect(closing)
            if val == "\\{":
                return ("seq", "{}", tuple(items))
            return items[0] if len(items) == 1 else ("seq", "", tuple(items))
        if val == "|":
            inner = self.additive()
            self.expect("|")
            return ("func", "abs", (inner,))
        if val in ("\\lfloor", "\\lceil"):
            inner = self.additive()
            self.expect("\\rfloor" if val == "\\lfloor" else "\\rceil")
            return ("func", "floor" if val == "\\lfloor" else "ceil", (inner,))
        if val == "\\frac":
            return ("div", self.group_or_token(True), self.group_or_token(True))
        if val == "\\binom":
            return ("func", "binom", (self.group_or_token(True), self.group_or_token(True)))
        if val == "\\sqrt":
            index: Node = HALF
            if self.peek() == "[":
                self.i += 1
                n = self.additive()
                self.expect("]")
                index = ("div", ONE, n)
            return ("pow", self.group_or_token(True), index)
        if val == "\\pi":
            return ("const", "pi")
        if val == "empty":
            return ("seq", "{}", ())
        if val == "\\begin":
            return self.matrix()
        if val == "\\infty":
            return ("const", "inf")
        raise ParseFailure(f"unexpected token {val!r}")

    def matrix(self) -> Node:
        """``\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}`` (also bmatrix, array) -> ("mat", rows)."""
        self.expect("{")
        env = self.take()
        self.expect("}")
        if env[0] != "env":
            raise ParseFailure("unknown environment")
        if env[1] == "array" and self.peek() == "{":  # column spec "{cc}", "{c|c}": layout only
            while self.take()[1] != "}":
                pass
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while True:
            if self.peek() in ("\\\\", "\\end"):
                if row:
                    rows.append(tuple(row))
                row = []
                if self.take()[1] == "\\end":
                    break
                continue
            row.append(self.additive())
            if self.peek() == "&":
                self.i += 1
            if len(rows) > 64 or len(row) > 64:
                raise ParseFailure("matrix too large")
        self.expect("{")
        self.take()
        self.expect("}")
        if not rows or len({len(r) for r in rows}) != 1:
            raise ParseFailure("ragged matrix")
        return ("mat", tuple(rows))

    def function(self, name: str) -> Node:
        power: Node | None = None
        base: Node | None = None
        for _ in range(2):
            if self.peek() == "^" and power is None:
                self.i += 1
                power = self.exponent()
            elif self.peek() == "_" and name == "log" and base is None:
                self.i += 1
                base = self.group_or_token(True)
        if self.peek() in ("(", "{"):
            arg = self.primary()
        else:  # "\sin 2x": a run of implicitly multiplied factors, up to the next function
            arg = self.power()
            while self.peek() in _STARTS and self.peek() != "func":
                arg = ("mul", (arg, self.power()))
        node: Node = ("func", name, (arg,) if base is None else (arg, base))
        return node if power is None else ("pow", node, power)


def _number(text: str) -> Node:
    if "." in text:
        whole, frac = text.split(".", 1)
        return ("num", Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac)), len(frac))
    return ("num", Fraction(int(text)), -1)
