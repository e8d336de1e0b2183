"""Generated problem families, GeneratedSource and load_problems for generated/list specs."""

from __future__ import annotations

import ast
import itertools
import os
import re
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from math import comb, gcd, perm

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eapo_env.problems import Problem, ProblemSource, SequenceSource, load_problems
from eapo_env.problems.generated import (
    FAMILIES,
    LEVELS,
    GeneratedSource,
    generate,
    parse_generated_id,
    problem_id,
)

_FRAC_RE = re.compile(r"(-?)\\frac\{(\d+)\}\{(\d+)\}")


def parse_answer(text: str) -> Fraction:
    """Our canonical answer strings, parsed strictly (a test-side reader, independent of the code)."""
    if re.fullmatch(r"-?\d+", text):
        return Fraction(int(text))
    m = _FRAC_RE.fullmatch(text)
    assert m, f"answer {text!r} is neither an integer nor a \\frac"
    num, den = int(m.group(2)), int(m.group(3))
    assert den > 1 and gcd(num, den) == 1 and num > 0, f"fraction {text!r} not reduced/canonical"
    return Fraction(-num if m.group(1) else num, den)


def eval_expression(expr: str) -> Fraction:
    """Evaluate + - * / and parentheses over integer literals with exact fractions (no eval)."""
    ops = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
    }

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](walk(node.left), walk(node.right))
        raise AssertionError(f"unexpected syntax in {expr!r}: {ast.dump(node)}")

    return walk(ast.parse(expr, mode="eval").body)


def recompute(p: Problem) -> Fraction:
    """The answer recomputed from the structured operands in ``meta['params']``."""
    fam, prm = p.meta["family"], p.meta["params"]
    if fam == "arithmetic":
        value = eval_expression(prm["expression"])
        assert value.denominator == 1, "arithmetic answers must be integers (exact division only)"
        return value
    if fam == "linear":
        a, b, c, d = prm["a"], prm["b"], prm["c"], prm["d"]
        x = Fraction(d - b, a - c)
        assert a * x + b == c * x + d
        return x
    if fam == "modular":
        a, b, m = prm["a"], prm["b"], prm["m"]
        if prm["kind"] == "rem":
            return Fraction(a % m)
        if prm["kind"] == "pow":
            return Fraction(pow(a, b, m))
        inverse = next(x for x in range(m) if a * x % m == 1)  # brute force, independent of pow(a, -1, m)
        return Fraction(inverse)
    if fam == "counting":
        if prm["kind"] == "choose":
            return Fraction(comb(prm["n"], prm["k"]))
        if prm["kind"] == "perm":
            return Fraction(perm(prm["n"], prm["k"]))
        word = prm["word"]
        if len(word) <= 7:  # brute force on short words
            return Fraction(len(set(itertools.permutations(word))))
        total = comb(len(word), 0)
        left = len(word)
        for count in Counter(word).values():
            total *= comb(left, count)
            left -= count
        return Fraction(total)
    if fam == "fractions":
        return sum((Fraction(s * n, d) for s, n, d in prm["terms"]), Fraction(0))
    raise AssertionError(f"no recomputation for family {fam}")


def check_well_formed(p: Problem, family: str, level: int, index: int, seed: int) -> None:
    assert p.id == problem_id(family, level, index, seed)
    assert p.question.strip() and p.answer.strip()
    assert " " not in p.answer
    lines = p.solution.split("\n")
    assert len(lines) >= 2, "a worked solution has at least one step before the final line"
    assert lines[-1] == f"The answer is \\boxed{{{p.answer}}}."
    assert all(line.strip() for line in lines)
    assert p.solution.count("$") % 2 == 0, "unbalanced inline math"
    assert {k: p.meta[k] for k in ("family", "level", "source", "answer_type", "seed")} == {
        "family": family,
        "level": level,
        "source": "generated",
        "answer_type": "math",
        "seed": seed,
    }
    assert parse_answer(p.answer) == recompute(p)


# Fixed expectations: the same (family, level, index, seed) must give these in every process and on
# every platform (Python's str hash is salted per process; the generator must not depend on it).
GOLDEN = {
    ("arithmetic", 1, 0, 0): (
        "Evaluate $19 + 1 + 8$.",
        "28",
    ),
    ("arithmetic", 5, 123, 0): (
        "Evaluate $102 - 12 \\times 15 - 16 \\div 2 - 5 \\times (42 + 32) + 18 \\times 3 - 16 \\times (21 + 24)$.",
        "-1122",
    ),
    ("linear", 4, 7, 0): (
        "Solve for $x$: $-2x + 2 = -5x + 87$.",
        "\\frac{85}{3}",
    ),
    ("linear", 5, 99999, 3): (
        "Solve for $x$: $11x - 39 = 31x - 14$.",
        "-\\frac{5}{4}",
    ),
    ("modular", 3, 1, 0): (
        "What is the remainder when $2^{26}$ is divided by $7$?",
        "4",
    ),
    ("modular", 5, 2024, 7): (
        "What is the remainder when $31^{4271}$ is divided by $654$?",
        "301",
    ),
    ("counting", 2, 5, 0): (
        "In how many ways can 3 books be chosen from a shelf of 6 different books?",
        "20",
    ),
    ("counting", 5, 31, 1): (
        "How many distinct arrangements of the letters in DLDMLHMD are there?",
        "1680",
    ),
    ("fractions", 1, 0, 0): (
        "Compute $\\frac{1}{8} + \\frac{3}{8}$. Give the answer as a reduced fraction or an integer.",
        "\\frac{1}{2}",
    ),
    ("fractions", 5, 77, 2): (
        "Compute $\\frac{19}{27} - \\frac{1}{14} - \\frac{19}{21} +"
        " \\frac{9}{22}$. Give the answer as a reduced fraction or an integer.",
        "\\frac{284}{2079}",
    ),
}


def test_every_family_and_level_is_well_formed() -> None:
    for family in FAMILIES:
        for level in LEVELS:
            for index in range(40):
                check_well_formed(generate(family, level, index), family, level, index, 0)


@given(
    family=st.sampled_from(sorted(FAMILIES)),
    level=st.sampled_from(LEVELS),
    index=st.integers(0, 2**63),
    seed=st.integers(0, 2**40),
)
def test_generated_items_property(family: str, level: int, index: int, seed: int) -> None:
    p = generate(family, level, index, seed)
    check_well_formed(p, family, level, index, seed)
    again = generate(family, level, index, seed)
    assert (again.question, again.answer, again.solution, dict(again.meta)) == (
        p.question,
        p.answer,
        p.solution,
        dict(p.meta),
    )
    assert parse_generated_id(p.id) == (family, level, index, seed)
    assert GeneratedSource(seed=seed).get(p.id) == p


def test_golden_items_are_stable_across_processes() -> None:
    for (family, level, index, seed), expected in GOLDEN.items():
        p = generate(family, level, index, seed)
        assert (p.question, p.answer) == expected, (family, level, index, seed)


def test_generation_does_not_depend_on_the_hash_salt() -> None:
    # tox pins PYTHONHASHSEED=0; a child with another salt must still agree with this process.
    code = (
        "from eapo_env.problems.generated import GeneratedSource\n"
        "src = GeneratedSource(seed=11)\n"
        "print(repr([(p.id, p.question, p.answer) for p in (src[i] for i in range(0, 5000, 97))]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "4242"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    src = GeneratedSource(seed=11)
    here = [(p.id, p.question, p.answer) for p in (src[i] for i in range(0, 5000, 97))]
    assert out.stdout.strip() == repr(here)


def test_seeds_and_indices_change_the_problems() -> None:
    for family in FAMILIES:
        a = [generate(family, 3, i, seed=0).question for i in range(30)]
        b = [generate(family, 3, i, seed=1).question for i in range(30)]
        assert sum(x != y for x, y in zip(a, b)) >= 25, family
        assert len(set(a)) >= 25, f"{family}: indices should give mostly distinct problems"


def test_levels_scale_difficulty() -> None:
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    terms = {
        lv: mean(
            [
                len(re.findall(r"[+-]", generate("arithmetic", lv, i).meta["params"]["expression"])) + 1
                for i in range(60)
            ]
        )
        for lv in (1, 5)
    }
    assert terms[5] > terms[1] + 1
    sizes = {
        lv: mean(
            [
                abs(generate("counting", lv, i).meta["params"].get("n", 0))
                + len(generate("counting", lv, i).meta["params"].get("word", ""))
                for i in range(60)
            ]
        )
        for lv in (1, 5)
    }
    assert sizes[5] > sizes[1]
    frac_answers = {lv: sum("frac" in generate("linear", lv, i).answer for i in range(60)) for lv in (1, 5)}
    assert frac_answers[1] == 0 and frac_answers[5] > 10


def test_generated_answers_verify() -> None:
    from eapo_env.verify import verify

    for family in FAMILIES:
        for level in LEVELS:
            for index in range(6):
                p = generate(family, level, index)
                assert verify(p.solution, p.answer).score == 1.0, (p.id, p.solution)
                assert verify(p.answer, p.answer).score == 1.0, p.id
                wrong = parse_answer(p.answer) + 1
                wrong_tex = (
                    str(wrong.numerator)
                    if wrong.denominator == 1
                    else (f"{'-' if wrong < 0 else ''}\\frac{{{abs(wrong.numerator)}}}{{{wrong.denominator}}}")
                )
                assert verify(wrong_tex, p.answer).score == 0.0, (p.id, wrong_tex)


def test_generated_source_protocol_and_round_robin() -> None:
    src = GeneratedSource(["linear", "modular"], levels=(2, 4), seed=5, size=20)
    assert isinstance(src, ProblemSource)
    assert len(src) == 20
    pairs = [(src[i].meta["family"], src[i].meta["level"]) for i in range(4)]
    assert pairs == [("linear", 2), ("linear", 4), ("modular", 2), ("modular", 4)]
    assert src[-1] == src[19] and src[7] == generate("modular", 4, 7, seed=5)
    with pytest.raises(IndexError):
        src[20]
    with pytest.raises(IndexError):
        src[-21]
    assert [p.id for p in src] == [src[i].id for i in range(20)]
    assert src.get(src[13].id) == src[13]
    assert src.get("gen/counting/L1/999") == generate("counting", 1, 999)  # any well-formed id
    for bad in ("gen/nope/L1/0", "gen/linear/L9/0", "gen/linear/L1/x", "dapo/3", "gen/linear/L1/-1"):
        with pytest.raises(KeyError):
            src.get(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"families": ["nope"]},
        {"levels": (0,)},
        {"levels": (6,)},
        {"families": []},
        {"seed": -1},
        {"size": 0},
        {"families": ["linear", "linear"]},
    ],
)
def test_generated_source_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        GeneratedSource(**kwargs)


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="known families"):
        generate("geometry", 1, 0)
    with pytest.raises(ValueError):
        generate("linear", 6, 0)
    with pytest.raises(ValueError):
        generate("linear", 1, -1)


def test_load_problems_generated_specs() -> None:
    src = load_problems("generated")
    assert isinstance(src, GeneratedSource) and src.families == tuple(FAMILIES) and src.levels == LEVELS
    src = load_problems("generated:arithmetic")
    assert src.families == ("arithmetic",) and src[3].id == "gen/arithmetic/L4/3"
    src = load_problems("generated:arithmetic,linear:1-2", seed=9, size=10)
    assert (src.families, src.levels, src.seed, len(src)) == (("arithmetic", "linear"), (1, 2), 9, 10)
    assert load_problems("generated:*:3,5").levels == (3, 5)
    assert load_problems("generated:all").families == tuple(FAMILIES)
    with pytest.raises(ValueError, match="known families: arithmetic"):
        load_problems("generated:geometry")
    for bad in ("generated:linear:0", "generated:linear:x", "generated:linear:1:2", "generated:linear:6"):
        with pytest.raises(ValueError):
            load_problems(bad)


def test_load_problems_lists_and_sources() -> None:
    problems = [Problem("a", "1+1?", "2"), Problem("b", "2+2?", "4")]
    src = load_problems(problems)
    assert isinstance(src, SequenceSource) and src.get("b") == problems[1] and len(src) == 2
    assert load_problems(tuple(problems))[0] == problems[0]
    assert load_problems([{"id": "c", "question": "q", "answer": "1"}])[0].id == "c"
    assert load_problems(src) is src
    gen = GeneratedSource(size=5)
    assert load_problems(gen) is gen
    with pytest.raises(ValueError, match="empty"):
        load_problems([])
    with pytest.raises(ValueError, match="duplicate"):
        load_problems(problems + problems[:1])
    with pytest.raises(ValueError):
        load_problems([{"id": "c", "question": "q"}])
    with pytest.raises(TypeError):
        load_problems(["not a problem"])
    with pytest.raises(TypeError):
        load_problems(42)
    for bad in ("", "something", "nowhere.jsonl"):
        with pytest.raises(ValueError):
            load_problems(bad)


def test_generated_items_are_cached_and_equal_to_a_fresh_generation():
    from eapo_env.problems.generated import generate

    first = generate("fractions", 3, 11, seed=2)
    assert generate("fractions", 3, 11, seed=2) is first  # a GRPO group's G resets generate it once
    generate.cache_clear()
    fresh = generate("fractions", 3, 11, seed=2)
    assert fresh is not first and fresh == first and fresh.solution == first.solution
