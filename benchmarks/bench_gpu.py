"""Prefill MFU, decode ms per step and the largest shared prefix, through the transformers backend.

A random-weight model of the Llama-2-7B architecture (hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocab 32000) in bf16 with SDPA attention, on one GPU, driven through
``ctxscale.inference.hf.TransformersBackend`` itself (token ids in, no tokenizer):

* prefill: ``_encode_prefix`` (the shared prefix, ``prefill_chunk`` tokens a pass); tokens/s
  and MFU = achieved FLOP/s / peak, with FLOPs = 2 N T (weights) + 2 n_layer T^2 d (causal
  attention scores and values), N non-embedding parameters;
* decode: ``_decode_batch`` of 1/8/64 rows (16 own tokens each) after one shared prefix,
  never copied; ms per step = (time for ``s2`` new tokens - time for ``s1``) / (s2 - s1), so
  the rows' own prefill cancels. Beside it, the memory-bound limit: bytes of weights (and
  of weights + KV read per step) / HBM bandwidth (``--bandwidth``, H100 SXM 3.35 TB/s);
* capacity: the largest shared prefix that runs (prefill, then 8 new tokens per row) at
  batch 1 and at batch 8, searched over prefix lengths (doubling, then bisection to
  ``--search-step`` tokens); each attempt that raises ``torch.cuda.OutOfMemoryError``
  frees its memory and counts as "does not run". Beside it the peak memory and the batch
  size the backend itself would choose for that shard (``_fit_batch``, from free memory).

``--smoke`` runs the same code on CPU with a 2-layer model in seconds (tests/test_bench_gpu.py).

    python benchmarks/bench_gpu.py --peak-tflops 989 --bandwidth 3.35   # H100 SXM
    python benchmarks/bench_gpu.py --smoke
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

#: own tokens per row behind the shared prefix (decode and capacity)
SUFFIX = 16
#: new tokens per row in a capacity attempt
CAPACITY_NEW = 8


class IdsTokenizer:
    """What the backend asks of a tokenizer when it is handed token ids: a pad id, no EOS,
    and a decode (the outputs are not read)."""

    pad_token_id = 0
    eos_token_id = None

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(map(str, ids))


def model_config(smoke: bool):
    from transformers import LlamaConfig

    if smoke:
        return LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=1000,
            max_position_embeddings=4096,
        )
    return LlamaConfig(  # Llama-2-7B
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
    )


def build_backend(smoke: bool, device: str, dtype: str, prefill_chunk: int, kv_dtype=None):
    """The backend around a random-weight model built on ``device`` in ``dtype``."""
    import torch
    from transformers import LlamaForCausalLM

    from ctxscale.inference.fetch import ModelSource
    from ctxscale.inference.hf import TransformersBackend

    cfg = model_config(smoke)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(31337)
    old = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.generation_config.eos_token_id = None  # every row runs its full number of steps
    return TransformersBackend(
        ModelSource("random-llama"),
        device=device,
        dtype=dtype,
        batch_size=64,
        prefill_chunk=prefill_chunk,
        kv_dtype=kv_dtype,
        seed=31337,
        threads=None,
        model=model,
        tokenizer=IdsTokenizer(),
        label="random Llama-2-7B shape" if not smoke else "random tiny Llama",
    )


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def free_memory(device: str) -> None:
    import torch

    if device.startswith("cuda"):  # (a full collection costs ~0.2 s: not on the CPU smoke run)
        gc.collect()
        torch.cuda.empty_cache()


def random_ids(n: int, vocab: int, gen) -> list[int]:
    import torch

    return torch.randint(1, vocab, (n,), generator=gen).tolist()


def prefill_seconds(backend, ids: list[int], repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds of the backend's prefix prefill (after one warm-up)."""
    best = float("inf")
    for _ in range(repeats + 1):
        sync(backend.device)
        t0 = time.perf_counter()
        shared = backend._encode_prefix(ids)
        sync(backend.device)
        best = min(best, time.perf_counter() - t0)
        del shared
    return best


def decode_seconds(backend, shared, rows: list[list[int]], new: int) -> float:
    sync(backend.device)
    t0 = time.perf_counter()
    backend._decode_batch(rows, shared, [], new)
    sync(backend.device)
    return time.perf_counter() - t0


def largest(runs: Callable[[int], bool], lo: int, hi: int, step: int) -> int:
    """The largest multiple of ``step`` in [``lo``, ``hi``] for which ``runs`` holds, assuming
    it holds up to some length and fails beyond; 0 if not even ``lo`` runs. Doubles from
    ``lo``, then bisects."""
    if not runs(lo):
        return 0
    good, bad = lo, None
    while bad is None:
        nxt = min(hi, good * 2)
        if nxt == good:
            return good
        if runs(nxt):
            good = nxt
        else:
            bad = nxt
    while bad - good > step:
        mid = (good + bad) // 2 // step * step
        if mid <= good:
            break
        if runs(mid):
            good = mid
        else:
            bad = mid
    return good


def attempt(backend, n_prefix: int, batch: int, gen) -> tuple[bool, float]:
    """Whether a ``n_prefix``-token shared prefix then ``batch`` rows x CAPACITY_NEW new
    tokens run; (ok, peak GiB). Memory is freed after an OOM, outside the handler (whose
    traceback would keep the failed pass's tensors alive)."""
    import torch

    cuda = backend.device.startswith("cuda")
    vocab = backend.model.config.vocab_size
    free_memory(backend.device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ok = True
    try:
        shared = backend._encode_prefix(random_ids(n_prefix, vocab, gen))
        rows = [random_ids(SUFFIX, vocab, gen) for _ in range(batch)]
        backend._decode_batch(rows, shared, [], CAPACITY_NEW)
        sync(backend.device)
        del shared
    except torch.cuda.OutOfMemoryError:
        ok = False
    free_memory(backend.device)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return ok, peak


def main(argv: list[str] | None = None) -> int:
    import torch

    from ctxscale.config import default

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU, seconds")
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM 989)"
    )
    ap.add_argument(
        "--bandwidth", type=float, default=3.35, help="HBM bandwidth, TB/s (H100 SXM 3.35)"
    )
    ap.add_argument("--sections", default="prefill,decode,capacity")
    ap.add_argument("--lengths", default="512,1024,4096,16384")
    ap.add_argument("--batches", default="1,8,64")
    ap.add_argument("--decode-prefix", type=int, default=1024)
    ap.add_argument("--decode-steps", default="4,36", help="s1,s2: new tokens of the two runs")
    ap.add_argument("--capacity-batches", default="1,8")
    ap.add_argument("--min-prefix", type=int, default=4096)
    ap.add_argument("--max-prefix", type=int, default=262144)
    ap.add_argument("--search-step", type=int, default=4096)
    ap.add_argument("--prefill-chunk", type=int, default=default("inference.prefill_chunk"))
    ap.add_argument(
        "--kv-dtype",
        default=default("inference.kv_dtype"),
        help="KV cache storage dtype, e.g. float8_e4m3fn (default: the model's)",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.device = "cpu"
        args.lengths, args.decode_prefix, args.decode_steps = "32,64", 32, "2,6"
        args.min_prefix, args.max_prefix, args.search_step = 16, 128, 16
        args.prefill_chunk = min(args.prefill_chunk, 24)
    device = args.device
    dtype = "float32" if device == "cpu" else "bfloat16"
    sections = set(args.sections.split(","))
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        backend = build_backend(args.smoke, device, dtype, args.prefill_chunk, args.kv_dtype)
        model, cfg = backend.model, backend.model.config
        n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        kv_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim
        kv_token *= torch.finfo(backend.kv_torch_dtype or getattr(torch, dtype)).bits // 8
        name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
        print(
            f"device {name}, {dtype}, SDPA, non-embedding parameters {n:,}, "
            f"weights {weight_bytes / 2**30:.2f} GiB, KV {kv_token / 2**20:.3f} MiB a token, "
            f"kv_dtype {args.kv_dtype or dtype}, prefill_chunk {args.prefill_chunk}"
        )
        if "prefill" in sections:
            print(
                f"\n| prefill tokens | seconds | tokens/s | TFLOP/s "
                f"| MFU ({args.peak_tflops:g} peak) |"
            )
            print("| --- | --- | --- | --- | --- |")
            for length in [int(v) for v in args.lengths.split(",")]:
                t = prefill_seconds(backend, random_ids(length, cfg.vocab_size, gen))
                flops = 2 * n * length + 2 * cfg.num_hidden_layers * length**2 * cfg.hidden_size
                tf = flops / t / 1e12
                print(
                    f"| {length} | {t:.4f} | {length / t:,.0f} | {tf:.1f} | "
                    f"{tf / args.peak_tflops:.1%} |",
                    flush=True,
                )
        if "decode" in sections:
            s1, s2 = (int(v) for v in args.decode_steps.split(","))
            shared = backend._encode_prefix(random_ids(args.decode_prefix, cfg.vocab_size, gen))
            bw = args.bandwidth * 1e12
            print(
                f"\n| decode batch (prefix {args.decode_prefix}, {SUFFIX} own tokens) | ms/step "
                f"| tokens/s | weights/bandwidth ms | (weights+KV)/bandwidth ms |"
            )
            print("| --- | --- | --- | --- | --- |")
            for batch in [int(v) for v in args.batches.split(",")]:
                rows = [random_ids(SUFFIX, cfg.vocab_size, gen) for _ in range(batch)]
                decode_seconds(backend, shared, rows, s1)  # warm-up
                t = decode_seconds(backend, shared, rows, s2) - decode_seconds(
                    backend, shared, rows, s1
                )
                ms = 1e3 * t / (s2 - s1)
                own = batch * (SUFFIX + (s1 + s2) / 2)
                kv = kv_token * (args.decode_prefix + own)
                print(
                    f"| {batch} | {ms:.2f} | {batch * 1e3 / ms:,.0f} | "
                    f"{1e3 * weight_bytes / bw:.2f} | {1e3 * (weight_bytes + kv) / bw:.2f} |",
                    flush=True,
                )
            del shared
            free_memory(device)
        if "capacity" in sections:
            print(
                f"\n| card | batch | largest prefix (step {args.search_step}) | peak GiB "
                f"| backend's batch there |"
            )
            print("| --- | --- | --- | --- | --- |")
            hi = args.max_prefix
            for batch in [int(v) for v in args.capacity_batches.split(",")]:
                peaks: dict[int, float] = {}

                def runs(length: int, batch: int = batch, peaks: dict = peaks) -> bool:
                    ok, peaks[length] = attempt(backend, length, batch, gen)
                    verdict = "ok" if ok else "OOM"
                    print(f"prefix {length} batch {batch}: {verdict}", file=sys.stderr, flush=True)
                    return ok

                best = largest(runs, args.min_prefix, hi, args.search_step)
                fit = "-"
                if best:
                    prompts = [[0] * (best + SUFFIX)] * batch
                    free_memory(device)
                    fit = str(backend._fit_batch(prompts, best, CAPACITY_NEW))
                    hi = best  # a larger batch cannot hold a longer prefix
                print(
                    f"| {name} | {batch} | {best or '< ' + str(args.min_prefix)} "
                    f"| {peaks.get(best, float('nan')):.1f} | {fit} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
