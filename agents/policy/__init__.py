"""The LLM policy: a locally trained tokenizer, small Qwen2 models, ``build_policy`` / ``load_policy``.

Names are resolved lazily (PEP 562), so importing one submodule does not pull in the others
(``agents.sft`` imports ``agents.policy.tokenizer`` while ``build`` imports ``agents.sft``).

Example:
    >>> from agents.policy import build_policy, load_policy   # doctest: +SKIP
    >>> model, tokenizer = load_policy(build_policy("runs/policy"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_tokenizer": "agents.policy.tokenizer",
    "fixed_phrases": "agents.policy.tokenizer",
    "mine_phrases": "agents.policy.tokenizer",
    "encode_prompt": "agents.policy.tokenizer",
    "encode_segment": "agents.policy.tokenizer",
    "prompt_text": "agents.policy.tokenizer",
    "tag_token_ids": "agents.policy.tokenizer",
    "build_model": "agents.policy.model",
    "count_parameters": "agents.policy.model",
    "load_policy": "agents.policy.model",
    "load_tokenizer": "agents.policy.model",
    "resolve_policy_path": "agents.policy.model",
    "SHIPPED_POLICIES": "agents.policy.model",
    "SIZES": "agents.policy.model",
    "build_policy": "agents.policy.build",
    "format_compliance": "agents.policy.build",
    "read_policy_info": "agents.policy.directory",
    "POLICY_INFO_FILE": "agents.policy.directory",
    "write_policy_dir": "agents.policy.directory",
    "check_auto_tokenizer": "agents.policy.directory",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agents.policy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
