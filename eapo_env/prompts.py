"""Every fixed text the environment shows the policy: prompts, nudges and the experts block.

Kept in one place so that the SFT traces, the tokenizer corpus and the env agree byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from eapo_env.protocol import EXPERTS_CLOSE, EXPERTS_OPEN, escape_expert_text

TRAIN_PROMPT = (
    "Solve the problem. You may reason step by step. You may consult up to {max_experts} experts "
    "in one turn by writing <consult><query>your question</query>...</consult>; their replies "
    "come back inside <experts>...</experts>, but a reply may be unavailable. You have "
    "{max_turns} turns. Give the final answer as <answer>your answer</answer>.\n\n"
    "Problem: {question}\n"
)
EVAL_PROMPT = "Solve the problem. Give the final answer as <answer>your answer</answer>.\n\nProblem: {question}\n"

#: Observation after a reasoning turn (no complete block): tells a policy that stopped on EOS what to do.
NUDGE = "\n<env>Continue, then give the final answer inside <answer></answer>.</env>\n"
#: Observation after a consult that kept no query.
EMPTY_CONSULT = (
    "\n<env>Format error: a consult needs 1 to {max_experts} non-empty <query>...</query> entries. "
    "No expert was called.</env>\n"
)
#: Observation after a consult in evaluation mode.
CONSULT_DISABLED = (
    "\n<env>Consultation is disabled during evaluation. Solve the problem yourself and give the "
    "final answer inside <answer></answer>.</env>\n"
)
#: Text of an experts-block entry whose reply was rejected, timed out or failed.
UNAVAILABLE = "unavailable"


def render_prompt(question: str, *, eval_mode: bool, max_experts: int, max_turns: int) -> str:
    """The episode's first observation."""
    head, tail = prompt_parts(eval_mode, max_experts, max_turns)
    return head + question + tail


@functools.lru_cache(maxsize=256)
def prompt_parts(eval_mode: bool, max_experts: int, max_turns: int) -> tuple[str, str]:
    """The prompt around the question, ``(head, tail)``: a reset concatenates instead of formatting.

    Example:
        >>> head, tail = prompt_parts(True, 3, 8)
        >>> head + "1+1?" + tail == EVAL_PROMPT.format(question="1+1?")
        True
    """
    template = EVAL_PROMPT if eval_mode else TRAIN_PROMPT
    head, tail = template.split("{question}")
    return head.format(max_experts=max_experts, max_turns=max_turns), tail.format()


def render_experts_block(replies: Sequence[str | None]) -> str:
    """The observation after a consult: one entry per kept query, ``None`` meaning unavailable.

    Example:
        >>> print(render_experts_block(["x = 7", None]), end="")
        <BLANKLINE>
        <experts>
        <expert index="1">x = 7</expert>
        <expert index="2" status="unavailable">unavailable</expert>
        </experts>
    """
    n = len(replies)
    if 0 < n <= _PRE and None not in replies and "<" not in "".join(replies):
        return _ALL_AVAILABLE[n] % tuple(replies)  # the usual case: nothing to escape, one C-level format
    entries = []
    for i, text in enumerate(replies):
        if text is None:
            entries.append(_UNAVAILABLE_ENTRY[i] if i < _PRE else _entry_open(i) + _UNAVAILABLE_BODY)
        else:
            if "<" in text:  # only then can it hold "</expert" or "<\\" (skips two scans per reply)
                text = escape_expert_text(text)
            entries.append((_ENTRY_OPEN[i] if i < _PRE else _entry_open(i) + ">") + text + _ENTRY_CLOSE)
    return _BLOCK_HEAD + "".join(entries) + _BLOCK_TAIL


# Pre-rendered pieces of the experts block (rendering runs once per consult, thousands per step).
_BLOCK_HEAD = f"\n{EXPERTS_OPEN}\n"
_BLOCK_TAIL = f"{EXPERTS_CLOSE}\n"
_ENTRY_CLOSE = "</expert>\n"
_UNAVAILABLE_BODY = f' status="unavailable">{UNAVAILABLE}{_ENTRY_CLOSE}'


def _entry_open(i: int) -> str:
    return f'<expert index="{i + 1}"'


_PRE = 16  # entries pre-rendered; more experts than this fall back to formatting
_ENTRY_OPEN = tuple(_entry_open(i) + ">" for i in range(_PRE))
_UNAVAILABLE_ENTRY = tuple(_entry_open(i) + _UNAVAILABLE_BODY for i in range(_PRE))
#: Whole blocks of n available entries with nothing to escape, as %-templates (index 0 unused).
_ALL_AVAILABLE = ("",) + tuple(
    _BLOCK_HEAD + "".join(_ENTRY_OPEN[i] + "%s" + _ENTRY_CLOSE for i in range(n)) + _BLOCK_TAIL for n in range(1, _PRE + 1)
)
