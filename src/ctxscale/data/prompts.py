"""Prompt text as the original builds it, split into a shared prefix and per-instance suffixes.

A demonstration is ``prefix_seq + input + suffix_seq + reference + separator``; the question
is ``(prefix_seq + input + suffix_seq).rstrip()``. The full prompt is the instruction, the
demonstrations and the question, so everything before the question is identical for every
instance of one (dataset, n_shots, seed): that is the ``prefix`` of the prompts file, the part
a backend can encode once and reuse (prefix / KV caching). ``n_pmt`` is the length of the
token ids a backend feeds the model for ``prefix + suffix``, BOS included, as the original's
``len(prompt_token_ids)`` (see ``ctxscale.inference.base``). The 256-token filter on single
examples counts without special tokens (:func:`token_counter`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

TokenCounter = Callable[[str], int]


def demonstration(
    prefix_seq: str, suffix_seq: str, separator: str, input_text: str, answer: str
) -> str:
    """One demonstration block, separator included."""
    return prefix_seq + input_text + suffix_seq + answer + separator


def question(prefix_seq: str, suffix_seq: str, input_text: str) -> str:
    """The per-instance part of the prompt (right-stripped, as the original)."""
    return (prefix_seq + input_text + suffix_seq).rstrip()


def build_prefix(
    instruction: str,
    prefix_seq: str,
    suffix_seq: str,
    separator: str,
    demos: Sequence[tuple[str, str]],
) -> str:
    """Instruction followed by the demonstrations ``(input, answer)`` in order."""
    return instruction + "".join(
        demonstration(prefix_seq, suffix_seq, separator, inp, ans) for inp, ans in demos
    )


def approx_token_count(text: str) -> int:
    """Tokenizer-free estimate used when no tokenizer is given: ceil(UTF-8 bytes / 4).

    About right for English with Llama-style BPE (~4 characters a token); it only decides
    which examples pass the 256-token filter, so a prompts file built without a tokenizer
    says so (``"tokenizer": "approx_bytes_div_4"``).
    """
    return math.ceil(len(text.encode("utf-8")) / 4)


def token_counter(tokenizer: Any | None) -> tuple[TokenCounter, str]:
    """A counting function and its name for a transformers tokenizer, a callable, or None."""
    if tokenizer is None:
        return approx_token_count, "approx_bytes_div_4"
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "name_or_path"):

        def count(text: str) -> int:
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

        return count, str(tokenizer.name_or_path)
    if callable(tokenizer):
        return tokenizer, getattr(tokenizer, "__name__", "callable")
    raise TypeError(f"not a tokenizer or token-counting callable: {type(tokenizer).__name__}")


def count_n_pmt(prefix: str, suffix: str, tokenizer: Any | None) -> int:
    """Tokens of the full prompt ``prefix + suffix`` without special tokens: n_pmt less the
    BOS a backend adds in front (``ctxscale.inference.base.encode_prompts``)."""
    count, _ = token_counter(tokenizer)
    return count(prefix + suffix)
