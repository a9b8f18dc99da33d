"""The vllm backend for real: the same prompts through vLLM and through transformers.

    .venv/bin/python scripts/check_vllm.py [--vllm-venv .venv-vllm] [--n-shots 31]

Takes SmolLM2-135M-Instruct (config.yaml's real-model check; fetched and converted into
cache/ if it is not there yet) and one DeepMind Mathematics module's prompts (16 instances,
generated offline as at the default scale), runs `ctxscale infer` with the transformers
backend (this environment) and with the vllm backend (the vLLM environment that
scripts/setup_vllm.sh makes), both greedy in float32, and requires the same output for
every instance. Prints both times, the device vLLM ran on, and exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m-instruct"
DATASET = "dm_math__arithmetic__add_or_sub"


def run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``cmd`` (its output to a log beside the shard); returns its wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"check_vllm: failed: {' '.join(cmd[:4])} ...")
    return time.perf_counter() - t0


def records(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines[0]["settings"], lines[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm-venv", default=str(ROOT / ".venv-vllm"), help="vLLM environment")
    ap.add_argument("--n-shots", type=int, default=31, help="demonstrations per prompt")
    args = ap.parse_args()
    from ctxscale.config import load_config
    from ctxscale.inference.fetch import cache_root, converted_dir
    from ctxscale.models import model_by_name

    ctxscale = [sys.executable, "-m", "ctxscale"]
    vllm_ctxscale = [str(Path(args.vllm_venv) / "bin" / "python"), "-m", "ctxscale"]
    base = load_config(ROOT / "config.yaml")
    spec = model_by_name(base, MODEL)

    with tempfile.TemporaryDirectory(prefix="check_vllm-") as tmp:
        work = Path(tmp)
        run([*ctxscale, "fetch-model", "--config", "config.yaml", "--model", MODEL])
        run(
            [*ctxscale, "prepare", "--dataset", DATASET, "--n-shots", str(args.n_shots)]
            + ["--max-instances", "16", "--source", "generate", "--dm-difficulty", "0", "0.2"]
            + ["--out-dir", str(work / "prompts")]
        )
        model_dir = converted_dir(spec, ROOT / cache_root(base))
        common = {"path": str(model_dir), "N": spec.N, "D": spec.D, "n_ctx": spec.n_ctx}
        config = {
            "datasets": [DATASET],
            "families": [
                {
                    "name": "check",
                    "role": "check",
                    "checkpoints": [
                        {"name": "hf", "backend": "transformers", **common},
                        {"name": "vllm", "backend": "vllm", "enforce_eager": True, **common},
                    ],
                }
            ],
            "inference": {"dtype": "float32", "threads": 1, "batch_size": 16},
            "miniworld": {"activate": False},
        }
        cfg = work / "config.yaml"
        cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
        prompts = work / "prompts" / f"{args.n_shots}.json"
        out = {name: work / f"{name}.jsonl" for name in ("hf", "vllm")}
        infer = ["infer", "--config", str(cfg), "--prompts", str(prompts)]
        t_hf = run([*ctxscale, *infer, "--model", "hf", "--out", str(out["hf"])])
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        }
        t_vllm = run([*vllm_ctxscale, *infer, "--model", "vllm", "--out", str(out["vllm"])], env)
        (_, hf), (settings, vl) = records(out["hf"]), records(out["vllm"])
    same = sum(
        a["output"] == b["output"] and a["n_pmt"] == b["n_pmt"]
        for a, b in zip(hf, vl, strict=False)
    )
    print(
        f"check_vllm: {same}/{len(hf)} instances identical ({args.n_shots} shots, "
        f"{hf[0]['n_pmt']} prompt tokens); transformers {t_hf:.0f} s, vllm {t_vllm:.0f} s "
        f"(engine start included) on {settings['device']}"
    )
    for a, b in zip(hf, vl, strict=False):
        if a["output"] != b["output"]:
            print(f"  {a['id']}: transformers {a['output']!r} vs vllm {b['output']!r}")
    return 0 if same == len(hf) == len(vl) else 1


if __name__ == "__main__":
    sys.exit(main())
