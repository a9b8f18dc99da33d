"""The vllm backend for real: the same prompts through vLLM and through transformers.

    .venv/bin/python scripts/check_vllm.py [--vllm-venv .venv-vllm] [--n-shots 31]

Takes SmolLM2-135M-Instruct (config.yaml's real-model check; fetched and converted into
cache/ if it is not there yet) and one DeepMind Mathematics module's prompts (16 instances,
generated offline as at the default scale) and runs `ctxscale infer` with the transformers
backend (this environment) and with the vllm backend (the vLLM environment that
scripts/setup_vllm.sh makes), both greedy in float32, in three cases:

* ``within n_ctx``: the checkpoint as it is (n_ctx 8192);
* ``YaRN past its table``: a copy whose config is YaRN x2 over 256 positions (n_ctx 512),
  run by vLLM with max_model_len 1024. vLLM's own YaRN table stops at 512, so every prompt
  (over 512 tokens) is read past it unless ctxscale's plugin extends the table;
* ``base past n_ctx``: the checkpoint declared with n_ctx 512 and run to 1024, the
  original's unscaled route (``max_position_embeddings`` raised to max_model_len).

Each case requires the same output for every instance (transformers computes rotary
angles for any position).

With ``--mini-run DIR`` (a finished default-scale run, e.g. the end-to-end run of
scripts/check.sh), the miniature world's gated-GELU Llama checkpoints run through vLLM too
(ctxscale's ``ctxscale_models`` plugin): the base model past its n_ctx and its 8x YaRN
extension past vLLM's own YaRN table, on prompts of that run, each shard compared with the
transformers shard the run wrote. Then the vllm shard of the first case must come back
byte-identical three more ways: run again from nothing; resumed from a partial file that a
kill left (its first records and a torn line); and resumed after the job's whole process
group was killed with SIGKILL while it generated. Prints the times and the device vLLM ran on;
exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
    """Run ``cmd`` (its output captured, shown if it fails); returns its wall time."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"check_vllm: failed: {' '.join(cmd[:4])} ...")
    return time.perf_counter() - t0


def rerun_and_resume(cmd: list[str], out: Path, env: dict[str, str]) -> int:
    """Make ``out`` (a finished vllm shard) again three ways; the number that differ."""
    want, failed = out.read_bytes(), 0
    again = out.with_name("again.jsonl")
    partial = again.with_name(again.name + ".partial")

    def check(how: str, seconds: float) -> None:
        nonlocal failed
        same = again.read_bytes() == want
        failed += not same
        print(f"check_vllm: {how}: {'byte-identical' if same else 'DIFFERS'} ({seconds:.0f} s)")
        again.unlink()

    check("rerun from nothing", run([*cmd, "--out", str(again)], env))
    lines = want.decode("utf-8").splitlines(keepends=True)
    kept = max(1, (len(lines) - 1) // 3)
    torn = lines[1 + kept][: len(lines[1 + kept]) // 2]  # a record cut mid-write, no newline
    partial.write_text("".join(lines[: 1 + kept]) + torn, encoding="utf-8")
    check(f"resume from {kept} records and a torn line", run([*cmd, "--out", str(again)], env))
    proc = subprocess.Popen(
        [*cmd, "--out", str(again)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # The partial's settings line is written once the engine is up, just before generation:
    # kill the job's whole process group (vLLM's engine processes too) a moment after it.
    t0 = time.perf_counter()
    while proc.poll() is None and not partial.exists() and time.perf_counter() - t0 < 900:
        time.sleep(0.2)
    time.sleep(0.5)
    if proc.poll() is not None:
        print("check_vllm: the run to kill finished before it could be killed: FAILED")
        again.unlink(missing_ok=True)
        return failed + 1
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.perf_counter() - t0
    kept = len(partial.read_text(encoding="utf-8").splitlines()) - 1 if partial.exists() else -1
    how = f"resume after SIGKILL mid-generation at {killed_at:.0f} s ({max(kept, 0)} records kept)"
    check(how, run([*cmd, "--out", str(again)], env))
    return failed


def n_identical(hf: list[dict], vl: list[dict]) -> int:
    """Instances with the same output and prompt length in both shards."""
    return sum(
        a["output"] == b["output"] and a["n_pmt"] == b["n_pmt"]
        for a, b in zip(hf, vl, strict=False)
    )


def records(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return lines[0]["settings"], lines[1:]


#: (model, dataset, n_shots) of a default-scale run checked under vLLM with --mini-run: the
#: base model at 194 prompt tokens (n_ctx 64), its 8x YaRN copy at about 650 (n_ctx 512).
MINI_CASES = (("mini-s3000", "mini_arith", 96), ("mini-s3000-yarn8x", "mini_trans", 128))


def check_mini(run_dir: Path, work: Path, vllm_ctxscale: list[str], env: dict[str, str]) -> int:
    """Run :data:`MINI_CASES` through vLLM; the number of shards that differ from the run's
    transformers shards."""
    failed = 0
    for model, dataset, k in MINI_CASES:
        path = run_dir / "results" / "miniworld" / "models" / model
        meta = json.loads((path / "ctxscale-mini.json").read_text(encoding="utf-8"))
        n_ctx = int(meta["config"]["max_position_embeddings"])
        ckpt = {"name": "vllm", "backend": "vllm", "enforce_eager": True, "path": str(path)}
        ckpt.update(N=int(meta["N"]), D=int(meta["D"]), n_ctx=n_ctx, max_model_len=4 * n_ctx)
        config = {
            "datasets": [dataset],
            "families": [{"name": "check", "role": "check", "checkpoints": [ckpt]}],
            "inference": {"dtype": "float32", "threads": 1},
            "miniworld": {"activate": False},
        }
        cfg = work / f"{model}.yaml"
        cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
        out = work / f"{model}.jsonl"
        prompts = run_dir / "results" / "prompts" / dataset / f"{k}.json"
        cmd = [*vllm_ctxscale, "infer", "--config", str(cfg), "--prompts", str(prompts)]
        t_vl = run([*cmd, "--model", "vllm", "--out", str(out)], env)
        _, hf = records(run_dir / "results" / "generations" / model / dataset / f"{k}.jsonl")
        settings, vl = records(out)
        same = n_identical(hf, vl)
        table = settings.get("yarn_table_positions")
        print(
            f"check_vllm: miniature {model} ({', '.join(settings['hf_overrides']['architectures'])}"
            f"), {dataset} {k} shots, {hf[0]['n_pmt']} prompt tokens, n_ctx {n_ctx}"
            + (f", YaRN table extended to {table}" if table else "")
            + f": {same}/{len(hf)} instances identical to the run's transformers shard; "
            f"vllm {t_vl:.0f} s (engine start included)"
        )
        failed += same != len(hf) or len(hf) != len(vl)
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vllm-venv", default=str(ROOT / ".venv-vllm"), help="vLLM environment")
    ap.add_argument("--n-shots", type=int, default=31, help="demonstrations per prompt")
    ap.add_argument(
        "--mini-run",
        help="a finished default-scale run directory: also check its miniature models",
    )
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
        yarn_dir = work / "yarn-x2-over-256"
        shutil.copytree(model_dir, yarn_dir)
        hf_config = json.loads((yarn_dir / "config.json").read_text(encoding="utf-8"))
        theta = (hf_config.get("rope_parameters") or {}).get("rope_theta")
        hf_config["rope_parameters"] = {
            "rope_type": "yarn",
            "factor": 2.0,
            "original_max_position_embeddings": 256,
            "rope_theta": theta or hf_config.get("rope_theta"),
        }
        hf_config["max_position_embeddings"] = 512
        (yarn_dir / "config.json").write_text(json.dumps(hf_config, indent=1), encoding="utf-8")
        cases = {  # name: (model dir, n_ctx, vLLM's max_model_len)
            "within n_ctx": (model_dir, spec.n_ctx, None),
            "YaRN past its table": (yarn_dir, 512, 1024),
            "base past n_ctx": (model_dir, 512, 1024),
        }
        prompts = work / "prompts" / f"{args.n_shots}.json"
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2"),
        }
        failed = 0
        for case, (path, n_ctx, max_len) in cases.items():
            common = {"path": str(path), "N": spec.N, "D": spec.D, "n_ctx": n_ctx}
            vllm_ckpt = {"name": "vllm", "backend": "vllm", "enforce_eager": True, **common}
            if max_len:
                vllm_ckpt["max_model_len"] = max_len
            config = {
                "datasets": [DATASET],
                "families": [
                    {
                        "name": "check",
                        "role": "check",
                        "checkpoints": [
                            {"name": "hf", "backend": "transformers", **common},
                            vllm_ckpt,
                        ],
                    }
                ],
                "inference": {"dtype": "float32", "threads": 1, "batch_size": 16},
                "miniworld": {"activate": False},
            }
            cfg = work / "config.yaml"
            cfg.write_text(yaml.safe_dump(config), encoding="utf-8")
            out = {name: work / f"{name}.jsonl" for name in ("hf", "vllm")}
            for path_ in out.values():
                path_.unlink(missing_ok=True)
            infer = ["infer", "--config", str(cfg), "--prompts", str(prompts)]
            t_hf = run([*ctxscale, *infer, "--model", "hf", "--out", str(out["hf"])])
            t_vl = run([*vllm_ctxscale, *infer, "--model", "vllm", "--out", str(out["vllm"])], env)
            (_, hf), (settings, vl) = records(out["hf"]), records(out["vllm"])
            same = n_identical(hf, vl)
            table = settings.get("yarn_table_positions")
            print(
                f"check_vllm: {case}: {same}/{len(hf)} instances identical ({args.n_shots} "
                f"shots, {hf[0]['n_pmt']} prompt tokens, n_ctx {n_ctx}"
                + (f", YaRN table extended to {table}" if table else "")
                + f"); transformers {t_hf:.0f} s, vllm {t_vl:.0f} s (engine start included) "
                f"on {settings['device']}"
            )
            for a, b in zip(hf, vl, strict=False):
                if a["output"] != b["output"]:
                    print(f"  {a['id']}: transformers {a['output']!r} vs vllm {b['output']!r}")
            failed += same != len(hf) or len(hf) != len(vl)
            if case == "within n_ctx":
                vllm_cmd = [*vllm_ctxscale, *infer, "--model", "vllm"]
                failed += rerun_and_resume(vllm_cmd, out["vllm"], env)
        if args.mini_run:
            failed += check_mini(Path(args.mini_run), work, vllm_ctxscale, env)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
