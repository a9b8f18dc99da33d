"""The same prompts through lm-evaluation-harness's HF backend and through ours.

lm-eval (``pip install -e '.[bench]'``, 0.4.x) runs ``generate_until`` with its ``HFLM``
model (batched, left-padded ``generate()`` on each full prompt); ours encodes the shared
few-shot prefix once and batches the instances against its KV cache. Both run greedy in
fp32 on CPU with the same thread count, in one process, one after the other per n_shots.

    python benchmarks/bench_lmeval.py --model-dir cache/models/smollm2-135m-instruct-b179c9523d0e
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent),
    str(Path(__file__).resolve().parents[1] / "src"),
]

from _prompts import make_prompts  # noqa: E402


def run_lmeval(lm, prompts: dict) -> list[str]:
    from lm_eval.api.instance import Instance

    kwargs = {
        "until": list(prompts["stop"]),
        "max_gen_toks": prompts["max_new_tokens"],
        "do_sample": False,
        "temperature": 0.0,
    }
    requests = [
        Instance(
            request_type="generate_until",
            doc={},
            idx=i,
            arguments=(prompts["prefix"] + inst["suffix"], dict(kwargs)),
        )
        for i, inst in enumerate(prompts["instances"])
    ]
    return list(lm.generate_until(requests, disable_tqdm=True))


def run_ours(backend, prompts: dict) -> list[str]:
    gens = backend.generate(
        prompts["prefix"],
        [i["suffix"] for i in prompts["instances"]],
        prompts["stop"],
        prompts["max_new_tokens"],
    )
    return [g.output for g in gens]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--shots", default="0,7,31,63")
    ap.add_argument("--instances", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    from ctxscale.inference.fetch import ModelSource
    from ctxscale.inference.hf import TransformersBackend

    torch.set_num_threads(args.threads)
    backend = TransformersBackend(
        ModelSource(args.model_dir), batch_size=args.batch_size, threads=args.threads
    )
    # lm-eval gets the very same weights object, so only the inference loop differs.
    lm = HFLM(
        pretrained=backend.model,
        tokenizer=backend.tokenizer,
        batch_size=args.batch_size,
        device="cpu",
        dtype="float32",
    )
    print(f"lm-eval {lm_eval.__version__}, batch size {args.batch_size}, threads {args.threads}")
    print("| n_shots | instances | lm-eval s | ours s | speed-up | outputs identical |")
    print("| --- | --- | --- | --- | --- | --- |")
    run_ours(backend, make_prompts(1, 2))  # warm-up both
    run_lmeval(lm, make_prompts(1, 2))
    for n_shots in [int(s) for s in args.shots.split(",")]:
        prompts = make_prompts(n_shots, args.instances)
        t0 = time.perf_counter()
        theirs = run_lmeval(lm, prompts)
        t1 = time.perf_counter()
        mine = run_ours(backend, prompts)
        t2 = time.perf_counter()
        same = theirs == mine
        print(
            f"| {n_shots} | {args.instances} | {t1 - t0:.2f} | {t2 - t1:.2f} | "
            f"{(t1 - t0) / (t2 - t1):.2f}x | {same} |",
            flush=True,
        )
        if not same:
            for a, b in zip(theirs, mine, strict=True):
                if a != b:
                    print(f"   lm-eval {a!r} vs ours {b!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
