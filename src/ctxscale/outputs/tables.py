"""The paper's tables (MAE per task, penalty ablation) and the fitted-parameter table.

Every table is a tidy DataFrame written as CSV (fixed float format) and Markdown. Mean
absolute errors carry a percentile bootstrap confidence interval over the points
(resampling the absolute errors of a fixed fit, seeded from the config's fit seed):
it measures how much the MAE depends on which points were evaluated, not the
uncertainty of the fit itself, which the parameter table's bootstrap CIs describe.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctxscale import catalog
from ctxscale.analysis.law import PARAM_NAMES
from ctxscale.catalog import task_order
from ctxscale.errors import CtxscaleError
from ctxscale.outputs.results import (
    Results,
    fit_identifiable,
    fit_parameters,
    fit_references,
)

FLOAT_FORMAT = "%.6g"
CI_LEVEL = 0.95


def paper_results() -> dict[str, Any]:
    """The paper's reported numbers (PAPER.md), from ``ctxscale/data/paper_results.yaml``."""
    text = resources.files("ctxscale").joinpath("data/paper_results.yaml").read_text()
    return yaml.safe_load(text)


def bootstrap_mae(abs_err: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """MAE and its percentile bootstrap CI (``CI_LEVEL``) over the points."""
    abs_err = np.asarray(abs_err, dtype=float)
    if abs_err.size == 0:
        return np.nan, np.nan, np.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, abs_err.size, size=(n_boot, abs_err.size))
    boots = abs_err[idx].mean(axis=1)
    tail = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(boots, [tail, 100 - tail])
    return float(abs_err.mean()), float(lo), float(hi)


def constant_mae(scores: pd.Series, known: pd.Series) -> float:
    """MAE of the constant predictor: the mean of the scores it may see (the fitted
    points; for extrapolation, the points below the cut-off). A fit must beat it."""
    if len(scores) == 0 or len(known) == 0:
        return np.nan
    return float((scores - known.mean()).abs().mean())


def noise_mae(points: pd.DataFrame) -> float:
    """The MAE that sampling noise alone gives: a score averaged over n instances has a
    binomial standard deviation sqrt(p (1 - p) / n), and |normal error| averages
    sqrt(2 / pi) times it. No fit can do much better than this floor."""
    if len(points) == 0 or "n_instances" not in points:
        return np.nan
    p = points["score"].clip(0, 1).to_numpy(float)
    n = points["n_instances"].clip(lower=1).to_numpy(float)
    return float(np.mean(np.sqrt(2 / np.pi) * np.sqrt(p * (1 - p) / n)))


def table_mae(res: Results) -> pd.DataFrame:
    """Per task: in-distribution MAE (main fit, all fitted points; with the loss variant also
    that fit's) and extrapolation MAE (fit on n_pmt below the cut-off, evaluated on the
    held-out points), with CIs."""
    paper = paper_results()["mae"]
    cutoff = res.holdout_npmt()
    main = res.predicted("fit_main")
    extra = res.predicted("fit_extrapolation")
    other, other_setting = None, ""
    if res.inputs.fit_loss_variant is not None:
        other = res.predicted("fit_loss_variant")
        other_setting = f"in_distribution_{res.fit('fit_loss_variant')['settings']['loss']}_loss"
    variants = [
        (setting, res.predicted(name))
        for setting, name in (
            ("in_distribution_floor", "fit_floor_variant"),
            ("in_distribution_coupling", "fit_coupling_variant"),
        )
        if getattr(res.inputs, name) is not None
    ]
    rows = []
    for task in task_order(set(main["task"]) | set(extra["task"])):
        held = extra[(extra["task"] == task) & (extra["n_pmt"] >= cutoff)]
        longest = held[held["n_ctx"] == held["n_ctx"].max()] if len(held) else held
        fitted = main[main["task"] == task]
        seen = extra[(extra["task"] == task) & (extra["n_pmt"] < cutoff)]
        settings = [("in_distribution", fitted, fitted)]
        if other is not None:
            settings.append((other_setting, other[other["task"] == task], fitted))
        settings += [(setting, df[df["task"] == task], fitted) for setting, df in variants]
        settings += [("extrapolation", held, seen), ("extrapolation_longest_ctx", longest, seen)]
        for setting, df, known in settings:
            err = (df["score"] - df["predicted"]).abs().to_numpy()
            m, lo, hi = bootstrap_mae(err, res.n_bootstrap, res.seed)
            rows.append(
                {
                    "task": task,
                    "setting": setting,
                    "n_points": len(err),
                    "mae": m,
                    "ci_lo": lo,
                    "ci_hi": hi,
                    "constant_mae": constant_mae(df["score"], known["score"]),
                    "noise_mae": noise_mae(df),
                    "paper_mae": (paper.get(setting.replace("_longest_ctx", "")) or {}).get(
                        task, np.nan
                    ),
                }
            )
    return pd.DataFrame(rows)


def table_ablation(res: Results) -> pd.DataFrame:
    """Penalty ablation: MAE on n_pmt <= n_ctx, n_pmt > n_ctx and all points, with and
    without the penalty, per task (the paper reports arithmetic only)."""
    paper = paper_results()["ablation"]
    with_p = res.predicted("fit_main")
    without = res.predicted("fit_no_penalty")
    fits = [("with_penalty", with_p, "fit_main")]
    if res.inputs.fit_penalty_variant is not None:
        fits.append(
            ("penalty_variant", res.predicted("fit_penalty_variant"), "fit_penalty_variant")
        )
    fits.append(("without_penalty", without, "fit_no_penalty"))
    rows = []
    for task in task_order(set(with_p["task"]) | set(without["task"])):
        for fit, df, source in fits:
            penalty = res.fit(source)["settings"]["penalty"]
            tp = df[df["task"] == task]
            inside = tp["n_pmt"] <= tp["n_ctx"]
            for subset, mask in (("le_ctx", inside), ("gt_ctx", ~inside), ("all", inside | True)):
                sub = tp[mask]
                err = (sub["score"] - sub["predicted"]).abs().to_numpy()
                m, lo, hi = bootstrap_mae(err, res.n_bootstrap, res.seed)
                rows.append(
                    {
                        "task": task,
                        "fit": fit,
                        "penalty": penalty,
                        "subset": subset,
                        "n_points": len(err),
                        "mae": m,
                        "ci_lo": lo,
                        "ci_hi": hi,
                        "paper_mae": ((paper.get(task) or {}).get(fit) or {}).get(subset, np.nan),
                    }
                )
    return pd.DataFrame(rows)


def table_metric_check(res: Results) -> pd.DataFrame:
    """Each dataset with a corrected metric: its mean score by the original metric and by the
    corrected one, over every model and shot count, and the largest change of one point."""
    df = res.scores_corrected
    cols = ["task", "dataset", "metric", "corrected_metric", "n_points", "n_instances"]
    cols += ["score", "score_corrected", "max_abs_change"]
    rows = []
    for (task, dataset, metric, fixed), g in df.groupby(
        ["task", "dataset", "metric", "corrected_metric"], sort=True
    ):
        change = (g["score_corrected"] - g["score"]).abs()
        rows.append(
            {
                "task": task,
                "dataset": dataset,
                "metric": metric,
                "corrected_metric": fixed,
                "n_points": len(g),
                "n_instances": int(g["n_instances"].sum()),
                "score": float(g["score"].mean()),
                "score_corrected": float(g["score_corrected"].mean()),
                "max_abs_change": float(change.max()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


#: Fit coordinate -> the paper parameter (and identifiable combination) it moves.
_BOUND_PARAMS = {
    "log10_A": ("A", "log10_A_C_c"),
    "alpha": ("alpha",),
    "log10_B": ("B", "log10_B_n_pmt_c"),
    "beta": ("beta",),
}


def _bound_notes(at_bound: dict[str, str]) -> dict[str, str]:
    """Table notes for parameters whose fit sits on a search bound."""
    return {
        param: f"at the {side} search bound of {name}"
        for name, side in at_bound.items()
        for param in _BOUND_PARAMS.get(name, (name,))
    }


def table_params(res: Results) -> pd.DataFrame:
    """The main fit's six parameters and its identifiable combinations, with the bootstrap
    CIs the fit recorded. C_c and n_pmt_c are fixed by the fit to reference scales of the
    data (A and C_c enter the law only as A C_c^-alpha, B and n_pmt_c only as
    B n_pmt_c^-beta), so they carry no interval of their own."""
    fit = res.fit("fit_main")
    params = fit_parameters(fit)
    if params.empty:
        raise CtxscaleError(f"{res.path('fit_main')} records no fitted parameters")
    ident = fit_identifiable(fit)
    rows = []
    for task in task_order(params["task"]):
        refs = fit_references(fit, task)
        bound = _bound_notes((fit.get("tasks") or {}).get(task, {}).get("at_bound") or {})
        for kind, df in (("parameter", params), ("identifiable", ident)):
            for r in df[df["task"] == task].itertuples():
                if kind == "identifiable" and r.parameter in PARAM_NAMES:
                    continue  # alpha and beta are identifiable as they are
                fixed = kind == "parameter" and f"{r.parameter}_reference" in refs
                rows.append(
                    {
                        "task": task,
                        "kind": kind,
                        "parameter": r.parameter,
                        "value": r.value,
                        "ci_lo": np.nan if fixed else r.lo,
                        "ci_hi": np.nan if fixed else r.hi,
                        "note": "fixed at the data's reference scale"
                        if fixed
                        else bound.get(r.parameter, ""),
                    }
                )
    return pd.DataFrame(rows)


# -- formatting ------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 4) -> str:
    """A number for Markdown: fixed significant digits; '-' for missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def with_ci(m: float, lo: float, hi: float) -> str:
    if np.isnan(m):
        return "-"
    if np.isnan(lo) or np.isnan(hi):
        return fmt(m)
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (no external formatter, stable output)."""
    esc = [[str(c).replace("|", r"\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines) + "\n"


SETTING_LABELS = {
    "in_distribution": "in-distribution",
    "in_distribution_absolute_loss": "in-distribution, absolute-loss fit",
    "in_distribution_squared_loss": "in-distribution, squared-loss fit",
    "in_distribution_huber_loss": "in-distribution, Huber-loss fit",
    "in_distribution_floor": "in-distribution, with a fitted floor (variant)",
    "in_distribution_coupling": "in-distribution, prompt term coupled to compute (variant)",
    "extrapolation": "extrapolation (every model)",
    "extrapolation_longest_ctx": "extrapolation (longest n_ctx only)",
}
SUBSET_LABELS = {"le_ctx": "n_pmt <= n_ctx", "gt_ctx": "n_pmt > n_ctx", "all": "all"}
FIT_LABELS = {
    "with_penalty": "with penalty",
    "penalty_variant": "penalty variant",
    "without_penalty": "without penalty",
}
PENALTY_LABELS = {
    "log_sigmoid": "centre at n_ctx",
    "log_sigmoid_fitted": "centre and width fitted",
    "sigmoid": "paper's sigmoid in tokens",
}


def paper_fmt(value: Any) -> str:
    """The paper's numbers as it prints them (three decimals)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{float(value):.3f}"


Cells = tuple[list[str], list[list[str]]]


def cells_mae(df: pd.DataFrame) -> Cells:
    header = [
        "task",
        "setting",
        "points",
        "MAE [95% CI] (ours)",
        "constant predictor",
        "noise floor",
        "MAE (paper)",
    ]
    rows = [
        [
            r.task,
            SETTING_LABELS.get(r.setting, r.setting),
            fmt(r.n_points),
            with_ci(r.mae, r.ci_lo, r.ci_hi),
            fmt(r.constant_mae),
            fmt(r.noise_mae),
            paper_fmt(r.paper_mae),
        ]
        for r in df.itertuples()
    ]
    return header, rows


def cells_metric_check(df: pd.DataFrame) -> Cells:
    header = [
        "task",
        "dataset",
        "points",
        "instances",
        "original metric",
        "score",
        "corrected metric",
        "score",
        "largest point change",
    ]
    rows = [
        [
            r.task,
            r.dataset,
            fmt(r.n_points),
            fmt(r.n_instances),
            r.metric,
            fmt(r.score, 3),
            r.corrected_metric,
            fmt(r.score_corrected, 3),
            fmt(r.max_abs_change, 3),
        ]
        for r in df.itertuples()
    ]
    return header, rows


def cells_ablation(df: pd.DataFrame) -> Cells:
    subsets = list(SUBSET_LABELS)
    header = ["task", "fit"] + [f"{SUBSET_LABELS[s]} (ours)" for s in subsets]
    header += [f"{SUBSET_LABELS[s]} (paper)" for s in subsets]
    rows = []
    for (task, fit), g in df.groupby(["task", "fit"], sort=False):
        g = g.set_index("subset")
        label = FIT_LABELS.get(fit, fit)
        if "penalty" in g and fit != "without_penalty":
            label += f" ({PENALTY_LABELS.get(g['penalty'].iloc[0], g['penalty'].iloc[0])})"
        row = [task, label]
        row += [with_ci(g.at[s, "mae"], g.at[s, "ci_lo"], g.at[s, "ci_hi"]) for s in subsets]
        row += [paper_fmt(g.at[s, "paper_mae"]) for s in subsets]
        rows.append(row)
    return header, rows


def cells_params(df: pd.DataFrame) -> Cells:
    """One row per parameter, one column per task (value [95% CI])."""
    tasks = task_order(df["task"].unique())
    header = ["parameter", *tasks]
    rows = []
    for name in dict.fromkeys(df["parameter"]):
        row = [name]
        for task in tasks:
            r = df[(df["task"] == task) & (df["parameter"] == name)]
            if r.empty:
                row.append("-")
                continue
            cell = with_ci(*r[["value", "ci_lo", "ci_hi"]].iloc[0])
            note = str(r["note"].iloc[0] or "")
            if note.startswith("fixed"):
                cell += " (fixed)"
            elif note:
                cell += " (at bound)"
            row.append(cell)
        rows.append(row)
    return header, rows


#: The catalog's tables (ctxscale.catalog): name -> entry naming this module's functions.
TABLES = catalog.TABLES


def build_table(name: str, res: Results) -> pd.DataFrame:
    entry = res.prepare("table", name)
    return catalog.resolve(entry.draw)(res)


def table_cells(name: str, df: pd.DataFrame) -> Cells:
    """A table's header and rows as its Markdown shows them."""
    return catalog.resolve(TABLES[name].cells)(df)


def write_table(name: str, df: pd.DataFrame, out: Path) -> list[Path]:
    """Write ``out`` (.csv) and the Markdown version beside it (.md)."""
    out = Path(out)
    if out.suffix != ".csv":
        raise CtxscaleError(f"table output {out} must end in .csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    out.write_text(df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))
    md.write_text(markdown_table(*table_cells(name, df)))
    return [out, md]


def render_table(name: str, res: Results, out: Path) -> tuple[list[Path], float]:
    t0 = time.perf_counter()
    paths = write_table(name, build_table(name, res), out)
    return paths, time.perf_counter() - t0
