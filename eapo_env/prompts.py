"""Every fixed text the environment shows the policy: prompts, nudges and the experts block.

Kept in one place so that the SFT traces, the tokenizer corpus and the env agree byte for byte.
"""

from __future__ import annotations

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
    """The episode's first observation.

    Example:
        >>> render_prompt("1+1?", eval_mode=True, max_experts=3, max_turns=8) == EVAL_PROMPT.format(question="1+1?")
        True
    """
    if eval_mode:
        return EVAL_PROMPT.format(question=question)
    return TRAIN_PROMPT.format(question=question, max_experts=max_experts, max_turns=max_turns)


def render_experts_block(replies: Sequence[str | None]) -> str:
    """The observation after a consult: one entry per kept query, ``None`` meaning unavailable.

    Expert text is escaped (:func:`~eapo_env.protocol.escape_expert_text`) so the block always parses
    back into the same entries.

    Example:
        >>> print(render_experts_block(["x = 7", None]), end="")
        <BLANKLINE>
        <experts>
        <expert index="1">x = 7</expert>
        <expert index="2" status="unavailable">unavailable</expert>
        </experts>
    """
    entries = []
    for i, text in enumerate(replies, start=1):
        if text is None:
            entries.append(f'<expert index="{i}" status="unavailable">{UNAVAILABLE}</expert>\n')
        else:
            entries.append(f'<expert index="{i}">{escape_expert_text(text)}</expert>\n')
    return f"\n{EXPERTS_OPEN}\n" + "".join(entries) + f"{EXPERTS_CLOSE}\n"
