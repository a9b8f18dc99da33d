"""Miniature-world benchmark: the default config's miniature world alone, stage by stage.

    python benchmarks/bench_miniworld.py [--cores 2] [--keep DIR]

Goal (issue 17): train + eval + fit of the miniature world <= 6 min on a 2-core machine.
Runs the workflow from an empty directory with the real models switched off
(``families: []``, ``datasets: []``) and times each stage by asking Snakemake for its
outputs in order: training (every checkpoint), inference and scores (results/points.csv),
fits (results/fits/*.json), then everything else (figures, tables, report, manifest).
Prints one row per stage with its wall time and Snakemake job count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctxscale import artifacts  # noqa: E402
from ctxscale.config import load_configs  # noqa: E402

MINI_ONLY = "datasets: []\nfamilies: []\n"


def stages(config: dict) -> list[tuple[str, list[str]]]:
    """(stage, Snakemake targets) in the order the workflow needs them."""
    models = artifacts.mini_checkpoints(config)
    fits = [f"results/fits/{f}.json" for f in artifacts.FITS]
    return [
        ("train (ladders + extensions)", models),
        ("evaluate (prompts, inference, scores)", ["results/points.csv"]),
        ("fit (5 fits with bootstrap)", fits),
        ("figures, tables, report", []),
    ]


def run(workdir: Path, cores: int, targets: list[str]) -> tuple[float, int]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    # targets before --configfile, which takes every value after it
    cmd += ["--cores", str(cores), *targets, "--configfile", str(workdir / "mini.yaml")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_miniworld: snakemake failed:\n{proc.stderr[-3000:]}")
    jobs = re.search(r"^total\s+(\d+)$", proc.stdout + proc.stderr, re.M)
    return wall, int(jobs.group(1)) if jobs else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="Snakemake --cores")
    parser.add_argument("--keep", help="run in this directory and keep it (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-miniworld-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    (workdir / "mini.yaml").write_text(MINI_ONLY)
    config = load_configs([workdir / "config.yaml", workdir / "mini.yaml"])
    rows, total = [], 0.0
    for name, targets in stages(config):
        wall, jobs = run(workdir, args.cores, targets)
        total += wall
        rows.append((name, wall, jobs))
    print(f"miniature world, {args.cores} cores, from an empty directory ({workdir})")
    print(f"{'stage':40s} {'wall s':>8s} {'jobs':>5s}")
    for name, wall, jobs in rows:
        print(f"{name:40s} {wall:8.1f} {jobs:5d}")
    print(f"{'total':40s} {total:8.1f}   (goal: <= 360 s)")
    if not args.keep:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
