"""The ``hint`` expert: the worked solution without its final answer (issue 20, DESIGN §4, §8)."""

from __future__ import annotations

import pytest

from eapo_env.experts import ExpertRequest, available_experts, make_expert
from eapo_env.experts.simple import _RESULT, NO_STEPS_HINT, HintExpert, withhold_answer
from eapo_env.problems import Problem
from eapo_env.problems.generated import FAMILIES, LEVELS, generate

TOY = Problem("toy/1", "What is $2+3$?", "5", "$2+3=5$.\nThe answer is \\boxed{5}.")


def last_result(text: str) -> str | None:
    """The value after the text's last relation sign (``=``/``\\equiv``), as the hint shows it."""
    results = list(_RESULT.finditer(text))
    return results[-1].group(2) if results else None


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("mode", ["steps", "first_step"])
def test_hint_never_states_the_final_answer_as_its_last_result(family: str, mode: str) -> None:
    expert = make_expert("hint", mode=mode)
    problems = [generate(family, level, i) for level in LEVELS for i in range(150)]
    replies = expert.consult_sync([ExpertRequest(f"r{i}", p, "hint") for i, p in enumerate(problems)])
    assert len(replies) == len(problems)
    for p, reply in zip(problems, replies):
        assert reply.ok and reply.expert == "hint" and reply.tokens > 0
        assert "\\boxed" not in reply.text, (p.id, reply.text)
        assert last_result(reply.text) != p.answer, (p.id, p.solution, reply.text)
        assert reply.text.count("$") % 2 == 0, reply.text  # math spans stay closed after the cut


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hint_keeps_the_worked_steps_before_the_result(family: str) -> None:
    """A hint is a prefix of the solution (up to the tidy-up): the help is real, only the end is missing."""
    kept = 0
    for level in LEVELS:
        for i in range(40):
            p = generate(family, level, i)
            hint = withhold_answer(p.solution, p.answer)
            if hint == NO_STEPS_HINT:
                continue
            core = hint.removesuffix(".").removesuffix("$").removesuffix(" \\dots").rstrip(".:;$ ")
            assert p.solution.startswith(core[: max(1, len(core) - 8)]), (p.solution, hint)
            kept += 1
    assert kept >= 150  # nearly every generated solution has steps to show


def test_hint_examples_cut_before_the_result() -> None:
    assert withhold_answer(TOY.solution, "5") == "$2+3$."
    # A check line after the stated result goes too; a repeated result is cut twice.
    inverse = "so $x \\equiv 7 \\equiv 7 \\pmod{11}$.\nCheck: $8 \\times 7 = 56 = 5 \\times 11 + 1$."
    assert withhold_answer(inverse, "7") == "so $x$."
    # The answer as a remainder term (no relation before it): cut at it, the operator marked.
    assert withhold_answer("Divide: $480 = 12 \\times 40 + 0$ with $0 \\le 0 < 12$.", "0").endswith("+ \\dots$.")
    # Nothing left to show: a fixed sentence, never an empty reply.
    assert withhold_answer("The answer is \\boxed{4}.", "4") == NO_STEPS_HINT
    assert HintExpert().consult_sync([ExpertRequest("r", Problem("p", "2+2?", "4"), "q")])[0].text == NO_STEPS_HINT


def test_first_step_is_the_first_line_of_the_hint() -> None:
    p = generate("arithmetic", 2, 0)
    steps = make_expert("hint").consult_sync([ExpertRequest("r", p, "q")])[0].text
    first = make_expert("hint", mode="first_step").consult_sync([ExpertRequest("r", p, "q")])[0].text
    assert steps.count("\n") >= 1 and first == steps.split("\n")[0]
    # An intermediate equal to the answer is cut from a first step too (3 x 9 - 22 + 22 = 27).
    p27 = generate("arithmetic", 2, 9)
    assert HintExpert(mode="first_step").hint_for(p27).endswith("$3 \\times 9$.")


def test_hint_is_deterministic_and_ignores_the_query() -> None:
    p = generate("linear", 3, 5)
    a = HintExpert().consult_sync([ExpertRequest("r1", p, "what is x?"), ExpertRequest("r2", p, "")])
    b = HintExpert(cache_size=1).consult_sync([ExpertRequest("r3", p, "hint")])
    assert a[0].text == a[1].text == b[0].text


def test_hint_mode_is_checked_and_registered() -> None:
    assert "hint" in available_experts()
    with pytest.raises(ValueError, match="hint mode"):
        HintExpert(mode="everything")


def test_other_experts_are_unchanged() -> None:
    """``reference`` still hands over the boxed answer; ``constant`` and ``noisy`` as before."""
    (ref,) = make_expert("reference").consult_sync([ExpertRequest("r", TOY, "q")])
    assert ref.text == TOY.solution
    (const,) = make_expert("constant").consult_sync([ExpertRequest("r", TOY, "q")])
    assert "5" not in const.text
    (noisy,) = make_expert("noisy", error_rate=1.0).consult_sync([ExpertRequest("r", TOY, "q")])
    assert noisy.text.startswith("$2+3=5$.") and "\\boxed{5}" not in noisy.text
