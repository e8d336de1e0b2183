"""SFT trace recipes by name, and the staged build of the shipped expert-reader base (issue 20).

A recipe is a :class:`agents.traces.TraceConfig` (which traces, in what mix) and the SFT's
``max_len`` (tokens kept per trace). ``eapo build-policy --recipe NAME`` picks one; ``--init``
continues from an earlier build, so a base can be built in stages (a curriculum).

Why stages: a 0.57M-parameter model trained at once on long level-3 traces does not learn the
format; trained on the short ones first (``expert-reader``), then on more replies
(``expert-reader-copy``), then on long ones (``expert-reader-long``), it does. Re-deriving a whole
reply it flips signs and operands copying ~300 characters, so the last stages
(``expert-reader-continue``, ``-continue-alone``) teach it to carry out only what the reply leaves
undone (:func:`agents.traces.continuation`) and keep it solving alone.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from agents.traces import TraceConfig

#: Traces of the shipped tiny base: half under the evaluation prompt (the policy must answer alone at
#: evaluation); under the training prompt mostly self-resolution, some consultation (one short
#: query: a long consult costs CPU SFT time), a quarter of replies unavailable (then it answers alone).
BASE_TRACES = TraceConfig(
    mix=(0.6, 0.25, 0.15), self_levels=(1, 2), eval_frac=0.5, unavailable_prob=0.25, max_consult_chars=200
)
#: The expert-reader recipe (DESIGN §8 "the mechanism must be able to act"): after a reply the policy
#: writes its *own* worked solution (never a bare copied answer); 75 % of replies are ``hint`` replies
#: without the final answer (a quarter of those only the first step), so it must carry out the last
#: steps; 45 % of traces are the expert-assisted workflow (replies inside the evaluation prompt, what
#: ``eapo eval --expert`` shows); a fifth of replies are unavailable (it solves alone); reasoning up to
#: 480 characters, so level-2/3 solutions keep their steps.
READER_TRACES = TraceConfig(
    mix=(0.25, 0.5, 0.25),
    self_levels=(1, 2, 3),
    eval_frac=0.3,
    unavailable_prob=0.2,
    max_reason_chars=480,
    max_consult_chars=500,
    reply_turn="solve",
    hint_prob=0.75,
    hint_first_step_prob=0.25,
    workflow_frac=0.45,
)
#: Most traces read a reply (60 % workflow, 90 % of replies hints), the rest keep it solving alone.
READER_COPY_TRACES = dataclasses.replace(
    READER_TRACES, mix=(0.2, 0.55, 0.25), eval_frac=0.25, hint_prob=0.9, hint_first_step_prob=0.15, workflow_frac=0.6
)
#: The same with level-3 lengths: reasoning up to 600 characters, consult text up to 700.
READER_LONG_TRACES = dataclasses.replace(READER_COPY_TRACES, max_reason_chars=600, max_consult_chars=700)
#: After a reply, only what it leaves undone (restating the unfinished step), then the answer.
READER_CONTINUE_TRACES = dataclasses.replace(READER_LONG_TRACES, reply_turn="continue")
#: The same with more traces solving alone under the evaluation prompt (25 % of all, from 10 %), so
#: the alone rate the gate measures does not erode while it learns to read replies.
READER_CONTINUE_ALONE_TRACES = dataclasses.replace(READER_CONTINUE_TRACES, eval_frac=0.45, workflow_frac=0.45)

#: Trace recipes by name: the trace mix and the SFT's ``max_len`` (tokens kept per trace).
RECIPES: dict[str, tuple[TraceConfig, int]] = {
    "base": (BASE_TRACES, 192),
    "expert-reader": (READER_TRACES, 512),
    "expert-reader-copy": (READER_COPY_TRACES, 512),
    "expert-reader-long": (READER_LONG_TRACES, 1024),
    "expert-reader-continue": (READER_CONTINUE_TRACES, 1024),
    "expert-reader-continue-alone": (READER_CONTINUE_ALONE_TRACES, 1024),
}


class Stage(NamedTuple):
    """One ``eapo build-policy`` run of a staged build (each continues from the one before)."""

    recipe: str
    problems: str
    sft_steps: int
    seed: int
    lr: float


#: The shipped ``expert-reader-base`` (``agents/assets/expert_reader_base``): from ``tiny-base``,
#: batch 16, one thread. ``eapo_policy.json`` records every stage (nested under ``base``), and
#: ``tests/test_expert_reader_base.py`` checks the record against this list.
EXPERT_READER_STAGES: tuple[Stage, ...] = (
    Stage("expert-reader", "generated:arithmetic:1-2", 2400, 0, 1e-3),
    Stage("expert-reader-copy", "generated:arithmetic:1-2", 1500, 1, 1e-3),
    Stage("expert-reader-copy", "generated:arithmetic:1-3", 1500, 2, 1e-3),
    Stage("expert-reader-long", "generated:arithmetic:1-3", 1200, 3, 1e-3),
    Stage("expert-reader-continue", "generated:arithmetic:1-3", 1600, 6, 7e-4),
    Stage("expert-reader-continue-alone", "generated:arithmetic:1-3", 800, 8, 5e-4),
)


def stage_commands(out: str, work: str, stages: tuple[Stage, ...] = EXPERT_READER_STAGES) -> list[str]:
    """The ``eapo build-policy`` command lines that rebuild a staged base into ``out`` (stages in ``work``).

    Example:
        >>> stage_commands("OUT", "W")[0].split(" --init ")[1]
        'tiny-base'
    """
    cmds, init = [], "tiny-base"
    for i, st in enumerate(stages, 1):
        dest = out if i == len(stages) else f"{work}/stage{i}"
        cmds.append(
            f"eapo build-policy --out {dest} --size tiny --sft-steps {st.sft_steps} --seed {st.seed} --threads 1"
            f" --recipe {st.recipe} --problems {st.problems} --lr {st.lr} --batch-size 16 --init {init}"
        )
        init = dest
    return cmds
