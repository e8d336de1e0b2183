"""A character-level tokenizer built locally for the protocol, and the prompt-encoding rule.

Why our own tokenizer: the embedded default must build a policy with no download. It is a
byte-level BPE with no merges: it round-trips any text in Unicode NFC exactly (every byte is a
symbol), every digit is its own token (a tiny model learns arithmetic digit by digit; merged numbers
hide it), and fixed texts (prompt sentences, solution phrases) are single added tokens, so sequences
stay short.

Choices that the rest of the learner relies on:

* Every protocol tag (``PROTOCOL_TAGS``) and the env's own markup (``<env>``, ``</env>``,
  ``<expert index="``, ``</expert>``) is an *added* token, so each tag is exactly one token: stop
  detection at ``</answer>`` / ``</consult>`` is a token-id check, and the policy cannot emit a
  half-formed tag. They are added as *non-special* tokens so ``decode(skip_special_tokens=True)``
  keeps them (they are text the env must see).
* Every character is its own token (no merges), except the added tags and phrases.
* Text is normalized to NFC before it is split into bytes. ``AutoTokenizer.from_pretrained`` maps a
  ``qwen2`` directory to ``Qwen2Tokenizer``, which rebuilds the pipeline around the saved vocabulary
  with an NFC normalizer and Qwen's split regex; with NFC here and no merges (the split cannot change
  the ids), plain ``AutoTokenizer`` gives exactly our ids on every text (checked for every directory
  written by :func:`agents.policy.directory.write_policy_dir`). NFC only rewrites text that has a
  canonically equal composed form (``"e\u0301"`` -> ``"é"``); the env's and the traces' texts are NFC.
* Special tokens are Qwen-like: ``<|endoftext|>`` (bos and pad), ``<|im_start|>``, ``<|im_end|>``
  (eos). Nothing is added automatically on ``encode``; the chat template is the only place they appear.

Prompt format (:func:`encode_prompt`): the env's first observation becomes the user message of the
chat template, followed by the generation prompt ``<|im_start|>assistant\\n``. Every later policy
turn, expert block and env nudge is appended raw inside that one assistant message (tokenized per
segment, never re-tokenized as a whole), which is what both SFT and the rollout engine do.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from eapo_env import prompts
from eapo_env.protocol import PROTOCOL_TAGS

BOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
EOS_TOKEN = IM_END
SPECIAL_TOKENS: tuple[str, ...] = (BOS_TOKEN, IM_START, IM_END)
#: Env markup that is not in ``PROTOCOL_TAGS`` (the policy never writes it, but it reads it often).
#: ``<expert index="`` is one token; the index digit and ``">`` follow as ordinary tokens.
ENV_TAGS: tuple[str, ...] = ("<env>", "</env>", '<expert index="', "</expert>")
#: All non-special added tokens, each encoded as exactly one token.
TAG_TOKENS: tuple[str, ...] = tuple(PROTOCOL_TAGS) + ENV_TAGS

#: Qwen-like ChatML template (without Qwen's default system message, which would cost ~20 tokens).
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


#: Splits a text into the pieces that may become phrase tokens: math (``$...$``) and numbers are
#: cut out, so no phrase ever holds a digit (every digit stays its own token).
_PHRASE_SPLIT = re.compile(r"\$[^$]*\$|[0-9]+|<[^<>]*>|\{[a-z_]+\}")


def fixed_phrases() -> list[str]:
    """The env's fixed texts (prompts, nudges), cut at tags, format fields and numbers."""
    texts = [prompts.TRAIN_PROMPT, prompts.EVAL_PROMPT, prompts.NUDGE, prompts.EMPTY_CONSULT, prompts.CONSULT_DISABLED]
    unavailable = '" status="unavailable">' + prompts.UNAVAILABLE  # an experts-block entry without a reply
    return mine_phrases(texts, min_count=1) + ["user\n", "assistant\n", unavailable]


def mine_phrases(texts: Iterable[str], min_count: int = 20, min_chars: int = 4) -> list[str]:
    """Text pieces between math, numbers and tags that occur at least ``min_count`` times.

    Example:
        >>> mine_phrases(["Compute $1 + 2$.", "Compute $3 + 4$."], min_count=2)
        ['Compute ']
    """
    counts = Counter(piece for t in texts for piece in _PHRASE_SPLIT.split(t) if len(piece) >= min_chars)
    return sorted((p for p, c in counts.items() if c >= min_count), key=lambda p: (-len(p), p))


def build_tokenizer(phrases: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: a byte-level BPE with **no merges**, plus single-token tags.

    Every byte is one token, so every digit and every character of a number is its own token; the
    protocol tags, the env markup and each of ``phrases`` (long fixed texts: prompt sentences,
    solution phrases) are added tokens, one token each, so prompts stay short. No merges also makes
    the ids independent of the pre-tokenizer, and the NFC normalizer is the one ``Qwen2Tokenizer``
    uses: a loader that swaps both (``AutoTokenizer`` of a ``qwen2`` directory does) still gives the
    same ids (pinned by ``tests/test_policy_build.py`` and ``tests/test_policy_dirs.py``).

    Args:
        phrases: extra fixed texts to make single tokens (e.g. :func:`fixed_phrases` +
            :func:`mine_phrases` of the training corpus). A phrase must not contain a digit.

    Example:
        >>> tok = build_tokenizer(["Compute "])
        >>> [tok.decode([i]) for i in tok.encode("Compute 12<answer>")]
        ['Compute ', '1', '2', '<answer>']
        >>> tok.decode(tok.encode("é ü"))
        'é ü'
    """
    phrases = [p for p in dict.fromkeys(phrases) if p and p not in TAG_TOKENS]
    if any(ch.isdigit() for p in phrases for ch in p):
        raise ValueError("a phrase token must not contain a digit (digits are one token each)")
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # NFC (as Qwen2Tokenizer), no prefix space: decode(encode(x)) == x for every NFC string.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    # normalized=False: match the raw text; no strip: whitespace around a tag stays its own token.
    added = list(TAG_TOKENS) + phrases
    tok.add_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False) for t in added])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # the HF default would rewrite " ." -> "." on decode
        model_max_length=2048,
    )


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when ``tokenizer`` carries a chat template (ours always does; base models may not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: PreTrainedTokenizerBase, prompt: str, use_chat_template: bool = True) -> str:
    """The text that precedes the first policy turn: the chat-wrapped prompt, or the prompt itself."""
    if use_chat_template and has_chat_template(tokenizer):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        if not isinstance(text, str):  # HF types the result for every mode; tokenize=False gives a str
            raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, not str")
        return text
    return prompt


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, use_chat_template: bool = True) -> list[int]:
    """Token ids of the episode's first observation, exactly as SFT and the rollout engine see it.

    With a chat template, the template writes every special token itself (no extra BOS); without
    one (a base model), the tokenizer's own special tokens are added (e.g. Llama's BOS).
    """
    if use_chat_template and has_chat_template(tokenizer):
        return tokenizer.encode(prompt_text(tokenizer, prompt, True), add_special_tokens=False)
    return tokenizer.encode(prompt, add_special_tokens=True)


def encode_segment(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of one later segment (policy turn, experts block, nudge), tokenized on its own."""
    return tokenizer.encode(text, add_special_tokens=False)


def tag_token_ids(tokenizer: PreTrainedTokenizerBase, tags: Sequence[str]) -> list[int]:
    """Ids of tags that are single tokens in ``tokenizer`` (e.g. the stop tags); others skipped."""
    out = []
    for tag in tags:
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) == 1:
            out.append(ids[0])
    return out
