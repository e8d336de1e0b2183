"""``EAPOTokenEnv``: the EAPO text env seen one token at a time (for classic RL libraries such as skrl).

Actions are ``Discrete(vocab_size)`` (one token per step); observations a ``Box`` of the last
``window`` token ids of the whole history (prompt, policy, expert and env tokens), left-padded
with the pad id. The dynamics are those of the text env underneath: a turn ends when the policy
emits a stop token (``</consult>``, ``</answer>``, EOS — or any token whose text contains a stop
string) or when the turn reaches ``max_turn_tokens``; then the decoded turn is one ``step`` of the
text env, whose observation is encoded and appended to the history, and whose reward, flags and
``info`` are returned. Token steps inside a turn have reward 0 and ``info["turn_ended"] = False``.

A tokenizer is any object with ``encode(text) -> list[int]`` and ``decode(ids) -> str`` (a Hugging
Face tokenizer works; special tokens are not added). :class:`ProtocolTokenizer` is a tiny built-in
word/character tokenizer whose vocabulary holds every protocol tag as one token, a few answer
characters, and optional extra words, so a small RL task runs without torch or downloads.

Example:
    >>> tok = ProtocolTokenizer()
    >>> env = EAPOTokenEnv(tokenizer=tok, problems="generated:arithmetic", window=16)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, int(env.action_space.n) == tok.vocab_size
    ((16,), True)
    >>> for t in tok.encode("<answer>7</answer>"):
    ...     obs, reward, terminated, truncated, info = env.step(t)
    >>> terminated, info["turn_ended"], info["answer"]
    (True, True, '7')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from eapo_env.progress import set_progress
from eapo_env.protocol import PROTOCOL_TAGS, STOP_STRINGS
from eapo_env.registration import TRAIN_ID, make_from_entry_point

#: Characters :class:`ProtocolTokenizer` knows by default: digits and the signs of simple answers.
ANSWER_CHARS = "0123456789-/. "


class ProtocolTokenizer:
    """A tiny greedy longest-match tokenizer: protocol tags and ``words`` are single tokens.

    Vocabulary: ``<pad>`` (0), ``<eos>`` (1), ``<unk>`` (2), the protocol tags, then ``words``, then
    the characters of ``chars``. Encoding takes the longest vocabulary entry at each position; a
    character not in the vocabulary becomes ``<unk>`` (decoded as ``"?"``), runs of them collapse to
    one when ``collapse_unknown`` (expert prose then costs one token, not one per letter).

    Example:
        >>> tok = ProtocolTokenizer(words=["hint"])
        >>> ids = tok.encode("<consult><query>hint</query></consult>")
        >>> len(ids), tok.decode(ids)
        (5, '<consult><query>hint</query></consult>')
        >>> tok.decode(tok.encode("x = 12"))
        '? ? 12'
    """

    pad_token_id = 0
    eos_token_id = 1
    unk_token_id = 2

    def __init__(self, words: Sequence[str] = (), chars: str = ANSWER_CHARS, collapse_unknown: bool = True) -> None:
        vocab = ["<pad>", "<eos>", "<unk>", *PROTOCOL_TAGS, *words, *chars]
        self.vocab: list[str] = list(dict.fromkeys(vocab))  # keep order, drop repeats
        self.ids = {token: i for i, token in enumerate(self.vocab)}
        self.collapse_unknown = collapse_unknown
        self._max_len = max(len(t) for t in self.vocab)
        self._by_first: dict[str, list[str]] = {}
        for token in sorted(self.vocab[3:], key=len, reverse=True):  # longest first
            self._by_first.setdefault(token[0], []).append(token)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        i, n, unk = 0, len(text), self.unk_token_id
        while i < n:
            for token in self._by_first.get(text[i], ()):
                if text.startswith(token, i):
                    out.append(self.ids[token])
                    i += len(token)
                    break
            else:
                if not (self.collapse_unknown and out and out[-1] == unk):
                    out.append(unk)
                i += 1
        return out

    def decode(self, ids: Sequence[int]) -> str:
        vocab = self.vocab
        return "".join("?" if i == self.unk_token_id else "" if i < 2 else vocab[i] for i in ids)

    def stop_token_ids(self) -> set[int]:
        """Ids whose text contains a stop string (``</consult>``, ``</answer>``), and EOS."""
        return {i for i, t in enumerate(self.vocab) if any(s in t for s in STOP_STRINGS)} | {self.eos_token_id}


def _encode(tokenizer: Any, text: str) -> list[int]:
    try:
        return list(tokenizer.encode(text, add_special_tokens=False))  # HF: no BOS/EOS in the middle
    except TypeError:
        return list(tokenizer.encode(text))


def _stop_ids(tokenizer: Any) -> tuple[set[int], bool]:
    """(stop ids, whether the text must be checked too) for any tokenizer."""
    if callable(getattr(tokenizer, "stop_token_ids", None)):
        return set(tokenizer.stop_token_ids()), False
    ids: set[int] = set()
    text_check = False
    for stop in STOP_STRINGS:
        enc = _encode(tokenizer, stop)
        if len(enc) == 1:
            ids.add(enc[0])
        else:  # the stop string spans tokens: look for it in the decoded turn
            text_check = True
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None:
        ids.add(int(eos))
    return ids, text_check


class EAPOTokenEnv(gym.Env[np.ndarray, np.int64]):
    """Token-level view of an EAPO text env (see the module docs).

    Args:
        text_env: the text env to drive; default the ``EAPO-Math-v0`` entry point's env built from
            ``text_env_kwargs`` (``wrappers.make_math_env``: verified reward, the same wrappers' keyword arguments).
        tokenizer: an object with ``encode``/``decode``; default :class:`ProtocolTokenizer`.
        window: observation length (last ``window`` tokens of the history).
        max_turn_tokens: a turn that reaches this many tokens is sent as it is.
        vocab_size: the action count; default ``tokenizer.vocab_size`` (or ``len(tokenizer)``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        text_env: gym.Env[str, str] | None = None,
        tokenizer: Any = None,
        *,
        window: int = 64,
        max_turn_tokens: int = 32,
        vocab_size: int | None = None,
        render_mode: str | None = None,
        **text_env_kwargs: Any,
    ) -> None:
        if text_env is None:  # the registered id's env, default wrappers included (built one layer up)
            text_env = make_from_entry_point(TRAIN_ID, **text_env_kwargs)
        elif text_env_kwargs:
            raise TypeError("keyword arguments for the text env are only accepted without text_env")
        if window < 1 or max_turn_tokens < 1:
            raise ValueError("window and max_turn_tokens must be >= 1")
        self.text_env = text_env
        self.tokenizer = tokenizer if tokenizer is not None else ProtocolTokenizer()
        self.vocab_size = int(vocab_size or getattr(self.tokenizer, "vocab_size", None) or len(self.tokenizer))
        self.pad_id = int(getattr(self.tokenizer, "pad_token_id", None) or 0)
        self.stop_ids, self._text_stop = _stop_ids(self.tokenizer)
        self.window = window
        self.max_turn_tokens = max_turn_tokens
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = spaces.Box(0, self.vocab_size - 1, shape=(window,), dtype=np.int64)
        self.tokens: list[int] = []  # the whole history
        self.policy_mask: list[bool] = []  # True for tokens the policy emitted (the loss mask)
        self._turn: list[int] = []
        self._done = True

    def set_progress(self, step: int) -> None:
        set_progress(self.text_env, step)

    def _observe(self) -> np.ndarray:
        obs = np.full(self.window, self.pad_id, dtype=np.int64)
        tail = self.tokens[-self.window :]
        if tail:
            obs[self.window - len(tail) :] = tail
        return obs

    def _append(self, text: str) -> None:
        ids = _encode(self.tokenizer, text)
        self.tokens.extend(ids)
        self.policy_mask.extend([False] * len(ids))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        text, info = self.text_env.reset(seed=seed, options=options)
        self.tokens, self.policy_mask, self._turn = [], [], []
        self._append(text)
        self._done = False
        return self._observe(), dict(info, turn_ended=False, turn_tokens=0)

    def step(self, action: int | np.integer | np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("call reset() before step() (the episode is over or never started)")
        token = int(np.asarray(action).reshape(-1)[0]) if isinstance(action, np.ndarray) else int(action)
        if not 0 <= token < self.vocab_size:
            raise ValueError(f"token id {token} outside [0, {self.vocab_size})")
        self._turn.append(token)
        self.tokens.append(token)
        self.policy_mask.append(True)
        ended = token in self.stop_ids or len(self._turn) >= self.max_turn_tokens
        text = None
        if not ended and self._text_stop:
            text = self.tokenizer.decode(self._turn)
            ended = any(stop in text for stop in STOP_STRINGS)
        if not ended:
            return self._observe(), 0.0, False, False, {"turn_ended": False, "turn_tokens": len(self._turn)}
        if text is None:
            text = self.tokenizer.decode(self._turn)
        n_tokens = len(self._turn)
        self._turn = []
        obs_text, reward, terminated, truncated, info = self.text_env.step(text)
        self._append(obs_text)
        self._done = bool(terminated or truncated)
        info = dict(info, turn_ended=True, turn_tokens=n_tokens, turn_text=text)
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.tokenizer.decode(self.tokens)
        return None

    def close(self) -> None:
        self.text_env.close()


def make_token_env(**kwargs: Any) -> EAPOTokenEnv:
    """Entry point for ``EAPO-Math-Token-v0``: :class:`EAPOTokenEnv` over ``EAPO-Math-v0``."""
    return EAPOTokenEnv(**kwargs)
