"""The workflow through a real SLURM cluster (snakemake-executor-plugin-slurm).

Skipped unless `sinfo` reports an idle node: start one with `scripts/slurm-local.sh start`.
Without an accounting database the plugin polls `squeue`.
"""

import shutil
import subprocess
import time

import pytest
import yaml
from test_workflow import ROOT, snakemake


def cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mix"))


def prepare_available() -> bool:
    from ctxscale.cli import build_parser

    return "prepare" in build_parser().format_help()


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_workflow_through_slurm(tmp_path):
    # Asked here, not in a skipif: where SLURM is installed but down, `sinfo` waits ~9 s,
    # which every pytest run would pay at collection, selected or not.
    if not cluster_up():
        pytest.skip("no SLURM cluster (scripts/slurm-local.sh start)")
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({"n_shots": [0, 1], "data": {"max_instances": 2}}))
    targets = ["results/config.yaml"]
    if prepare_available():
        targets += ["results/prompts/dm_math__arithmetic__add_or_sub/0.json"]
    start = time.perf_counter()
    proc = snakemake(
        tmp_path,
        *targets,
        "--profile",
        str(ROOT / "workflow/profiles/slurm"),
        "--configfile",
        str(ROOT / "workflow/presets/ci.yaml"),
        str(tiny),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "5",
        "--default-resources",
        "slurm_partition=main",
        "slurm_account=ctxscale",
        "mem_mb=1000",
        "runtime=10",
        timeout=300,
    )
    elapsed = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    submitted = out.count("has been submitted with SLURM jobid")
    assert submitted == len(targets), out  # config copy + one prepare job
    for target in targets:
        assert (tmp_path / target).is_file()
    print(f"slurm: {submitted} jobs through sbatch in {elapsed:.1f} s")
