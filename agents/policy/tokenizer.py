"""A byte-level BPE tokenizer trained locally for the protocol, and the prompt-encoding rule.

Why our own tokenizer: the embedded default must build a policy with no download. A byte-level BPE
round-trips any text exactly (every byte is a symbol), and trained on problem + protocol text it
gives short sequences for the tiny model.

Choices that the rest of the learner relies on:

* Every protocol tag (``PROTOCOL_TAGS``) and the env's own markup (``<env>``, ``</env>``,
  ``<expert index="``, ``</expert>``) is an *added* token, so each tag is exactly one token: stop
  detection at ``</answer>`` / ``</consult>`` is a token-id check, and the policy cannot emit a
  half-formed tag. They are added as *non-special* tokens so ``decode(skip_special_tokens=True)``
  keeps them (they are text the env must see).
* Digits are split one per token (as in Qwen/Llama-3), so arithmetic is not hidden behind merges.
* Special tokens are Qwen-like: ``<|endoftext|>`` (bos and pad), ``<|im_start|>``, ``<|im_end|>``
  (eos). Nothing is added automatically on ``encode``; the chat template is the only place they appear.

Prompt format (:func:`encode_prompt`): the env's first observation becomes the user message of the
chat template, followed by the generation prompt ``<|im_start|>assistant\\n``. Every later policy
turn, expert block and env nudge is appended raw inside that one assistant message (tokenized per
segment, never re-tokenized as a whole), which is what both SFT and the rollout engine do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

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


def build_tokenizer(
    corpus: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``corpus`` and wrap it as a Hugging Face fast tokenizer.

    Args:
        corpus: training texts (problem statements, solutions, prompts, traces).
        vocab_size: upper bound on the vocabulary (the BPE stops early on a small corpus).
        min_frequency: a pair must occur this often to be merged.

    Returns:
        A tokenizer with the special tokens, the tag tokens and a chat template set; it survives
        ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.

    Example:
        >>> tok = build_tokenizer(["What is 2 + 3? <answer>5</answer>"] * 4, vocab_size=300)
        >>> tok.decode(tok.encode("<answer>5</answer>"))
        '<answer>5</answer>'
        >>> len(tok.encode("</answer>"))
        1
    """
    tok = Tokenizer(models.BPE())
    # Digits first (one token per digit), then the GPT-2 byte-level split; no normalizer, no prefix
    # space: decode(encode(x)) == x for every string.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    # normalized=False: match the raw text; no strip: whitespace around a tag stays its own token.
    tok.add_tokens([AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False) for t in TAG_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,  # the HF default would rewrite " ." → "." on decode
        model_max_length=2048,
    )


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when ``tokenizer`` carries a chat template (ours always does; base models may not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: PreTrainedTokenizerBase, prompt: str, use_chat_template: bool = True) -> str:
    """The text that precedes the first policy turn: the chat-wrapped prompt, or the prompt itself."""
    if use_chat_template and has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
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
