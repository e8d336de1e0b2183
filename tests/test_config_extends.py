"""``extends`` in config files: an ablation is its base plus the keys it changes.

The packaged ablations used to be whole copies written by a generator; each must still load to the
:class:`~agents.config.TrainConfig` it produced then (its base's values with exactly the keys below
changed; the values were captured from the generated files before they were rewritten).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.config import load_config
from agents.config_io import read_toml

# config -> (the config it extends, the values it produced for the keys that differ from that base)
PACKAGED_ABLATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "eapo_sched_const": ("eapo", {"acceptance_schedule": "const:0.126"}),
    "eapo_sched_slow": ("eapo", {"acceptance_schedule": "linear:1.0:0.0:50%"}),  # 200 of 400 (resolved below)
    "eapo_sched_fast": ("eapo", {"acceptance_schedule": "linear:1.0:0.0:12.5%"}),  # 50 of 400
    "eapo_expert_self": ("eapo", {"expert": "policy", "expert_kwargs": {"max_new_tokens": 96, "temperature": 1.0}}),
    "eapo_expert_noisy": ("eapo", {"expert": "noisy", "expert_kwargs": {"base": "reference", "error_rate": 0.5}}),
    "eapo_expert_noisy_k1": (
        "eapo",
        {"expert": "noisy", "expert_kwargs": {"base": "reference", "error_rate": 0.5}, "max_experts": 1},
    ),
    "eapo_expert_constant": ("eapo", {"expert": "constant"}),
    "distill_lora": ("distill_sft", {"lora_r": 8, "lora_alpha": 16}),
    "self_collab": (
        "expert_workflow",
        {"expert": "policy", "expert_kwargs": {"max_new_tokens": 96, "temperature": 1.0}},
    ),
    "workflow_noisy": (
        "expert_workflow",
        {"expert": "noisy", "expert_kwargs": {"base": "reference", "error_rate": 0.5}},
    ),
    "workflow_constant": ("expert_workflow", {"expert": "constant"}),
    "eapo_answer": ("eapo_hint", {"expert": "reference"}),
    "eapo_placebo": ("eapo_hint", {"expert": "constant"}),
    "mech_self_explore": ("eapo_hint", {"acceptance_schedule": "const:0.0"}),
}


# config -> (steps, p(t), turn budget) it resolved to at its own steps when every packaged schedule was
# written in absolute steps (captured before they became shares of the run, ``25%``; issue 21).
RESOLVED_SCHEDULES: dict[str, tuple[int, str, str]] = {
    "base": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "distill_lora": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "distill_sft": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "eapo": (400, "linear:1.0:0.0:100", "linear:4.0:2.0:200"),
    "eapo_answer": (80, "piecewise:0=1.0,12=1.0,24=0.0", "linear:4.0:1.0:48"),
    "eapo_expert_constant": (400, "linear:1.0:0.0:100", "linear:4.0:2.0:200"),
    "eapo_expert_noisy": (400, "linear:1.0:0.0:100", "linear:4.0:2.0:200"),
    "eapo_expert_noisy_k1": (400, "linear:1.0:0.0:100", "linear:4.0:2.0:200"),
    "eapo_expert_self": (400, "linear:1.0:0.0:100", "linear:4.0:2.0:200"),
    "eapo_hint": (80, "piecewise:0=1.0,12=1.0,24=0.0", "linear:4.0:1.0:48"),
    "eapo_placebo": (80, "piecewise:0=1.0,12=1.0,24=0.0", "linear:4.0:1.0:48"),
    "eapo_sched_const": (400, "const:0.126", "linear:4.0:2.0:200"),
    "eapo_sched_fast": (400, "linear:1.0:0.0:50", "linear:4.0:2.0:200"),
    "eapo_sched_slow": (400, "linear:1.0:0.0:200", "linear:4.0:2.0:200"),
    "expert_workflow": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "mech_base": (100, "linear:1.0:0.0:50", "linear:4.0:4.0:50"),
    "mech_distill_full": (100, "linear:1.0:0.0:50", "linear:4.0:4.0:50"),
    "mech_luffy": (80, "const:0.0", "linear:4.0:1.0:48"),
    "mech_self_explore": (80, "const:0.0", "linear:4.0:1.0:48"),
    "quickstart": (100, "linear:1.0:0.0:50", "linear:4.0:2.0:50"),
    "self_collab": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "self_explore": (400, "linear:1.0:0.0:200", "linear:4.0:2.0:200"),
    "workflow_constant": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
    "workflow_noisy": (100, "linear:1.0:0.0:50", "linear:8.0:4.0:50"),
}


def test_every_packaged_config_resolves_to_the_schedules_it_had() -> None:
    packaged = sorted(p.stem for p in (Path(__file__).parents[1] / "agents" / "configs").glob("*.toml"))
    assert packaged == sorted(RESOLVED_SCHEDULES)
    for name in packaged:
        config = load_config(name)
        assert (config.steps, str(config.acceptance()), str(config.turns())) == RESOLVED_SCHEDULES[name], name


def test_a_relative_schedule_follows_a_steps_override() -> None:
    eapo, short = load_config("eapo"), load_config("eapo", steps=60)
    assert "%" in eapo.acceptance_schedule and short.acceptance_schedule == eapo.acceptance_schedule
    assert (str(short.acceptance()), str(short.turns())) == ("linear:1.0:0.0:15", "linear:4.0:2.0:30")
    assert str(eapo.replace(steps=8).acceptance()) == "linear:1.0:0.0:2"


@pytest.mark.parametrize("name", sorted(PACKAGED_ABLATIONS))
def test_packaged_ablation_loads_to_the_config_it_used_to_be(name: str) -> None:
    base, changed = PACKAGED_ABLATIONS[name]
    expected = {**load_config(base).to_dict(), **changed}
    assert load_config(name).to_dict() == expected


@pytest.mark.parametrize("name", sorted(PACKAGED_ABLATIONS))
def test_packaged_ablation_is_short(name: str) -> None:
    """The point of ``extends``: the file holds the knobs, not a copy of its base."""
    text = (Path(__file__).parents[1] / "agents" / "configs" / f"{name}.toml").read_text()
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(keys) <= 8, keys


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_child_wins_and_tables_merge_key_by_key(tmp_path: Path) -> None:
    write(tmp_path / "base.toml", 'steps = 10\nlr = 0.1\n[expert_kwargs]\nbase = "reference"\nerror_rate = 0.5\n')
    child = write(tmp_path / "child.toml", 'extends = "base.toml"\nsteps = 3\n[expert_kwargs]\nerror_rate = 0.2\n')
    assert read_toml(child) == {"steps": 3, "lr": 0.1, "expert_kwargs": {"base": "reference", "error_rate": 0.2}}


def test_chains_resolve_relative_to_each_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "root.toml", "steps = 10\nlr = 0.1\nseed = 7\n")
    write(tmp_path / "sub" / "mid.toml", 'extends = "../root.toml"\nlr = 0.2\n')
    leaf = write(tmp_path / "sub" / "leaf.toml", 'extends = "mid.toml"\nseed = 1\n')
    assert read_toml(leaf) == {"steps": 10, "lr": 0.2, "seed": 1}


def test_a_bare_name_is_a_packaged_config(tmp_path: Path) -> None:
    child = write(tmp_path / "mine.toml", 'extends = "eapo"\nsteps = 5\n')
    config = load_config(child)
    eapo = load_config("eapo")
    assert config.steps == 5 and config.expert == eapo.expert and config.lr == eapo.lr


def test_overrides_win_over_the_whole_chain(tmp_path: Path) -> None:
    child = write(tmp_path / "mine.toml", 'extends = "eapo"\nsteps = 5\n')
    assert load_config(child, steps=2).steps == 2


def test_a_cycle_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", 'extends = "b.toml"\nsteps = 1\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\nsteps = 2\n')
    with pytest.raises(ValueError, match="cycle"):
        read_toml(tmp_path / "a.toml")
    write(tmp_path / "self.toml", 'extends = "self.toml"\n')
    with pytest.raises(ValueError, match="cycle"):
        read_toml(tmp_path / "self.toml")


def test_a_missing_base_names_both_files(tmp_path: Path) -> None:
    child = write(tmp_path / "child.toml", 'extends = "nope.toml"\n')
    with pytest.raises(ValueError, match=r"child\.toml.*nope\.toml"):
        read_toml(child)
    packaged = write(tmp_path / "typo.toml", 'extends = "eapo_typo"\n')
    with pytest.raises(ValueError, match="eapo_typo"):
        load_config(packaged)


def test_extends_must_be_a_string(tmp_path: Path) -> None:
    child = write(tmp_path / "child.toml", "extends = 3\n")
    with pytest.raises(ValueError, match="extends"):
        read_toml(child)


def test_invalid_toml_in_a_base_names_the_base(tmp_path: Path) -> None:
    write(tmp_path / "broken.toml", "steps = = 1\n")
    child = write(tmp_path / "child.toml", 'extends = "broken.toml"\n')
    with pytest.raises(ValueError, match=r"broken\.toml: invalid TOML"):
        read_toml(child)
