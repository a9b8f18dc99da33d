"""transformers backend: batched greedy decoding against one shared few-shot prefix.

The tokens that every prompt of a prompts file starts with (BOS + instruction +
demonstrations, see :func:`~ctxscale.inference.base.shared_prefix_len`) are run through
the model once, in chunks of ``prefill_chunk`` tokens (transient activations stay small at
long prefixes). Their keys and values are kept once, batch dimension 1, and never copied:
each batch of instances keeps only its own tokens' cache (:class:`PreallocatedLayer`, rows x
suffix + generation) and attends over [shared prefix | own tokens] through
:func:`shared_prefix_attention`, registered in transformers' ``AttentionInterface`` and
selected for these forward passes only. The prefix part is one matrix product of every
row's queries with the single prefix (the rows are folded into the query dimension), the
own part is per row; one softmax spans both (their maxima and sums are combined). So a
batch's memory grows with its suffixes, never with batch x prefix. A file of equal-length
prompts that share only a few tokens runs its prompts whole instead (SDPA, see
:func:`_prefix_worth_caching`).

Inside a batch the rest of each prompt is left-padded *between* the shared prefix and the
row's own tokens: the masks hide the pads and the position ids count real tokens only, so
each row sees exactly its prompt at the positions it would have unbatched.

Greedy decoding stops a row at EOS, at a stop string (:class:`~ctxscale.inference.base.
StopChecker`: a tail of the generation is decoded each step, the whole one only to confirm)
or after ``max_new_tokens``; finished rows leave the batch. fp32 on CPU, bf16 on GPU.
Prompts longer than the model's trained length still run (rotary positions are computed for
any length); only ``max_model_len`` (config, optional) refuses a prompt. On CUDA the batch
size of a shard is the configured one or less, as free memory allows (:meth:`_fit_batch`).

``kv_dtype`` (config ``inference.kv_dtype``, off by default) stores the keys and values, the
shared prefix's and the rows' own, in a reduced precision (``float8_e4m3fn``, ``bfloat16``):
cast on write into the cache, cast back to the compute dtype where they are read (inside
:func:`shared_prefix_attention`, or by the cache layer for the model's own attention). The
shard header records it only when set.

Sliding-window models (Gemma-3): transformers places the window by cache slot, so pads
inside a batch would take window slots. For them every layer keeps its full cache and the
masks are built from positions (a key is visible when it is a real token at most
``sliding_window - 1`` positions back), so batched outputs equal unbatched ones here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface, AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import (
    STATUS_OVER_MAX_LEN,
    Backend,
    Capabilities,
    Generation,
    StopChecker,
    shared_prefix_len,
)
from ctxscale.inference.fetch import ModelSource
from ctxscale.models import ModelSpec

#: The AttentionInterface name of :func:`shared_prefix_attention`.
SHARED_PREFIX_ATTENTION = "ctxscale_shared_prefix"
#: Bytes of prefix scores one attention call may hold at once (queries run in slices).
SCORE_BYTES = 256 * 2**20


def resolve_kv_dtype(name: str | None) -> torch.dtype | None:
    """The torch floating-point dtype named ``name`` (``float8_e4m3fn``, ``bfloat16``), or None."""
    if name is None:
        return None
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise CtxscaleError(
            f"kv_dtype {name!r} is not a floating-point dtype of torch {torch.__version__} "
            "(e.g. float8_e4m3fn, float8_e5m2, bfloat16, float16)"
        )
    return dtype


def resolve_device_dtype(device: str, dtype: str) -> tuple[str, str]:
    """``auto`` -> cuda/bf16 where a GPU is present, else cpu/fp32."""
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
    capabilities = Capabilities(
        devices=("cpu", "cuda", "mps"),
        sliding_window=True,
        past_n_ctx="rotary angles computed for any position (base RoPE, YaRN, PI)",
    )

    @classmethod
    def from_config(
        cls,
        source: ModelSource,
        spec: ModelSpec,
        opts: dict[str, Any],
        seed: int,
        batch_size: int | None = None,
    ) -> TransformersBackend:
        return cls(
            source,
            device=str(opts.get("device", "auto")),
            dtype=str(opts.get("dtype", default("inference.dtype"))),
            batch_size=int(batch_size or opts.get("batch_size", default("inference.batch_size"))),
            max_model_len=opts.get("max_model_len"),
            prefill_chunk=int(opts.get("prefill_chunk", default("inference.prefill_chunk"))),
            kv_dtype=opts.get("kv_dtype", default("inference.kv_dtype")),
            seed=seed,
            threads=opts.get("threads"),
            label=spec.name,
        )

    def __init__(
        self,
        source: ModelSource,
        *,
        device: str = "auto",
        dtype: str = default("inference.dtype"),
        batch_size: int = default("inference.batch_size"),
        max_model_len: int | None = default("inference.max_model_len"),
        prefill_chunk: int = default("inference.prefill_chunk"),
        kv_dtype: str | None = default("inference.kv_dtype"),
        seed: int = default("seed"),
        threads: int | None = None,
        model: Any = None,
        tokenizer: Any = None,
        label: str | None = None,
    ) -> None:
        self.device, self.dtype = resolve_device_dtype(device, dtype)
        if batch_size < 1:
            raise CtxscaleError(f"batch_size must be >= 1, got {batch_size}")
        if prefill_chunk < 1:
            raise CtxscaleError(f"prefill_chunk must be >= 1, got {prefill_chunk}")
        self.kv_dtype = kv_dtype
        # the cache's storage dtype; None: the model's (keys and values as computed)
        self.kv_torch_dtype = resolve_kv_dtype(kv_dtype)
        self.batch_size = batch_size
        self.max_model_len = max_model_len
        self.prefill_chunk = prefill_chunk
        self.seed = seed
        self.label = label or source.path
        # CPU: the schema's thread count (one) unless configured. Several shards run side by
        # side under the workflow, and oversubscribed OpenMP threads were 10x slower here
        # (58 s vs 5 s for one batch); a fixed count also keeps float reductions, hence
        # shards, identical.
        if threads is None and self.device == "cpu":
            threads = default("inference.threads")
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
        cfg = self.model.config.get_text_config(decoder=True)
        types = getattr(cfg, "layer_types", None) or []
        window = getattr(cfg, "sliding_window", None)
        # Sliding-window models get full caches plus masks built from positions (see
        # _position_masks), so padding inside a batch cannot shift their windows.
        self.sliding_window = int(window) if window and "sliding_attention" in types else None
        self.sliding_layers = (
            [t == "sliding_attention" for t in types] if self.sliding_window else []
        )
        # The shared-prefix attention replaces the model's attention function; models that
        # do not dispatch through AttentionInterface, or keep other state than keys and
        # values (hybrid recurrent layers), run every prompt whole.
        layers = DynamicCache(config=self.model.config).layers
        self.shares_prefix = bool(
            getattr(self.model, "_supports_attention_backend", False)
        ) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])

    def settings(self) -> dict[str, Any]:
        out = {
            "device": self.device.split(":")[0],
            "dtype": self.dtype,
            "attention": "sdpa",
            "batch_size": self.batch_size,
            "threads": self.threads,
            "max_model_len": self.max_model_len,
        }
        if self.kv_dtype is not None:  # only when set: default shards' headers unchanged
            out["kv_dtype"] = self.kv_dtype
        return out

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[str],
        stop: Sequence[str],
        max_new_tokens: int,
        start: int = 0,
    ) -> Iterator[Generation]:
        prompts = self.encode(prefix, suffixes)
        fits = [not (self.max_model_len and len(p) >= self.max_model_len) for p in prompts]
        n_shared = _prefix_worth_caching(prompts, fits) if self.shares_prefix else 0
        run = [p for p, ok in zip(prompts, fits, strict=True) if ok]
        batch_size = self._fit_batch(run, n_shared, max_new_tokens)
        with torch.inference_mode():
            shared = None
            # Batches are fixed windows of batch_size instances of the whole file, so a
            # resumed run (start > 0) batches exactly as an unbroken one; outputs before
            # ``start`` in the first window are computed again and dropped.
            for lo in range(start - start % batch_size, len(prompts), batch_size):
                window = range(lo, min(lo + batch_size, len(prompts)))
                rows = [prompts[i][n_shared:] for i in window if fits[i]]
                if rows and shared is None and n_shared:
                    shared = self._encode_prefix(prompts[0][:n_shared])
                outs = iter(self._decode_batch(rows, shared, stop, max_new_tokens) if rows else [])
                for i in window:
                    gen = (
                        Generation(len(prompts[i]), *next(outs))
                        if fits[i]
                        else Generation(len(prompts[i]), "", 0, STATUS_OVER_MAX_LEN)
                    )
                    if i >= start:
                        yield gen

    def _fit_batch(self, prompts: list[list[int]], n_shared: int, max_new_tokens: int) -> int:
        """The configured batch size, or on CUDA the most rows that free memory holds.

        A row needs its own tokens' keys and values (suffix + generation) and the transient
        activations of its suffix's forward pass; the prefix's cache is counted once.
        """
        if not prompts or not self.device.startswith("cuda"):
            return self.batch_size
        free, _ = torch.cuda.mem_get_info(torch.device(self.device))
        cfg = self.model.config.get_text_config(decoder=True)
        elt = torch.finfo(getattr(torch, self.dtype)).bits // 8
        kv_elt = torch.finfo(self.kv_torch_dtype).bits // 8 if self.kv_torch_dtype else elt
        heads = cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        kv_token = 2 * cfg.num_hidden_layers * kv_heads * head_dim * kv_elt
        width = max(len(p) for p in prompts) - n_shared
        act_token = (4 * cfg.hidden_size + 3 * cfg.intermediate_size) * elt
        prefix = kv_token * n_shared + act_token * min(n_shared, self.prefill_chunk)
        scores = heads * width * (width + max_new_tokens) * 4 + SCORE_BYTES
        row = kv_token * (width + max_new_tokens) + act_token * width + scores
        fit = int((0.9 * free - prefix) // row)
        if fit < 1:
            gib = (prefix + row) / 2**30
            raise CtxscaleError(
                f"model {self.label!r}: a shard with a {n_shared}-token shared prefix and "
                f"prompts up to {width + n_shared} tokens (+{max_new_tokens} generated) needs "
                f"~{gib:.1f} GiB on {self.device} for batch 1, {free / 2**30:.1f} GiB is free"
            )
        return min(self.batch_size, fit)

    def _encode_prefix(self, ids: list[int]) -> SharedPrefix:
        """Run the shared prefix once, ``prefill_chunk`` tokens at a time; keep its cache."""
        cache = DynamicCache(config=self.model.config)
        # one buffer per layer, every prefix position kept (pads may shift a row's window)
        # (its chunks attend to the earlier ones through the model's own attention, which
        # reads the stored keys cast back)
        cache.layers = [
            PreallocatedLayer(1, len(ids), self.kv_torch_dtype, cast_back=True)
            for _ in cache.layers
        ]
        x = torch.tensor([ids], device=self.device)
        for lo in range(0, len(ids), self.prefill_chunk):
            self.model(
                input_ids=x[:, lo : lo + self.prefill_chunk],
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return SharedPrefix(
            [layer.keys for layer in cache.layers],
            [layer.values for layer in cache.layers],
            self.sliding_layers or [False] * len(cache.layers),
            self.sliding_window,
        )

    def _attention_mask(self, mask: torch.Tensor, q_pos: torch.Tensor) -> Any:
        """The 2-D padding mask, or per-layer-type position masks for sliding-window models."""
        if self.sliding_window:
            return _position_masks(mask, q_pos, self.sliding_window)
        return mask

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        pos: torch.Tensor,
        cache: Any,
        shared: SharedPrefix | None,
    ) -> torch.Tensor:
        """Each row's last logits; ``mask`` (rows, prefix + own slots) marks real tokens."""
        if shared is None:
            out = self.model(
                input_ids=ids,
                attention_mask=self._attention_mask(mask, pos),
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            return out.logits[:, -1, :]
        shared.set_masks(mask, pos)
        config = self.model.config
        old = config._attn_implementation
        config._attn_implementation = SHARED_PREFIX_ATTENTION
        try:
            out = self.model(
                input_ids=ids,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
                shared_prefix=shared,
            )
        finally:
            config._attn_implementation = old
        return out.logits[:, -1, :]

    def _decode_batch(
        self,
        rows: list[list[int]],
        shared: SharedPrefix | None,
        stop: Sequence[str],
        max_new_tokens: int,
    ) -> list[tuple[str, int]]:
        """Greedy-decode each row after the shared prefix; returns (text, n_gen) per row."""
        dev = self.device
        n_prefix = shared.n if shared is not None else 0
        b = len(rows)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((b, width), pad, dtype=torch.long)
        suffix_mask = torch.zeros((b, width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            suffix_mask[i, width - len(r) :] = 1
        cache = _batch_cache(
            b, width + max_new_tokens, self.model.config, self.kv_torch_dtype, shared is None
        )
        mask = torch.cat([torch.ones((b, n_prefix), dtype=torch.long), suffix_mask], 1).to(dev)
        # Position of each token = number of real tokens before it; pads get position 0.
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, n_prefix:]
        ids, pos = ids.to(dev), pos.to(dev)
        rows_alive = torch.arange(b, device=dev)  # original row index of each batch slot
        generated: list[list[int]] = [[] for _ in range(b)]
        results: list[tuple[str, int] | None] = [None] * b
        stops = StopChecker(self.tokenizer, stop)
        next_pos = pos[:, -1:] + 1
        for step in range(max_new_tokens):
            nxt = self._forward(ids, mask, pos, cache, shared).argmax(-1)
            keep = []
            alive = rows_alive.tolist()
            for slot, tok_id in enumerate(nxt.tolist()):
                row = alive[slot]
                gen = generated[row]
                gen.append(tok_id)
                hit = stops.check(gen)
                if tok_id in self.eos_ids or hit or step + 1 == max_new_tokens:
                    results[row] = (stops.final(gen), len(gen))
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


def _prefix_worth_caching(prompts: list[list[int]], fits: list[bool]) -> int:
    """The shared prefix length to encode once, or 0 to run every prompt whole.

    A prompts file whose prompts are all the same length and share only a short prefix
    (the miniature world's: BOS, then each instance's own demonstrations) runs faster
    whole: a batch without padding and without a cache offset attends with SDPA's causal
    kernel (no mask tensor; measured 1.6x faster, bit-identical output here), which is
    worth more than the few prefix tokens each row then recomputes.
    """
    run = [p for p, ok in zip(prompts, fits, strict=True) if ok]
    n_shared = shared_prefix_len(run)
    if run and len({len(p) for p in run}) == 1 and n_shared * 8 <= len(run[0]):
        return 0
    return n_shared


def _position_masks(mask: torch.Tensor, q_pos: torch.Tensor, window: int) -> dict[str, Any]:
    """4-D boolean masks (True = attend) from token positions instead of cache slots.

    ``mask`` (batch, keys) marks real tokens (1) and pads (0); key positions are the running
    count of real tokens, the queries are the last ``q_pos.shape[1]`` slots. A sliding layer
    may see keys less than ``window`` positions back, as unbatched.
    """
    k_pos = mask.cumsum(-1) - 1
    real = mask.bool()[:, None, None, :]
    dist = q_pos[:, None, :, None] - k_pos[:, None, None, :]
    full = real & (dist >= 0)
    return {"full_attention": full, "sliding_attention": full & (dist < window)}


@dataclass
class SharedPrefix:
    """The shared prefix's keys and values, once per layer (batch dimension 1), and the masks
    of the forward pass under way (set by :meth:`set_masks`, read by the attention)."""

    keys: list[torch.Tensor]  # per layer (1, kv_heads, n, head_dim)
    values: list[torch.Tensor]
    sliding: list[bool]  # per layer: a sliding-window layer
    window: int | None
    own_masks: tuple[torch.Tensor, torch.Tensor | None] | None = None
    prefix_mask: tuple[int, torch.Tensor] | None = None

    @property
    def n(self) -> int:
        return int(self.keys[0].shape[-2])

    def numel(self) -> int:
        return sum(k.numel() + v.numel() for k, v in zip(self.keys, self.values, strict=True))

    def set_masks(self, mask: torch.Tensor, q_pos: torch.Tensor) -> None:
        """Masks (True = attend) of queries at positions ``q_pos`` (rows, q) over the rows'
        own keys (``mask[:, n:]``: 1 = real token) and, for sliding layers, over the prefix
        (from its first key any query may see: ``(start, (rows, q, n - start))``)."""
        n = self.n
        k_pos = (mask.cumsum(-1) - 1)[:, n:]
        dist = q_pos[:, :, None] - k_pos[:, None, :]
        full = mask[:, None, n:].bool() & (dist >= 0)
        if self.window is None:
            self.own_masks, self.prefix_mask = (full, None), None
            return
        self.own_masks = (full, full & (dist < self.window))
        start = min(n, max(0, int(q_pos.min()) - self.window + 1))
        p_pos = torch.arange(start, n, device=q_pos.device)
        self.prefix_mask = (start, (q_pos[:, :, None] - p_pos) < self.window)


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    shared_prefix: SharedPrefix | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (rows, heads, q, d) over [shared prefix | the rows' own keys].

    ``key``/``value`` (rows, kv_heads, s, d) are the rows' own (the cache's suffix part);
    the prefix comes from ``shared_prefix``, batch dimension 1, and is never expanded: the
    rows' queries are folded into one matrix product with it. Returns (rows, q, heads, d).
    """
    sp = shared_prefix
    if sp is None or sp.own_masks is None:
        raise CtxscaleError("shared_prefix_attention runs inside TransformersBackend only")
    layer = module.layer_idx
    sliding = sp.sliding[layer]
    pk, pv = sp.keys[layer][0], sp.values[layer][0]  # (kv_heads, n, d)
    # a reduced-precision cache (kv_dtype) is read in the compute dtype (no-ops otherwise)
    key, value = key.to(query.dtype), value.to(query.dtype)
    own = sp.own_masks[1] if sliding else sp.own_masks[0]
    pmask = None
    if sliding and sp.prefix_mask is not None:
        start, pmask = sp.prefix_mask
        pk, pv = pk[:, start:], pv[:, start:]
    pk, pv = pk.to(query.dtype), pv.to(query.dtype)
    b, h, q, d = query.shape
    scale = scaling if scaling is not None else d**-0.5
    step = max(1, SCORE_BYTES // max(1, h * b * pk.shape[1] * 4))
    parts = [
        _attend(
            query[:, :, i : i + step],
            key,
            value,
            pk,
            pv,
            own[:, i : i + step],
            None if pmask is None else pmask[:, i : i + step],
            scale,
        )
        for i in range(0, q, step)
    ]
    return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)), None


def _attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    pk: torch.Tensor,
    pv: torch.Tensor,
    own: torch.Tensor,
    pmask: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """One softmax over prefix keys ``pk`` (kv_heads, n, d) and own keys (rows, kv_heads, s, d).

    Scores, softmax and sums in float32 (as transformers' eager attention); probabilities
    meet the values in their dtype.
    """
    b, h, q, d = query.shape
    hk = key.shape[1]
    g = h // hk
    f32 = torch.float32
    qs = (query * scale).reshape(b, hk, g * q, d)
    # own keys: per row, (b, hk, g*q, s); the mask (b, q, s) broadcasts over heads
    s_own = torch.matmul(qs, key.transpose(-1, -2)).to(f32)
    s_own.view(b, hk, g, q, -1).masked_fill_(~own[:, None, None], float("-inf"))
    m = s_own.amax(-1, keepdim=True)  # (b, hk, g*q, 1)
    if not pk.shape[1]:  # a sliding layer whose window has left the prefix
        s_own.sub_(m).exp_()
        out = torch.matmul(s_own.to(value.dtype), value).to(f32)
        out /= s_own.sum(-1, keepdim=True)
        return out.to(query.dtype).view(b, h, q, d).transpose(1, 2)
    # prefix keys: all rows' queries against the one prefix, (hk, b*g*q, n)
    qp = qs.transpose(0, 1).reshape(hk, b * g * q, d)
    s_pre = torch.matmul(qp, pk.transpose(-1, -2)).to(f32)
    if pmask is not None:
        s_pre.view(hk, b, g, q, -1).masked_fill_(~pmask[None, :, None], float("-inf"))
    m = torch.maximum(m, s_pre.amax(-1, keepdim=True).view(hk, b, g * q, 1).transpose(0, 1))
    s_own.sub_(m).exp_()
    s_pre.view(hk, b, g * q, -1).sub_(m.transpose(0, 1)).exp_()
    total = s_own.sum(-1, keepdim=True) + s_pre.sum(-1, keepdim=True).view(
        hk, b, g * q, 1
    ).transpose(0, 1)
    out = torch.matmul(s_own.to(value.dtype), value).to(f32)
    out += torch.matmul(s_pre.to(pv.dtype), pv).to(f32).view(hk, b, g * q, d).transpose(0, 1)
    out /= total
    return out.to(query.dtype).view(b, h, q, d).transpose(1, 2)


AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)


def _batch_cache(
    batch: int,
    room: int,
    config: Any,
    kv_dtype: torch.dtype | None = None,
    cast_back: bool = False,
) -> Any:
    """A cache for ``batch`` rows' own tokens, ``room`` free slots per attention layer,
    stored in ``kv_dtype`` (None: as computed); ``cast_back`` where the model's own attention
    reads it (no shared prefix), see :class:`PreallocatedLayer`.

    Attention layers (sliding ones too: their masks come from positions, see
    :func:`_position_masks`) become :class:`PreallocatedLayer`s: each step writes one slot
    in place, where the default layer re-concatenates the whole cache every step. The shared
    prefix is not in it (see :class:`SharedPrefix`).
    """
    cache = DynamicCache(config=config)
    cache.layers = [
        PreallocatedLayer(batch, room, kv_dtype, cast_back)
        if type(layer) in (DynamicLayer, DynamicSlidingWindowLayer)
        else layer
        for layer in cache.layers
    ]
    return cache


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer whose keys/values are views of a buffer of ``room`` slots per row,
    allocated at the first update; each update writes its slots in place.

    With ``dtype`` the buffer is stored in that dtype (keys and values cast on write);
    ``update`` returns the stored views, which :func:`shared_prefix_attention` casts back,
    or with ``cast_back`` (the model's own attention reads them) copies in the dtype of the
    incoming keys.
    """

    def __init__(
        self, batch: int, room: int, dtype: torch.dtype | None = None, cast_back: bool = False
    ) -> None:
        super().__init__()
        self.batch, self.room = batch, room
        self.store_dtype, self.cast_back = dtype, cast_back

    def _allocate(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """A buffer shaped like ``keys`` (rows, heads, 0, d) with ``room`` slots."""
        _, h, _, d = keys.shape
        shape = (self.batch, h, self.room, d)
        self._k = torch.empty(shape, dtype=self.store_dtype or keys.dtype, device=keys.device)
        self._v = torch.empty(shape, dtype=self.store_dtype or values.dtype, device=keys.device)
        self.keys, self.values = self._k[:, :, :0], self._v[:, :, :0]
        self.dtype, self.device = self._k.dtype, keys.device
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self._allocate(key_states[:, :, :0], value_states[:, :, :0])
        n, m = self.keys.shape[-2], key_states.shape[-2]
        if n + m > self._k.shape[-2]:  # out of room: grow by concatenation
            self._k = torch.cat([self._k[:, :, :n], key_states.to(self._k.dtype)], dim=-2)
            self._v = torch.cat([self._v[:, :, :n], value_states.to(self._v.dtype)], dim=-2)
        else:
            self._k[:, :, n : n + m] = key_states  # (cast on write where the dtypes differ)
            self._v[:, :, n : n + m] = value_states
        self.keys, self.values = self._k[:, :, : n + m], self._v[:, :, : n + m]
        if self.cast_back and self.keys.dtype != key_states.dtype:
            return self.keys.to(key_states.dtype), self.values.to(value_states.dtype)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        n = self.keys.shape[-2]
        self._k, self._v = self._k[indices, ...], self._v[indices, ...]
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("a preallocated layer is built for one batch")
