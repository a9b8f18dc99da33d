"""Shared-prefix KV reuse vs recomputing every full prompt, SmolLM2-135M on CPU.

For each n_shots, the same instances run three ways, side by side in one process:

* ``recompute``: transformers ``generate()`` on each full prompt, one instance at a time
  (the prefix is recomputed for every instance);
* ``reuse_b1``: ours with batch size 1 (prefix encoded once, its KV cache shared by every
  instance): the gain of prefix reuse alone;
* ``reuse``: ours with ``--batch-size`` (prefix once, instances batched against it).

Outputs must be identical across the three; the table gives seconds and speed-ups.
``--only recompute`` / ``--only reuse`` runs one way for the first ``--shots`` value and
prints its outputs' hash, so the whole process (imports, model load) can be timed from
outside, e.g. ``/usr/bin/time -f %e python benchmarks/bench_prefix.py --only reuse ...``.
``--clock cpu`` times the process's CPU time instead of wall time: with one thread it is the
work done, whatever else the machine runs.

    python benchmarks/bench_prefix.py --model-dir cache/models/smollm2-135m-instruct-b179c9523d0e
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from _prompts import make_prompts  # noqa: E402


def recompute(backend, prompts: dict) -> list[tuple[str, int]]:
    """Baseline: plain generate() on each full prompt, one instance at a time."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from ctxscale.inference.base import cut_at_stop

    tok = backend.tokenizer
    stop = prompts["stop"]

    class StopOnString(StoppingCriteria):
        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            text = tok.decode(input_ids[0, self.start :], skip_special_tokens=True)
            return torch.tensor([cut_at_stop(text, stop)[1]])

    outs = []
    for inst in prompts["instances"]:
        (ids,) = backend.encode(prompts["prefix"], [inst["suffix"]])
        x = torch.tensor([ids])
        with torch.inference_mode():
            y = backend.model.generate(
                x,
                attention_mask=torch.ones_like(x),
                do_sample=False,
                max_new_tokens=prompts["max_new_tokens"],
                pad_token_id=tok.pad_token_id,
                stopping_criteria=StoppingCriteriaList([StopOnString(x.shape[1])]),
            )
        new = y[0, x.shape[1] :].tolist()
        text, _ = cut_at_stop(tok.decode(new, skip_special_tokens=True), stop)
        outs.append((text, len(new)))
    return outs


def ours(backend, prompts: dict, batch_size: int) -> list[tuple[str, int]]:
    backend.batch_size = batch_size
    gens = backend.generate(
        prompts["prefix"],
        [i["suffix"] for i in prompts["instances"]],
        prompts["stop"],
        prompts["max_new_tokens"],
    )
    return [(g.output, g.n_gen) for g in gens]


def suffixes(prompts: dict) -> list[str]:
    return [i["suffix"] for i in prompts["instances"]]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = CLOCKS["wall"]


def timed(fn, *args):
    t0 = CLOCK()
    out = fn(*args)
    return out, CLOCK() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True, help="converted model dir (fetch-model)")
    ap.add_argument("--shots", default="0,1,3,7,15,31,63")
    ap.add_argument("--instances", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["recompute", "reuse"], help="one way, one process")
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="cpu: this process's CPU time (one thread: robust to other jobs on the machine)",
    )
    args = ap.parse_args()
    global CLOCK
    CLOCK = CLOCKS[args.clock]

    from ctxscale.inference.base import shared_prefix_len
    from ctxscale.inference.fetch import ModelSource
    from ctxscale.inference.hf import TransformersBackend

    t0 = time.perf_counter()
    backend = TransformersBackend(ModelSource(args.model_dir), threads=args.threads)
    print(
        f"model load from converted dir: {time.perf_counter() - t0:.1f} s, "
        f"threads {args.threads}, device {backend.device}, dtype {backend.dtype}"
    )
    if args.only:
        prompts = make_prompts(int(args.shots.split(",")[0]), args.instances)
        if args.only == "recompute":
            outs, t = timed(recompute, backend, prompts)
        else:
            outs, t = timed(ours, backend, prompts, args.batch_size)
        digest = hashlib.sha256(repr(outs).encode()).hexdigest()[:12]
        print(f"{args.only}: {t:.2f} s generating, outputs sha256 {digest}")
        return 0
    print(
        f"| n_shots | shared prefix tokens | recompute s | reuse b=1 s | "
        f"reuse b={args.batch_size} s | "
        "speed-up b=1 | speed-up batched | outputs identical | batched prompt tok/s | "
        "batched gen tok/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ours(backend, make_prompts(1, 2), 2)  # warm-up
    for n_shots in [int(s) for s in args.shots.split(",")]:
        prompts = make_prompts(n_shots, args.instances)
        ids = backend.encode(prompts["prefix"], suffixes(prompts))
        n_prefix = shared_prefix_len(ids)
        base, t_base = timed(recompute, backend, prompts)
        one, t_one = timed(ours, backend, prompts, 1)
        many, t_many = timed(ours, backend, prompts, args.batch_size)
        same = base == one == many
        n_pmt = sum(len(p) for p in ids)
        n_gen = sum(n for _, n in many)
        print(
            f"| {n_shots} | {n_prefix} | {t_base:.2f} | {t_one:.2f} | {t_many:.2f} | "
            f"{t_base / t_one:.2f}x | {t_base / t_many:.2f}x | {same} | "
            f"{n_pmt / t_many:.0f} | {n_gen / t_many:.1f} |",
            flush=True,
        )
        if not same:
            for a, b, c in zip(base, one, many, strict=True):
                if not a == b == c:
                    print("   differs:", a, b, c)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
