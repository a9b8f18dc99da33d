"""Fit benchmark: one task of ~120 points, and a 200-resample bootstrap.

    python benchmarks/bench_fit.py [--repeats 5] [--bootstrap 200] [--jobs N]

Goals (issue 3): one fit <= 2 s and a 200-resample bootstrap <= 60 s on a 2-core machine.
Prints a small table (median wall time of the single fit over ``--repeats`` runs; the
bootstrap is timed once, as the fit plus its resamples, on ``--jobs`` workers).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np
import pandas as pd

from ctxscale.analysis.fit import fit_table
from ctxscale.analysis.law import context_aware

TRUE = {"A": 1.5, "C_c": 1e22, "alpha": 0.4, "B": 1.2, "n_pmt_c": 800.0, "beta": 0.55}


def points(seed: int = 0) -> pd.DataFrame:
    """120 points: 4 compute levels (1e21..1e24) x 3 n_ctx x 10 n_pmt (10..1e5), noise 0.01."""
    grid = [
        (C, n_pmt, n_ctx)
        for C in np.geomspace(1e21, 1e24, 4)
        for n_ctx in (4096.0, 16384.0, 131072.0)
        for n_pmt in np.geomspace(10, 1e5, 10)
    ]
    C, n_pmt, n_ctx = (np.array(c) for c in zip(*grid, strict=True))
    rng = np.random.default_rng(seed)
    score = np.clip(context_aware(C, n_pmt, n_ctx, **TRUE) + rng.normal(0, 0.01, len(C)), 0, 1)
    return pd.DataFrame({"task": "bench", "C": C, "n_pmt": n_pmt, "n_ctx": n_ctx, "score": score})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    df = points()

    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fit = fit_table(df)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    one, one_cpu = statistics.median(times), statistics.median(cpu)

    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    boot = fit_table(df, bootstrap=args.bootstrap, n_jobs=args.jobs)
    t_boot = time.perf_counter() - t0
    boot_cpu = time.process_time() - c0 + _children_cpu() - k0
    ci = boot.tasks["bench"].ci

    rows = [
        ("single fit (120 points)", one, one_cpu, 2.0),
        (f"bootstrap {args.bootstrap} resamples, {args.jobs} jobs", t_boot, boot_cpu, 60.0),
    ]
    # Wall time depends on what else runs; CPU seconds (workers included) do not.
    print(f"{'benchmark':<40} {'wall_s':>8} {'cpu_s':>8} {'goal_s':>7} {'':>5}")
    for name, wall, cpu_s, goal in rows:
        verdict = "PASS" if wall <= goal else "FAIL"
        print(f"{name:<40} {wall:>8.3f} {cpu_s:>8.3f} {goal:>7.0f} {verdict:>5}")
    tf = fit.tasks["bench"]
    print(
        f"cpus={os.cpu_count()} load1={os.getloadavg()[0]:.2f} mae={tf.mae:.4f} "
        f"alpha={tf.params['alpha']:.3f} (true {TRUE['alpha']}) "
        f"beta={tf.params['beta']:.3f} (true {TRUE['beta']}) failed={ci['n_failed']}"
    )


if __name__ == "__main__":
    main()
