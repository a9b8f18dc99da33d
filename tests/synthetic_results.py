"""A synthetic results set (contract 4 and 5 file layout) for figure/report tests.

Scores come from a small local formula of the law's shape plus seeded noise; the fits are
written with known parameters. Until ``ctxscale.fit`` exists, :func:`install_fake_fit`
provides a stand-in ``read_fit``/``predict_points`` evaluating that local formula.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd

TASK_PARAMS = {
    "arithmetic": {"A": 2.0, "C_c": 7.0e22, "alpha": 1.0, "B": 1.5, "n_pmt_c": 400.0, "beta": 0.6},
    "common_sense": {
        "A": 3.0,
        "C_c": 6.0e22,
        "alpha": 0.8,
        "B": 2.5,
        "n_pmt_c": 300.0,
        "beta": 0.4,
    },
    "translation": {"A": 0.5, "C_c": 9.0e22, "alpha": 1.2, "B": 0.4, "n_pmt_c": 800.0, "beta": 0.5},
}
SIZES = {"7b": (6476271616, 7.77e22), "13b": (12688184320, 1.5227e23)}
N_CTX = (4096, 8192, 16384, 32768, 65536, 131072)
SHOTS = (0, 1, 3, 7, 15, 31, 63, 127, 255, 511)
HOLDOUT = 10000.0


def local_law(params: dict, C, n_pmt, n_ctx, penalty: bool = True, agnostic: bool = False):
    """Test-only formula of the law's shape (the package's law lives in ctxscale.law)."""
    C, n_pmt, n_ctx = (np.asarray(v, dtype=float) for v in (C, n_pmt, n_ctx))
    p = (1 - np.exp(-params["A"] * (C / params["C_c"]) ** params["alpha"])) * (
        1 - np.exp(-params["B"] * (n_pmt / params["n_pmt_c"]) ** params["beta"])
    )
    if penalty and not agnostic:
        p = p / (1 + np.exp(8 * np.log(n_pmt / n_ctx)))
    return p


def _fake_read_fit(path):
    return json.loads(Path(path).read_text())


def _fake_predict_points(fit, df):
    out = df.copy()
    pred = np.zeros(len(df))
    for task, entry in fit["tasks"].items():
        m = (df["task"] == task).to_numpy()
        pred[m] = local_law(
            entry["params"],
            df.loc[m, "C"],
            df.loc[m, "n_pmt"],
            df.loc[m, "n_ctx"],
            penalty=fit.get("penalty", "none") != "none",
            agnostic=fit["law"] == "context_agnostic",
        )
    out["predicted"] = pred
    return out


def install_fake_fit() -> bool:
    """Provide ``ctxscale.fit`` if the package has none yet; True if the fake was installed."""
    try:
        import ctxscale.fit  # noqa: F401

        return False
    except ImportError:
        mod = types.ModuleType("ctxscale.fit")
        mod.read_fit = _fake_read_fit
        mod.predict_points = _fake_predict_points
        sys.modules["ctxscale.fit"] = mod
        return True


def _rows(family, role, n_ctx_list, N, C, rng, shots=SHOTS):
    rows = []
    for task, params in TASK_PARAMS.items():
        for n_ctx in n_ctx_list:
            for n_shots in shots:
                n_pmt = 60.0 + 70.0 * n_shots * (1.3 if task == "translation" else 1.0)
                score = float(local_law(params, C, n_pmt, n_ctx))
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


def write_results(
    root: Path, seed: int = 0, with_bootstrap: bool = True, small: bool = False
) -> dict[str, Path]:
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

    def fit_doc(law, penalty, scale=1.0, holdout=None):
        tasks = {}
        for task, params in TASK_PARAMS.items():
            p = {k: v * (scale if k == "B" else 1.0) for k, v in params.items()}
            entry = {"params": p, "ci": {k: [v * 0.9, v * 1.1] for k, v in p.items()}}
            if with_bootstrap:
                brng = np.random.default_rng(1)
                entry["bootstrap"] = [
                    {k: v * float(brng.uniform(0.95, 1.05)) for k, v in p.items()}
                    for _ in range(20)
                ]
            tasks[task] = entry
        doc = {"law": law, "penalty": penalty, "tasks": tasks}
        if holdout is not None:
            doc["holdout_npmt"] = holdout
        return doc

    docs = {
        "fit_main": fit_doc("context_aware", "sigmoid_log"),
        "fit_no_penalty": fit_doc("context_aware", "none"),
        "fit_extrapolation": fit_doc(
            "context_aware", "sigmoid_log", 0.97, 1000.0 if small else HOLDOUT
        ),
        "fit_agnostic": fit_doc("context_agnostic", "none"),
    }
    for name, doc in docs.items():
        paths[name].write_text(json.dumps(doc, sort_keys=True, indent=2))
    install_fake_fit()
    from ctxscale import fit as fitmod

    main = fitmod.read_fit(paths["fit_main"])
    for role in ("ood", "technique"):
        if small:
            continue  # no OOD or technique family at the default scale: no file
        sub = points[points["role"] == role].reset_index(drop=True)
        fitmod.predict_points(main, sub).to_csv(paths[role], index=False, float_format="%.6g")
    paths["manifest"].write_text("path\tsha256\nresults/points.csv\t" + "0" * 64 + "\n")
    paths["config"].write_text(
        f"scale: {'default' if small else 'paper'}\nseed: 31337\nfit:\n  seed: 31337\n"
        f"  bootstrap: 200\n  holdout_npmt: {HOLDOUT}\n"
    )
    return paths
