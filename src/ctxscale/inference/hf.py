"""transformers backend: batched greedy decoding with the few-shot prefix encoded once.

The prefix (BOS + instruction + demonstrations) is run through the model once per prompts
file; its KV cache is then copied into every batch of instances (``batch_repeat_interleave``
on a copy), so no instance recomputes the prefix. Inside a batch the suffixes are
left-padded *between* the prefix and the suffix: the attention mask hides the pads and the
position ids are the running count of real tokens, so each row sees exactly
``prefix + suffix`` at the positions it would have unbatched. The last prefix token is held
back and fed with each suffix, so even an empty suffix yields next-token logits.

Greedy decoding stops a row at EOS, at a stop string (checked on the decoded generation)
or after ``max_new_tokens``; finished rows leave the batch. fp32 on CPU, bf16 on GPU, SDPA
attention. Prompts longer than the model's trained length still run (rotary positions are
computed for any length); only ``max_model_len`` (config, optional) refuses a prompt.

Sliding-window models (Gemma-3): the window counts cache slots, so in a padded batch the
pads take window slots; batch size 1 is exact for them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import Any

from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import STATUS_OVER_MAX_LEN, Backend, Generation, cut_at_stop
from ctxscale.inference.fetch import ModelSource


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """``auto`` -> cuda/bf16 where a GPU is present, else cpu/fp32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        raise CtxscaleError(f"dtype {dtype!r} is not one of auto, float32, bfloat16, float16")
    return device, dtype


class TransformersBackend(Backend):
    """Greedy generation with a transformers causal LM; see the module docstring."""

    name = "transformers"

    @property
    def resume_alignment(self) -> int:
        return self.batch_size

    def __init__(
        self,
        source: ModelSource,
        *,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 8,
        max_model_len: int | None = None,
        seed: int = 31337,
        threads: int | None = None,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device, self.dtype = resolve_device_dtype(device, dtype)
        if batch_size < 1:
            raise CtxscaleError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.max_model_len = max_model_len
        self.seed = seed
        # CPU: one thread unless configured. Several shards run side by side under the
        # workflow, and oversubscribed OpenMP threads were 10x slower here (58 s vs 5 s for
        # one batch); a fixed count also keeps float reductions, hence shards, identical.
        if threads is None and self.device == "cpu":
            threads = 1
        self.threads = threads
        if threads:
            torch.set_num_threads(int(threads))
        torch.manual_seed(seed)
        kw: dict[str, Any] = {}
        if source.gguf_file:
            kw["gguf_file"] = source.gguf_file
        if source.revision:
            kw["revision"] = source.revision
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(source.path, **kw)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(
                source.path, dtype=getattr(torch, self.dtype), attn_implementation="sdpa", **kw
            )
        self.model = model.to(self.device).eval()
        self.source = source
        self._bos = self._leading_bos()
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    def _leading_bos(self) -> list[int]:
        """[BOS] if the tokenizer puts one in front of a text by default, else []."""
        tok = self.tokenizer
        with_special = tok("a", add_special_tokens=True)["input_ids"]
        plain = tok("a", add_special_tokens=False)["input_ids"]
        if len(with_special) > len(plain) and with_special[0] == tok.bos_token_id:
            return [tok.bos_token_id]
        return []

    def settings(self) -> dict[str, Any]:
        return {
            "device": self.device.split(":")[0],
            "dtype": self.dtype,
            "attention": "sdpa",
            "batch_size": self.batch_size,
            "threads": self.threads,
            "max_model_len": self.max_model_len,
        }

    def encode(self, prefix: str, suffixes: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """Prefix ids (with BOS) and suffix ids, tokenised separately."""
        enc = self.tokenizer
        prefix_ids = self._bos + enc(prefix, add_special_tokens=False)["input_ids"]
        suffix_ids = [enc(s, add_special_tokens=False)["input_ids"] for s in suffixes]
        return prefix_ids, suffix_ids

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[str],
        stop: Sequence[str],
        max_new_tokens: int,
    ) -> Iterator[Generation]:
        import torch

        prefix_ids, suffix_ids = self.encode(prefix, suffixes)
        with torch.inference_mode():
            # Hold the last prefix token back: it is fed with every suffix (see module doc).
            held, cached = prefix_ids[-1:], prefix_ids[:-1]
            prefix_cache = self._encode_prefix(cached)
            # Batches are fixed windows of batch_size instances (a pure function of the
            # index), so a resumed run that starts on a window boundary batches as before.
            for lo in range(0, len(suffix_ids), self.batch_size):
                window = suffix_ids[lo : lo + self.batch_size]
                n_pmts = [len(prefix_ids) + len(ids) for ids in window]
                fits = [not (self.max_model_len and n >= self.max_model_len) for n in n_pmts]
                rows = [held + ids for ids, ok in zip(window, fits, strict=True) if ok]
                outs = iter(
                    self._decode_batch(rows, prefix_cache, len(cached), stop, max_new_tokens)
                    if rows
                    else []
                )
                for n_pmt, ok in zip(n_pmts, fits, strict=True):
                    if not ok:
                        yield Generation(n_pmt, "", 0, STATUS_OVER_MAX_LEN)
                        continue
                    text, n_gen = next(outs)
                    yield Generation(n_pmt=n_pmt, output=text, n_gen=n_gen)

    def _encode_prefix(self, ids: list[int]) -> Any:
        """Run the shared prefix once; its cache is copied into every batch."""
        import torch
        from transformers import DynamicCache

        if not ids:
            return None
        cache = DynamicCache(config=self.model.config)
        x = torch.tensor([ids], device=self.device)
        self.model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache

    def _decode_batch(
        self,
        rows: list[list[int]],
        prefix_cache: Any,
        n_prefix: int,
        stop: Sequence[str],
        max_new_tokens: int,
    ) -> list[tuple[str, int]]:
        """Greedy-decode each row after the shared prefix; returns (text, n_gen) per row."""
        import torch
        from transformers import DynamicCache

        dev = self.device
        b = len(rows)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        suffix_mask = torch.zeros((b, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            suffix_mask[i, width - len(r) :] = 1
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(b)
        else:
            cache = DynamicCache(config=self.model.config)
        mask = torch.cat([torch.ones((b, n_prefix), dtype=torch.long), suffix_mask], 1).to(dev)
        # Position of each token = number of real tokens before it; pads get position 0.
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, n_prefix:]
        ids, pos = ids.to(dev), pos.to(dev)
        rows_alive = torch.arange(b, device=dev)  # original row index of each batch slot
        generated: list[list[int]] = [[] for _ in range(b)]
        results: list[tuple[str, int] | None] = [None] * b
        next_pos = pos[:, -1:] + 1
        for step in range(max_new_tokens):
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            nxt = out.logits[:, -1, :].argmax(-1)
            keep = []
            alive = rows_alive.tolist()
            for slot, tok_id in enumerate(nxt.tolist()):
                row = alive[slot]
                gen = generated[row]
                gen.append(tok_id)
                done = tok_id in self.eos_ids
                text = self.tokenizer.decode(gen, skip_special_tokens=True)
                text, hit = cut_at_stop(text, stop)
                if done or hit or step + 1 == max_new_tokens:
                    results[row] = (text, len(gen))
                else:
                    keep.append(slot)
            if not keep:
                break
            if len(keep) < len(rows_alive):
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                rows_alive, mask, nxt, next_pos = (
                    rows_alive[sel],
                    mask[sel],
                    nxt[sel],
                    next_pos[sel],
                )
            mask = torch.cat([mask, torch.ones((len(keep), 1), dtype=mask.dtype, device=dev)], 1)
            ids, pos = nxt[:, None], next_pos
            next_pos = next_pos + 1
        return [r if r is not None else ("", 0) for r in results]
