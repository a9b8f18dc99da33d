"""Prefill / decode throughput and prefill MFU of the transformers backend's forward calls.

A random-weight model of the Llama-2-7B architecture (hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocab 32000) in bf16 with SDPA attention, on one GPU. It makes the
same calls as ``ctxscale.inference.hf`` (prefill into a DynamicCache with
``logits_to_keep=1``, the prefix copied into the backend's per-batch KV buffer, then
one-token greedy steps with a growing attention mask):

* prefill tokens/s and MFU = achieved FLOP/s / peak, with FLOPs = 2 N T (weights) +
  2 n_layer T^2 d (causal attention scores and values), N non-embedding parameters;
* decode tokens/s at several batch sizes behind a shared prompt.

Needs a GPU (``--device cuda``); ``--tiny`` runs a 2-layer model anywhere as a smoke test.

    python benchmarks/bench_gpu.py --peak-tflops 989   # H100 SXM dense bf16
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def build_model(tiny: bool, device: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:
        cfg = LlamaConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            vocab_size=1000,
            max_position_embeddings=4096,
        )
    else:  # Llama-2-7B
        cfg = LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32000,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
        )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(31337)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    return model.eval(), cfg


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def prefill(model, cfg, device: str, batch: int, length: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds for one prefill of ``batch`` x ``length`` tokens."""
    import torch
    from transformers import DynamicCache

    x = torch.randint(0, cfg.vocab_size, (batch, length), device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # first run warms up
        cache = DynamicCache(config=cfg)
        sync(device)
        t0 = time.perf_counter()
        model(input_ids=x, past_key_values=cache, use_cache=True, logits_to_keep=1)
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def decode(model, cfg, device: str, batch: int, prompt: int, steps: int) -> float:
    """Seconds for ``steps`` greedy one-token steps of ``batch`` rows after ``prompt`` tokens."""
    import torch
    from transformers import DynamicCache

    from ctxscale.inference.hf import _batch_cache

    prefix = DynamicCache(config=cfg)
    x = torch.randint(0, cfg.vocab_size, (1, prompt), device=device)
    model(input_ids=x, past_key_values=prefix, use_cache=True, logits_to_keep=1)
    # The shared prefix copied into a per-batch buffer with room for the steps, as the backend.
    cache = _batch_cache(prefix, batch, steps + 1, cfg)
    mask = torch.ones((batch, prompt), dtype=torch.long, device=device)
    pos = torch.full((batch, 1), prompt, device=device)
    nxt = torch.zeros((batch, 1), dtype=torch.long, device=device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        mask = torch.cat([mask, torch.ones((batch, 1), dtype=mask.dtype, device=device)], 1)
        out = model(
            input_ids=nxt,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        nxt = out.logits[:, -1:].argmax(-1)
        pos = pos + 1
    sync(device)
    return time.perf_counter() - t0


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="2-layer smoke test (any device)")
    ap.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="dense bf16 peak of the GPU (H100 SXM 989, H200 989, A100 312)",
    )
    ap.add_argument("--lengths", default="512,1024,2048,4096")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--decode-prompt", type=int, default=1024)
    ap.add_argument("--decode-steps", type=int, default=64)
    args = ap.parse_args()
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    with torch.inference_mode():
        model, cfg = build_model(args.tiny, args.device, dtype)
        n = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
        name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
        print(f"device {name}, dtype {dtype}, non-embedding parameters {n:,}")
        print("| prefill tokens | seconds | tokens/s | TFLOP/s | MFU |")
        print("| --- | --- | --- | --- | --- |")
        for length in [int(v) for v in args.lengths.split(",")]:
            t = prefill(model, cfg, args.device, 1, length)
            flops = 2 * n * length + 2 * cfg.num_hidden_layers * length**2 * cfg.hidden_size
            tf = flops / t / 1e12
            print(
                f"| {length} | {t:.4f} | {length / t:,.0f} | {tf:.1f} | "
                f"{tf / args.peak_tflops:.1%} |",
                flush=True,
            )
        print(f"\n| decode batch (prompt {args.decode_prompt}) | seconds | tokens/s |")
        print("| --- | --- | --- |")
        for batch in [int(v) for v in args.batches.split(",")]:
            t = decode(model, cfg, args.device, batch, args.decode_prompt, args.decode_steps)
            print(f"| {batch} | {t:.3f} | {batch * args.decode_steps / t:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
