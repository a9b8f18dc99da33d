"""Paper-scale DAG benchmark: the time to build and list the whole paper DAG (a dry run).

    python benchmarks/bench_dag.py [--repeats 3]

Goal (issue 11): the paper preset's dry run in <= 30 s on a 2-core machine. Times
``snakemake -n --configfile workflow/presets/paper.yaml`` side by side two ways, each the
median of ``--repeats`` runs: through ``scripts/run_snakemake.py`` (as the tests and CI
call Snakemake: no SLURM executor plugin loaded) and plain ``python -m snakemake`` (what
a user types; where SLURM is installed but its controller is down, the SLURM plugin's
``scontrol`` probe adds its wait). Prints the job count and both medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "workflow" / "presets" / "paper.yaml"


def dry_run(launcher: list[str], workdir: Path) -> tuple[float, int]:
    """One dry run from an empty directory: (seconds, jobs listed)."""
    cmd = [*launcher, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "-n", "--cores", "2"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "--configfile", str(PAPER)], capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench_dag: dry run failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    total = re.search(r"^total\s+(\d+)", proc.stdout + proc.stderr, re.MULTILINE)
    return seconds, int(total.group(1)) if total else -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="dry runs per launcher")
    args = ap.parse_args()
    launchers = {
        "scripts/run_snakemake.py (tests, CI)": [
            sys.executable,
            str(ROOT / "scripts/run_snakemake.py"),
        ],
        "python -m snakemake (plain)": [sys.executable, "-m", "snakemake"],
    }
    times: dict[str, list[float]] = {name: [] for name in launchers}
    jobs = -1
    with tempfile.TemporaryDirectory(prefix="bench_dag-") as tmp:
        for i in range(args.repeats):  # interleaved, so both see the same machine load
            for name, launcher in launchers.items():
                seconds, jobs = dry_run(launcher, Path(tmp) / f"{i}")
                times[name].append(seconds)
    print(f"paper-scale dry run, {jobs} jobs, median of {args.repeats} (goal <= 30 s):")
    for name, values in times.items():
        print(f"  {name:40s} {statistics.median(values):6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
