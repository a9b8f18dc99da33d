"""Shared helpers: synthetic points tables drawn from the law with known parameters, and
configs as Snakemake itself resolves them."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ctxscale.analysis.law import context_aware

ROOT = Path(__file__).resolve().parents[1]
#: `snakemake` without the SLURM plugin's controller probe (scripts/run_snakemake.py)
SNAKEMAKE = [sys.executable, str(ROOT / "scripts/run_snakemake.py")]

TRUE = {"A": 1.5, "C_c": 1e22, "alpha": 0.4, "B": 1.2, "n_pmt_c": 800.0, "beta": 0.55}

# The paper's Llama-2 compute per context length (PAPER.md model table).
PAPER_C = {
    "7b": {4096: 7.7719e22, 8192: 7.7723e22, 16384: 7.7732e22, 32768: 7.7748e22,
           65536: 7.7780e22, 131072: 7.7846e22},
    "13b": {4096: 1.5227e23, 8192: 1.5227e23, 16384: 1.5229e23, 32768: 1.5232e23,
            65536: 1.5239e23, 131072: 1.5251e23},
}  # fmt: skip


def synth(
    grid: list[tuple[float, float, float]],
    params: dict[str, float] | None = None,
    noise: float = 0.01,
    seed: int = 0,
    task: str = "t",
    penalty: str = "log_sigmoid",
) -> pd.DataFrame:
    """Points at (C, n_pmt, n_ctx) with scores from the law plus Gaussian noise, clipped."""
    params = params or TRUE
    C, n_pmt, n_ctx = (np.array(col, dtype=float) for col in zip(*grid, strict=True))
    truth = context_aware(C, n_pmt, n_ctx, **params, penalty_name=penalty)
    rng = np.random.default_rng(seed)
    score = np.clip(truth + rng.normal(0.0, noise, len(C)), 0.0, 1.0)
    return pd.DataFrame(
        {"task": task, "C": C, "n_pmt": n_pmt, "n_ctx": n_ctx, "score": score, "truth": truth}
    )


def wide_grid() -> list[tuple[float, float, float]]:
    """4 compute levels over 3 orders of magnitude x 3 n_ctx x 10 n_pmt in 10..1e5: 120 points."""
    return [
        (C, n_pmt, n_ctx)
        for C in np.geomspace(1e21, 1e24, 4)
        for n_ctx in (4096.0, 16384.0, 131072.0)
        for n_pmt in np.geomspace(10, 1e5, 10)
    ]


def paper_grid() -> list[tuple[float, float, float]]:
    """The paper's setting: two compute clusters (7B, 13B), n_ctx 4k..128k, doubling n_pmt."""
    n_pmts = [100.0 + 60.0 * s for s in (0, 1, 3, 7, 15, 31, 63, 127, 255, 511, 1023, 2047)]
    return [
        (C, n_pmt, n_ctx)
        for cluster in PAPER_C.values()
        for n_ctx, C in cluster.items()
        for n_pmt in n_pmts
    ]


@pytest.fixture
def wide_points() -> pd.DataFrame:
    return synth(wide_grid())


@pytest.fixture
def paper_points() -> pd.DataFrame:
    return synth(paper_grid(), seed=1)


def run_snakemake(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Snakemake against the repo's Snakefile in ``workdir`` (config.yaml copied there)."""
    shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def shared_dir(tmp_path_factory) -> Path:
    """A scratch directory of this test run that every pytest-xdist worker sees (the
    workers' base directories share their parent); the session's own without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def snakemake_config(tmp_path_factory):
    """``resolve(*presets)``: the config a Snakemake dry run resolves from config.yaml and
    ``workflow/presets/<preset>`` files (the copy the workflow writes under
    .snakemake/ctxscale/ for its rules), one Snakemake call per preset list per test run:
    the first worker to ask runs it and keeps the copy, the others wait for it and read it."""
    cache: dict[tuple[str, ...], dict] = {}
    shared = shared_dir(tmp_path_factory)

    def resolve(*presets: str) -> dict:
        if presets not in cache:
            kept = shared / ("resolved-" + "+".join(["config.yaml", *presets]))
            with open(kept.with_suffix(".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not kept.exists():
                    work = tmp_path_factory.mktemp("resolved")
                    args = [
                        arg
                        for p in presets
                        for arg in ("--configfile", str(ROOT / "workflow/presets" / p))
                    ]
                    proc = run_snakemake(work, "results/config.yaml", "-n", *args, "--quiet", "all")
                    assert proc.returncode == 0, proc.stdout + proc.stderr
                    (written,) = (work / ".snakemake/ctxscale").glob("config-*.yaml")
                    shutil.copy(written, kept)
            cache[presets] = yaml.safe_load(kept.read_text())
        return cache[presets]

    return resolve


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """A closing block naming what this run did not check and how to check it."""
    skipped = terminalreporter.stats.get("skipped", [])
    deselected = len(terminalreporter.stats.get("deselected", []))
    if not skipped and not deselected:
        return
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    write = terminalreporter.write_line
    terminalreporter.section("not checked by this run", sep="-")
    for reason, n in sorted(reasons.items(), key=lambda item: -item[1]):
        write(f"{n} skipped: {reason}")
    if deselected:
        marks = config.getoption("markexpr") or config.getoption("keyword") or "selection"
        write(f"{deselected} deselected by -m/-k ({marks!r}); a bare `pytest` runs them")
