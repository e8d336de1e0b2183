"""Policy directories: the one writer (:func:`write_policy_dir`) and the check that both loaders agree.

Every directory the project writes that holds a policy — ``eapo build-policy``, distillation SFT's
``final_policy/``, ``eapo train``'s ``final_policy/`` and each checkpoint, LoRA runs (merged into a
copy) — is written here, so one rule decides what a policy directory holds: the Hugging Face model,
the tokenizer files, and ``eapo_policy.json`` (how it was made, from which policy, and whether plain
``transformers.AutoTokenizer.from_pretrained(dir)`` gives the same ids as
:func:`agents.policy.load_policy`).

Why the check: ``AutoTokenizer`` maps a ``qwen2`` config to ``Qwen2Tokenizer``, which ignores the
saved pipeline and rebuilds its own (Qwen's split regex and an NFC normalizer) around our vocabulary.
Our character tokenizer has no merges (the split cannot change its ids) and normalizes to NFC
itself, so both loaders agree on every text. A tokenizer for which they do not (an older directory
whose tokenizer lacks NFC, a future ``transformers``) gets a loud warning at write time, a
``TOKENIZER.md`` in the directory saying why, and ``load_policy`` repeats the warning.

Example:
    >>> from agents.policy.directory import probe_texts
    >>> any("<experts>" in t for t in probe_texts())
    True
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from agents.hf_protocols import causal_lm, lora_model
from agents.policy.tokenizer import encode_prompt, encode_segment
from eapo_env import prompts
from eapo_env.protocol import STOP_STRINGS

POLICY_INFO_FILE = "eapo_policy.json"
#: Written next to the weights only when ``AutoTokenizer`` would give other ids than ``load_policy``.
TOKENIZER_NOTE_FILE = "TOKENIZER.md"
INFO_FORMAT = "eapo-policy/2"


@dataclass(frozen=True)
class TokenizerCheck:
    """Whether ``AutoTokenizer.from_pretrained(dir)`` reproduces the ids of the policy's tokenizer.

    Attributes:
        auto_class: the class ``AutoTokenizer`` returned for the directory.
        agrees: same ids on every probe (prompts, observations, experts blocks, digits, non-NFC
            text), same special tokens, vocabulary size and chat template.
        file_agrees: the same holds for the saved ``tokenizer.json`` loaded as it is
            (``PreTrainedTokenizerFast``: what :func:`agents.policy.load_tokenizer` reads when true).
        probes: texts compared.
        differences: the first few mismatches of ``AutoTokenizer`` (``repr`` of the text, or the
            attribute that differs).
    """

    auto_class: str
    agrees: bool
    file_agrees: bool
    probes: int
    differences: tuple[str, ...] = ()


def probe_texts() -> list[str]:
    """Texts both loaders must encode alike: every fixed env text, an experts block, awkward Unicode."""
    question = "Compute $12 - 7 \\times 3$ and 0.5 + 1/4."
    texts = [
        prompts.render_prompt(question, eval_mode=eval_mode, max_experts=3, max_turns=8) for eval_mode in (False, True)
    ]
    texts += [prompts.NUDGE, prompts.CONSULT_DISABLED, prompts.EMPTY_CONSULT.format(max_experts=3)]
    texts.append(prompts.render_experts_block(["12 - 21 = -9 </experts> \\boxed{-9}", None, "x = 7"]))
    texts += ["<consult><query>What is 6*7?</query></consult>", "so 12 - 21 = -9 <answer>-9</answer>"]
    texts += ["9081726354", "  two  spaces\n\n\ttab\r\n", "héllo 中文 🎉 ∑ x² — “q”"]
    texts += ["e\u0301 \u212b \u2126 A\u030a", "\ufb01 \u00bd \u2460"]  # not NFC / compatibility forms
    return texts


def tokenizer_differences(
    loaded: PreTrainedTokenizerBase, tokenizer: PreTrainedTokenizerBase, texts: list[str]
) -> list[str]:
    """Where ``loaded`` differs from ``tokenizer``: special ids, size, chat template, ids of ``texts``."""
    differences = [
        name
        for name in ("bos_token_id", "eos_token_id", "chat_template")
        if getattr(loaded, name, None) != getattr(tokenizer, name, None)
    ]
    if len(loaded) != len(tokenizer):
        differences.append(f"len {len(loaded)} != {len(tokenizer)}")
    for text in texts:
        same_prompt = encode_prompt(loaded, text) == encode_prompt(tokenizer, text)
        if not same_prompt or encode_segment(loaded, text) != encode_segment(tokenizer, text):
            differences.append(repr(text[:60]))
    return differences


def check_auto_tokenizer(path: str | Path, tokenizer: PreTrainedTokenizerBase) -> TokenizerCheck:
    """Load ``path`` with plain ``AutoTokenizer`` (and its ``tokenizer.json`` as saved) and compare
    their ids with ``tokenizer``'s on :func:`probe_texts`."""
    texts = probe_texts()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own notices; the verdict is ours
        auto = AutoTokenizer.from_pretrained(str(path))
        as_saved = PreTrainedTokenizerFast.from_pretrained(str(path))
    differences = tokenizer_differences(auto, tokenizer, texts)
    file_agrees = not tokenizer_differences(as_saved, tokenizer, texts)
    return TokenizerCheck(type(auto).__name__, not differences, file_agrees, len(texts), tuple(differences[:8]))


def _note(check: TokenizerCheck) -> str:
    return (
        "# Load this policy with `agents.policy.load_policy(dir)`, not plain `AutoTokenizer`\n\n"
        f"`transformers.AutoTokenizer.from_pretrained(dir)` returns `{check.auto_class}` here, and it gives\n"
        "other token ids than the tokenizer this policy was trained with (`tokenizer.json` as saved),\n"
        f"on these probes: {', '.join(check.differences)}.\n\n"
        "Why: for a `qwen2` config, transformers 5 builds `Qwen2Tokenizer`, which replaces the saved\n"
        "normalizer and pre-tokenizer with its own (an NFC normalizer and Qwen's split regex). Load the\n"
        "saved file as it is: `PreTrainedTokenizerFast.from_pretrained(dir)` (what `load_policy` does),\n"
        "or rebuild the tokenizer with `agents.policy.build_tokenizer` (it normalizes to NFC, so the\n"
        "standard loader agrees with it).\n"
    )


def merged_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The plain causal LM to save: DDP unwrapped, LoRA adapters merged into a copy (the trained
    module keeps its adapters, so training or a resume goes on unchanged)."""
    model = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if hasattr(model, "merge_and_unload"):  # a peft model
        return lora_model(copy.deepcopy(model)).merge_and_unload()
    return model


def derived_info(source: str | Path | None) -> dict[str, Any] | None:
    """The ``eapo_policy.json`` of the policy a directory was made from (``None``: none, or a hub model)."""
    if source is None:
        return None
    f = Path(source) / POLICY_INFO_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def write_policy_dir(
    out: str | Path,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    written_by: str,
    source: str | Path | None = None,
    info: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> Path:
    """Write a loadable policy directory: model, tokenizer, ``eapo_policy.json``; check the loaders agree.

    Args:
        out: the directory (created; files of the same names are overwritten).
        model: the causal LM, or the peft model (its adapters are merged into a copy), or DDP around one.
        tokenizer: the tokenizer the policy was trained with (saved as is).
        written_by: what wrote it: ``build``, ``sft``, ``train``, ``checkpoint``, ...
        source: the policy directory it started from; its ``eapo_policy.json`` is copied under ``base``
            (so every directory says how to rebuild where it came from).
        info: the build record (``build`` only): its keys go at the top of ``eapo_policy.json``.
        details: anything the writer adds (a step, LoRA rank, ...), under ``details``.

    Returns:
        ``Path(out)``. Warns (``UserWarning``) and writes ``TOKENIZER.md`` when plain
        ``AutoTokenizer.from_pretrained(out)`` would give other ids than :func:`load_policy`.
    """
    from agents.policy.model import count_parameters

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    plain = merged_copy(model)
    causal_lm(plain).save_pretrained(path)
    tokenizer.save_pretrained(path)
    check = check_auto_tokenizer(path, tokenizer)
    record: dict[str, Any] = {"format": INFO_FORMAT, **(info or {}), "written_by": written_by}
    if source is not None:
        record["source"] = str(source)
    record.setdefault("parameters", count_parameters(plain))
    record.setdefault("vocab_size", len(tokenizer))
    record.setdefault("chat_template", bool(getattr(tokenizer, "chat_template", None)))
    record.setdefault("stop_strings", list(STOP_STRINGS))
    record["tokenizer"] = {**asdict(check), "differences": list(check.differences), "file": "tokenizer.json"}
    if details:
        record["details"] = details
    base = derived_info(source)
    if base is not None:
        record["base"] = base.get("base", base) if base.get("written_by", "build") != "build" else base
    (path / POLICY_INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    note = path / TOKENIZER_NOTE_FILE
    if check.agrees:
        note.unlink(missing_ok=True)
    else:
        note.write_text(_note(check))
        warnings.warn(
            f"{path}: AutoTokenizer.from_pretrained gives {check.auto_class} with other token ids than this "
            f"policy was trained with ({', '.join(check.differences)}); load it with agents.policy.load_policy "
            f"(see {note})",
            UserWarning,
            stacklevel=2,
        )
    return path


def read_policy_info(path: str | Path) -> dict[str, Any] | None:
    """The ``eapo_policy.json`` of a policy directory, or ``None`` (e.g. a hub model)."""
    f = Path(path) / POLICY_INFO_FILE
    return json.loads(f.read_text()) if f.is_file() else None
