"""The shipped expert-reader base (issue 20): its record, its rebuild, and that it carries out a hint."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import torch

from agents.evaluation import heldout_problems
from agents.policy import SHIPPED_POLICIES, load_policy, read_policy_info
from agents.policy.recipes import EXPERT_READER_STAGES, RECIPES, stage_commands
from agents.policy.tokenizer import encode_prompt
from agents.traces import hint_reply_fn
from eapo_env import prompts
from tests.policy_rebuild import first_sft_losses

PATH = SHIPPED_POLICIES["expert-reader-base"]


def _stages() -> list[dict[str, Any]]:
    """The recorded builds, first stage first (each ``eapo_policy.json`` nests its init's under ``base``)."""
    info, chain = read_policy_info(PATH), []
    while info and info.get("build_args"):
        chain.append(info)
        info = info.get("base")
    return chain[::-1]


def test_the_record_is_the_staged_recipe() -> None:
    stages = _stages()
    assert len(stages) == len(EXPERT_READER_STAGES) and stages[0]["build_args"]["init"] == "tiny-base"
    for recorded, stage in zip(stages, EXPERT_READER_STAGES):
        args = recorded["build_args"]
        assert (args["recipe"], args["problems"], args["sft_steps"], args["seed"], args["lr"]) == tuple(stage[:5])
        traces, max_len = RECIPES[stage.recipe]
        assert recorded["trace_config"] == json.loads(json.dumps(dataclasses.asdict(traces)))
        assert args["max_len"] == max_len
    commands = stage_commands("agents/assets/expert_reader_base", "/tmp/expert_reader")
    assert [s["rebuild_command"] for s in stages] == commands
    assert all(c in (PATH / "README.md").read_text() for c in commands)  # the README says how to rebuild


def test_it_loads_by_name_and_stays_small() -> None:
    model, tok = load_policy("expert-reader-base")
    assert model.config.model_type == "qwen2" and len(tok) == read_policy_info(PATH)["vocab_size"]
    assert sum(f.stat().st_size for f in PATH.iterdir()) <= 10 * 2**20


@torch.no_grad()
def test_it_restates_and_carries_out_the_step_a_hint_leaves_undone() -> None:
    """Greedy, on held-out level-3 problems: the turn starts with the hint's unfinished formula.

    The behaviour the gate rests on (copying the last step faithfully); the arithmetic itself is
    what the gate measures (``eapo eval --expert hint``, README), not pinned here.
    """
    model, tok = load_policy("expert-reader-base")
    hint = hint_reply_fn()
    problems = heldout_problems("generated:arithmetic:3", 6, 7)
    restated = 0
    for p in problems:
        reply = hint(p, p.question)
        unfinished = reply[reply.rstrip(" .").rstrip("$").rfind("$") :].rstrip(" .")  # "$-57 + 17$"
        question = p.question + prompts.render_experts_block([reply])
        text = prompts.render_prompt(question, eval_mode=True, max_experts=3, max_turns=4)
        ids = torch.tensor([encode_prompt(tok, text)])
        out = tok.decode(model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1] :])
        restated += out.startswith(unfinished[:-1] + " = ")
    assert restated >= 5, restated


@pytest.mark.slow
def test_a_short_rebuild_of_the_first_stage_reproduces_its_first_losses(tmp_path) -> None:
    """Stage 1 starts from the shipped tiny base: 5 steps with its recorded arguments, the same losses."""
    first = _stages()[0]
    seen = first_sft_losses(first["build_args"], tmp_path / "p")
    assert seen == pytest.approx(first["sft"]["losses_first"][:5], rel=1e-3)
