"""Miniature-world benchmark: the default config's miniature world alone, timed.

    python benchmarks/bench_miniworld.py [--cores 2] [--keep DIR] [--configfile FILE ...]

Goal (issue 17): train + eval + fit of the miniature world <= 6 min on a 2-core machine.
Runs the workflow from an empty directory with the real models switched off
(``families: []``, ``datasets: []``): first every fit (training, prompts, inference,
scores and fits: one Snakemake call, so stages overlap as they do in a normal run), then
everything else (figures, tables, report, manifest). Prints the wall time of both calls,
split into Snakemake's start-up and the span of its jobs, and the job-seconds of each rule
(from Snakemake's log), so a slow stage is visible. Snakemake runs through
``scripts/run_snakemake.py``, as in the tests and CI: where SLURM's client is installed
but no controller answers, a plain ``snakemake`` spends about 10 s of its start-up in the
SLURM plugin's ``scontrol show config`` probe. ``--configfile`` adds config files after
the default one, to time (and keep) a variant of the world, e.g. another ``rope_theta``.
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
    fits = [f"results/fits/{f}.json" for f in artifacts.FITS]
    return [("train + evaluate + fit", fits), ("figures, tables, report", [])]


def rule_seconds(log_text: str) -> tuple[dict[str, tuple[int, int]], int]:
    """({rule: (jobs, job-seconds)}, seconds from the first job's start to the last one's
    end) from a Snakemake log (start and finish timestamps)."""
    stamp = re.compile(r"^\[\w{3} \w{3} +\d+ (\d+):(\d+):(\d+) \d+\]")
    now, rule, started, out = 0, "", {}, {}
    first = last = None
    for line in log_text.splitlines():
        if m := stamp.match(line):
            h, mi, s = map(int, m.groups())
            now = h * 3600 + mi * 60 + s
        elif m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif m := re.match(r"^\s+jobid: (\d+)", line):
            started[m.group(1)] = (rule, now)
            first = now if first is None else first
        elif (m := re.match(r"^Finished jobid: (\d+)", line)) and m.group(1) in started:
            name, t0 = started[m.group(1)]
            jobs, secs = out.get(name, (0, 0))
            out[name] = (jobs + 1, secs + (now - t0) % 86400)
            last = now
    span = (last - first) % 86400 if first is not None and last is not None else 0
    return out, span


def run(
    workdir: Path, cores: int, targets: list[str], configs: list[Path]
) -> tuple[float, dict, int]:
    # as the tests and CI call Snakemake: without the SLURM plugin's controller probe
    cmd = [sys.executable, str(ROOT / "scripts/run_snakemake.py")]
    cmd += ["-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    # targets before --configfile, which takes every value after it
    cmd += ["--cores", str(cores), *targets, "--configfile", *map(str, configs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_miniworld: snakemake failed:\n{proc.stderr[-3000:]}")
    return wall, *rule_seconds(proc.stderr + proc.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2, help="Snakemake --cores")
    parser.add_argument("--keep", help="run in this directory and keep it (default: a temp dir)")
    parser.add_argument(
        "--configfile", nargs="+", default=[], help="config files merged after the default one"
    )
    args = parser.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-miniworld-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    (workdir / "mini.yaml").write_text(MINI_ONLY)
    configs = [workdir / "mini.yaml", *(Path(c).resolve() for c in args.configfile)]
    config = load_configs([workdir / "config.yaml", *configs])
    rows, total = [], 0.0
    for name, targets in stages(config):
        wall, per_rule, span = run(workdir, args.cores, targets, configs)
        total += wall
        rows.append((name, wall, per_rule, span))
    print(f"miniature world, {args.cores} cores, from an empty directory ({workdir})")
    for name, wall, per_rule, span in rows:
        busy = sum(secs for _, secs in per_rule.values())
        print(
            f"{name}: {wall:.1f} s wall = Snakemake start-up {wall - span:.0f} s"
            f" + jobs {span} s ({busy} job-s)"
        )
        for rule, (jobs, secs) in sorted(per_rule.items(), key=lambda kv: -kv[1][1]):
            print(f"    {rule:40s} {jobs:3d} jobs {secs:6d} job-s")
    print(f"total: {total:.1f} s (goal for train + evaluate + fit: <= 360 s)")
    if not args.keep:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
