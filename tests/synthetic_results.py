"""A synthetic results set (the workflow's file layout, contracts 4 and 5) for figure tests.

Scores are the package's law (``ctxscale.analysis.law``) at known parameters plus seeded noise;
the fits are written in the ``ctxscale-fit/1`` format with those parameters (and made-up
CIs), so figures and tables can be checked against known values in well under a second.
A separate slow test fits the same points with the real ``ctxscale.analysis.fit``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ctxscale.analysis import law
from ctxscale.analysis.fit import predict_points, read_fit

C_REF, NPMT_REF = 1.0e23, 1000.0
TASK_PARAMS = {
    "arithmetic": {"A": 2.0, "alpha": 1.0, "B": 1.2, "beta": 0.6},
    "common_sense": {"A": 3.0, "alpha": 0.8, "B": 3.0, "beta": 0.4},
    "translation": {"A": 0.6, "alpha": 1.2, "B": 0.3, "beta": 0.5},
}
SIZES = {"7b": (6476271616, 7.77e22), "13b": (12688184320, 1.5227e23)}
N_CTX = (4096, 8192, 16384, 32768, 65536, 131072)
SHOTS = (0, 1, 3, 7, 15, 31, 63, 127, 255, 511)
HOLDOUT = 10000.0
PENALTY = "log_sigmoid"


def six(p: dict[str, float]) -> dict[str, float]:
    return {**p, "C_c": C_REF, "n_pmt_c": NPMT_REF}


def _rows(family, role, n_ctx_list, N, C, rng, shots=SHOTS):
    rows = []
    for task, params in TASK_PARAMS.items():
        for n_ctx in n_ctx_list:
            for n_shots in shots:
                n_pmt = 60.0 + 70.0 * n_shots * (1.3 if task == "translation" else 1.0)
                score = float(law.predict(six(params), C, n_pmt, n_ctx, penalty_name=PENALTY))
                score = float(np.clip(score + rng.normal(0, 0.01), 0, 1))
                rows.append(
                    {
                        "family": family,
                        "model": f"{family}-{n_ctx // 1024}k",
                        "role": role,
                        "task": task,
                        "n_shots": n_shots,
                        "n_ctx": n_ctx,
                        "N": N,
                        "D": C / (6 * N),
                        "C": C,
                        "n_pmt": n_pmt,
                        "score": score,
                        "n_datasets": 2,
                    }
                )
    return rows


def _fit_doc(law_name: str, penalty: str, scale_b: float = 1.0, holdout=None) -> dict:
    tasks = {}
    for task, p in TASK_PARAMS.items():
        p = {**p, "B": p["B"] * scale_b}
        params = six(p)
        if law_name == "context_agnostic":
            params.update(B=None, n_pmt_c=None, beta=None)
        ident = {
            "log10_A_C_c": math.log10(p["A"]) - p["alpha"] * math.log10(C_REF),
            "alpha": p["alpha"],
            "log10_B_n_pmt_c": math.log10(p["B"]) - p["beta"] * math.log10(NPMT_REF),
            "beta": p["beta"],
        }

        def band(v):
            return None if v is None else [v - 0.1 * abs(v), v + 0.1 * abs(v)]

        tasks[task] = {
            "params": params,
            "identifiable": ident,
            "ci": {
                "level": 0.95,
                "params": {k: band(v) for k, v in params.items()},
                "identifiable": {k: band(v) for k, v in ident.items()},
            },
            "settings": {"C_c_reference": C_REF, "n_pmt_c_reference": NPMT_REF},
        }
    settings = {
        "law": law_name,
        "penalty": "none" if law_name == "context_agnostic" else penalty,
        "penalty_width": law.DEFAULT_PENALTY_WIDTH,
        "seed": 31337,
        "holdout_npmt": holdout,
    }
    return {"format": "ctxscale-fit/1", "settings": settings, "tasks": tasks}


def _corrected_scores(points: pd.DataFrame) -> pd.DataFrame:
    """Two DeepMind modules' scores per arithmetic point: True/False answers score 0 by the
    original metric and about half by the corrected one; a numeric module is unchanged."""
    arith = points[points["task"] == "arithmetic"]
    rows = []
    for r in arith.itertuples():
        for dataset, score, fixed in (
            ("dm_math__numbers__is_prime", 0.0, 0.5),
            ("dm_math__arithmetic__add_or_sub", r.score, r.score),
        ):
            rows.append(
                {
                    "family": r.family,
                    "model": r.model,
                    "role": r.role,
                    "task": r.task,
                    "dataset": dataset,
                    "n_shots": r.n_shots,
                    "n_instances": 100,
                    "metric": "math_equiv",
                    "score": score,
                    "corrected_metric": "math_equiv_answer",
                    "score_corrected": fixed,
                }
            )
    return pd.DataFrame(rows)


def write_results(root: Path, seed: int = 0, small: bool = False) -> dict[str, Path]:
    """Write a results set under ``root``; returns the paths by input option name.

    ``small`` mimics the default scale: two small fitted models with one n_ctx each, one
    task, six shot counts (prompts within the context), no OOD or technique family.
    """
    rng = np.random.default_rng(seed)
    rows = []
    if small:
        rows += _rows("smollm2", "fit", (8192,), 106203456, 1.27e21, rng, shots=SHOTS[:6])
        rows += _rows("gemma-3", "fit", (32768,), 100326016, 3.6e21, rng, shots=SHOTS[:6])
        rows = [r for r in rows if r["task"] == "arithmetic"]
    else:
        for size, (N, C) in SIZES.items():
            rows += _rows(f"llama-2-{size}-yarn", "fit", N_CTX, N, C, rng)
        rows += _rows("llama-2-7b-pi", "technique", (16384,), SIZES["7b"][0], 7.7e22, rng)
        rows += _rows("qwen-0.5b", "ood", (32768,), 494032768, 1.08e23, rng)
        rows += _rows("gemma-2", "ood", (8192,), 9e9, 8e23, rng)
    points = pd.DataFrame(rows)
    (root / "results/fits").mkdir(parents=True)
    (root / "results/predictions").mkdir(parents=True)
    paths = {
        "points": root / "results/points.csv",
        "scores_corrected": root / "results/scores_corrected_metric.csv",
        "fit_main": root / "results/fits/main.json",
        "fit_no_penalty": root / "results/fits/no_penalty.json",
        "fit_extrapolation": root / "results/fits/extrapolation.json",
        "fit_agnostic": root / "results/fits/context_agnostic.json",
        "ood": root / "results/predictions/ood.csv",
        "technique": root / "results/predictions/technique.csv",
        "manifest": root / "results/manifest.tsv",
        "config": root / "config.yaml",
    }
    points.to_csv(paths["points"], index=False, float_format="%.6g")
    _corrected_scores(points).to_csv(paths["scores_corrected"], index=False, float_format="%.6g")
    docs = {
        "fit_main": _fit_doc("context_aware", PENALTY),
        "fit_no_penalty": _fit_doc("context_aware", "none"),
        "fit_extrapolation": _fit_doc("context_aware", PENALTY, 0.97, 1000.0 if small else HOLDOUT),
        "fit_agnostic": _fit_doc("context_agnostic", "none"),
    }
    for name, doc in docs.items():
        paths[name].write_text(json.dumps(doc, sort_keys=True, indent=2))
    main = read_fit(paths["fit_main"])
    for role in ("ood", "technique"):
        if small:
            continue  # no OOD or technique family at the default scale: no file
        sub = points[points["role"] == role].reset_index(drop=True)
        sub = sub.assign(predicted=predict_points(main, sub))
        sub.to_csv(paths[role], index=False, float_format="%.10g")
    paths["manifest"].write_text("path\tsha256\nresults/points.csv\t" + "0" * 64 + "\n")
    paths["config"].write_text(
        f"scale: {'default' if small else 'paper'}\nseed: 31337\nfit:\n  seed: 31337\n"
        f"  bootstrap: 200\n  holdout_npmt: {HOLDOUT}\n"
    )
    return paths
