"""Write ``examples/points_demo.csv``: a small synthetic points table from known parameters.

Deterministic (fixed seed, fixed float format), so the shipped file can be regenerated
byte for byte:

    python examples/make_demo_points.py --out examples/points_demo.csv

Four models over ~3 orders of magnitude of compute (C = 6 N D), two context limits,
the paper's n_shots grid, three tasks; scores follow the context-aware law with the
``log_sigmoid`` penalty plus Gaussian noise (sd 0.01), clipped to [0, 1]. The largest
model has role ``ood`` so ``--where role=fit`` / ``predict`` can be demonstrated.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ctxscale.analysis.law import context_aware

#: The true parameters per task (C_c and n_pmt_c are arbitrary reference scales).
TRUE_PARAMS: dict[str, dict[str, float]] = {
    "arithmetic": {"A": 1.2, "C_c": 1e22, "alpha": 0.35, "B": 1.0, "n_pmt_c": 2000.0, "beta": 0.5},
    "common_sense": {"A": 3.0, "C_c": 1e22, "alpha": 0.25, "B": 4.0, "n_pmt_c": 300.0, "beta": 0.4},
    "translation": {"A": 0.8, "C_c": 1e22, "alpha": 0.3, "B": 2.0, "n_pmt_c": 1000.0, "beta": 0.45},
}
#: Prompt tokens: fixed part + tokens per demonstration, per task.
PROMPT_TOKENS: dict[str, tuple[float, float]] = {
    "arithmetic": (90.0, 120.0),
    "common_sense": (60.0, 45.0),
    "translation": (70.0, 95.0),
}
MODELS: tuple[tuple[str, float, str], ...] = (
    ("demo-100m", 1.0e8, "fit"),
    ("demo-1b", 1.0e9, "fit"),
    ("demo-10b", 1.0e10, "fit"),
    ("demo-70b", 7.0e10, "ood"),
)
D_TOKENS = 2.0e12
N_CTX = (4096, 32768)
N_SHOTS = (0, 1, 3, 7, 15, 31, 63, 127, 255, 511)
NOISE_SD = 0.01
SEED = 31337


def make_points(seed: int = SEED) -> pd.DataFrame:
    """The demo table, one row per (model, n_ctx, task, n_shots)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, n_params, role in MODELS:
        for n_ctx in N_CTX:
            for task, params in TRUE_PARAMS.items():
                base, per_shot = PROMPT_TOKENS[task]
                for n_shots in N_SHOTS:
                    C = 6.0 * n_params * D_TOKENS
                    n_pmt = base + per_shot * n_shots
                    p = float(context_aware(C, n_pmt, n_ctx, **params))
                    score = float(np.clip(p + rng.normal(0.0, NOISE_SD), 0.0, 1.0))
                    rows.append(
                        {
                            "family": "demo",
                            "model": f"{model}-{n_ctx // 1024}k",
                            "role": role,
                            "task": task,
                            "n_shots": n_shots,
                            "n_ctx": n_ctx,
                            "N": n_params,
                            "D": D_TOKENS,
                            "C": C,
                            "n_pmt": n_pmt,
                            "score": round(score, 6),
                        }
                    )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("points_demo.csv")))
    args = parser.parse_args()
    make_points().to_csv(args.out, index=False, float_format="%.6g", lineterminator="\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
