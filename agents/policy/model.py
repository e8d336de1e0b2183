"""Small Qwen2 causal LMs built from scratch (no download), and a loader for any HF causal LM.

Sizes (with the ~300-token character vocabulary of our tokenizer):

* ``tiny``: hidden 128, 2 layers, 4 heads, MLP 512: about 0.45M parameters. The shipped base policy
  (``agents/assets/tiny_base``); an SFT step on a batch of 64 traces takes ~0.1-0.2 s on 2 CPU cores.
* ``small``: hidden 384, 8 layers, 6 heads (2 kv heads), MLP 1152: about 14M parameters.

Embeddings are tied (at this size the embedding matrix is a large share of the parameters).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, TypedDict

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

from agents.device import pick_device


class ModelSize(TypedDict):
    """The architecture fields of a named size (keyword arguments of ``Qwen2Config``)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int


#: Architecture of each named size; everything else comes from :func:`build_model`'s defaults.
SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(
        hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, intermediate_size=512
    ),
    "small": ModelSize(
        hidden_size=384, num_hidden_layers=8, num_attention_heads=6, num_key_value_heads=2, intermediate_size=1152
    ),
}


def model_config(
    tokenizer: PreTrainedTokenizerBase, size: str = "tiny", max_position_embeddings: int = 2048
) -> Qwen2Config:
    """The Qwen2 config of a named size, with the vocabulary and special ids of ``tokenizer``."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; known sizes: {', '.join(SIZES)}")
    # Round the vocabulary up to a multiple of 64: friendlier matmul shapes, and room for a few
    # tokens added later without resizing.
    vocab = (len(tokenizer) + 63) // 64 * 64
    return Qwen2Config(
        vocab_size=vocab,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        rms_norm_eps=1e-6,
        initializer_range=0.02,
        use_sliding_window=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SIZES[size],
    )


def build_model(tokenizer: PreTrainedTokenizerBase, size: str = "tiny", seed: int = 0) -> PreTrainedModel:
    """A freshly initialised Qwen2 causal LM sized for ``tokenizer``; same seed → same weights.

    Example:
        >>> from agents.policy.tokenizer import build_tokenizer
        >>> tok = build_tokenizer()
        >>> m = build_model(tok, "tiny", seed=0)
        >>> m.config.model_type, m.config.hidden_size
        ('qwen2', 128)
    """
    config = model_config(tokenizer, size)
    # A private generator state: seed, build, then restore, so building a model does not disturb
    # the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


#: Policies shipped inside the package, loadable by name (``policy = "tiny-base"`` in a config).
#: ``expert-reader-base`` (issue 20) reads and carries out an expert's reply (agents/policy/recipes.py).
_ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_POLICIES: dict[str, Path] = {
    "tiny-base": _ASSETS / "tiny_base",
    "expert-reader-base": _ASSETS / "expert_reader_base",
}


def resolve_policy_path(name_or_path: str | Path) -> str:
    """A shipped policy's directory for its name (``"tiny-base"``), else ``name_or_path`` unchanged.

    Example:
        >>> resolve_policy_path("tiny-base").endswith("tiny_base")
        True
        >>> resolve_policy_path("runs/policy")
        'runs/policy'
    """
    shipped = SHIPPED_POLICIES.get(str(name_or_path))
    return str(shipped) if shipped is not None else str(name_or_path)


def load_tokenizer(name_or_path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a policy directory, with the ids it was trained on.

    A directory the project wrote (it has ``eapo_policy.json``) is loaded from its own
    ``tokenizer.json`` as saved (a plain fast tokenizer), unless its record says only
    ``AutoTokenizer`` reproduces the training ids. ``AutoTokenizer`` maps a ``qwen2`` config to
    ``Qwen2Tokenizer``, which rebuilds the pre-tokenizer and normalizer from its own defaults; for our
    character tokenizer (NFC, no merges) that changes no id, which
    :func:`agents.policy.directory.write_policy_dir` checks and records when it writes a directory.
    A directory whose record says the two loaders differ, or an older one whose character tokenizer
    lacks NFC, loads with a ``UserWarning`` saying so. Any other model goes through ``AutoTokenizer``.
    """
    from agents.policy.directory import read_policy_info

    path = Path(resolve_policy_path(name_or_path))
    info = read_policy_info(path)
    if info is None or not (path / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(path))
    record = info.get("tokenizer") or {}
    if record.get("file_agrees") is False and record.get("agrees"):
        return AutoTokenizer.from_pretrained(str(path))
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    _warn_if_auto_tokenizer_differs(path, record, tokenizer)
    return tokenizer


def _warn_if_auto_tokenizer_differs(path: Path, record: dict[str, Any], tokenizer: PreTrainedTokenizerBase) -> None:
    """Say so when plain ``AutoTokenizer.from_pretrained(path)`` would give other ids than ``tokenizer``."""
    from tokenizers import normalizers

    if record:
        if record.get("agrees") is False:
            warnings.warn(
                f"{path}: plain AutoTokenizer.from_pretrained gives {record.get('auto_class')} with other token ids"
                f" than this policy was trained with ({', '.join(record.get('differences', []))}); see"
                f" {path / 'TOKENIZER.md'}",
                UserWarning,
                stacklevel=3,
            )
        return
    backend = getattr(tokenizer, "backend_tokenizer", None)
    config = path / "config.json"
    is_qwen2 = config.is_file() and json.loads(config.read_text()).get("model_type") == "qwen2"
    if is_qwen2 and backend is not None and not isinstance(backend.normalizer, normalizers.NFC):
        warnings.warn(
            f"{path}: its tokenizer.json has no NFC normalizer, and plain AutoTokenizer.from_pretrained (Qwen2Tokenizer"
            " for a qwen2 config) adds one: the two give other ids for text not in NFC. Re-save it with"
            " agents.policy.directory.write_policy_dir, or load it only with agents.policy.load_policy",
            UserWarning,
            stacklevel=3,
        )


def load_policy(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    **model_kwargs: Any,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load ``(model, tokenizer)`` from a directory written by ``build_policy`` or any HF causal LM.

    Args:
        name_or_path: a shipped policy's name (``"tiny-base"``), a local directory, or a hub id
            (resolved from the local cache when ``HF_HUB_OFFLINE=1``).
        device: where to put the model (``"auto"``: CUDA when present, :func:`agents.device.pick_device`).
        dtype: e.g. ``torch.bfloat16`` or ``"bfloat16"``; ``None`` keeps float32 on CPU and picks
            bfloat16 on CUDA.
        model_kwargs: passed to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``attn_implementation``).

    The tokenizer gets a pad token (the eos token) when it has none, since batched rollouts pad.
    """
    device = pick_device(device)  # "auto" as everywhere: CUDA when present
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name_or_path = resolve_policy_path(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **model_kwargs)
    # transformers wraps ``to`` with ``functools.wraps(Module.to)``, whose stub types ``self`` as the first argument
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model, tokenizer
