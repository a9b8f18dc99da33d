"""The paper's figures (and diagnostics), drawn from the workflow's results files.

Each figure is a function of a :class:`~ctxscale.outputs.results.Results` returning a
matplotlib figure; :mod:`ctxscale.catalog` names each with the inputs it needs, and
:func:`save_figure` writes PDF and PNG byte-identically on every run (no timestamps,
fixed software tag, fixed hash salt and dpi). The law is evaluated only through the
fits' ``predict_points`` (``ctxscale.analysis.fit``), never re-implemented here.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ctxscale import catalog  # noqa: E402
from ctxscale.catalog import task_label, task_order  # noqa: E402
from ctxscale.errors import CtxscaleError  # noqa: E402
from ctxscale.fileio import atomic_write  # noqa: E402
from ctxscale.outputs.results import Results, fit_identifiable, fit_parameters  # noqa: E402

DPI = 200
COLUMN_WIDTH = 3.3  # inches, one column of a two-column paper
FULL_WIDTH = 6.9  # inches, full text width
PALETTE = sns.color_palette("colorblind")
CONTOUR_CMAP = "viridis"
CONTOUR_NCTX = 8192  # the paper draws its contours at n_ctx = 8k
PDF_METADATA = {
    "CreationDate": None,
    "ModDate": None,
    "Creator": "ctxscale",
    "Producer": "ctxscale",
}
PNG_METADATA = {"Software": "ctxscale"}
STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "legend.frameon": False,
    "svg.hashsalt": "ctxscale",
    "pdf.fonttype": 42,
    "savefig.dpi": DPI,
    "figure.dpi": 100,
}
SCORE_LABEL = "score (accuracy / BLEU, 0-1)"
NPMT_LABEL = r"prompt length $n_{pmt}$ (tokens)"
NCTX_LABEL = r"context limit $n_{ctx}$ (tokens)"
C_LABEL = "training compute C = 6ND (FLOPs)"


# -- small helpers ---------------------------------------------------------------------------
def tasks_of(df: pd.DataFrame) -> list[str]:
    """Tasks present in ``df``: the paper's three first, in its order, then any others."""
    return task_order(df["task"])


def size_label(n: float) -> str:
    """Parameter count as the paper says it: 6.48e9 -> '6.5B', 1.35e8 -> '135M'."""
    if n >= 1e9:
        return f"{n / 1e9:.3g}B"
    return f"{n / 1e6:.3g}M"


def ctx_label(n_ctx: float) -> str:
    n = int(round(n_ctx))
    return f"{n // 1024}k" if n % 1024 == 0 else f"{n:,}"


def mae(observed: np.ndarray | pd.Series, predicted: np.ndarray | pd.Series) -> float:
    obs = np.asarray(observed, dtype=float)
    return float(np.mean(np.abs(obs - np.asarray(predicted, dtype=float)))) if obs.size else np.nan


def clusters(df: pd.DataFrame) -> list[float]:
    """Model sizes (N) of the points, by ascending compute: the paper's compute clusters."""
    c_of = df.groupby("N")["C"].median()
    return sorted((float(n) for n in c_of.index), key=lambda n: (c_of[n], n))


def cluster_label(df: pd.DataFrame, n: float) -> str:
    """'llama-2-7b-yarn: N = 6.48B' (family names of the cluster, then its size)."""
    families = sorted(df.loc[df["N"] == n, "family"].unique())
    return f"{', '.join(families)}: N = {size_label(n)}"


def _grid_frame(row: pd.Series, **columns: np.ndarray) -> pd.DataFrame:
    """Rows like ``row`` with some columns replaced by arrays (for evaluating a fit)."""
    n = len(next(iter(columns.values())))
    data = {c: np.repeat(row[c], n) for c in row.index if c not in ("score", "predicted")}
    data.update(columns)
    return pd.DataFrame(data)


def _width(n_panels: int) -> float:
    """Figure width for a row of panels: full text width for three, narrower for fewer."""
    return min(FULL_WIDTH, 1.0 + 2.0 * n_panels) if n_panels < 3 else FULL_WIDTH


def _task_panels(n_rows: int, tasks: list[str], height: float):
    """A figure with one column of panels per task."""
    size = (_width(len(tasks)), height)
    return plt.subplots(n_rows, len(tasks), figsize=size, squeeze=False, constrained_layout=True)


def _log_grid(lo: float, hi: float, n: int = 200) -> np.ndarray:
    return np.geomspace(lo, hi, n)


def _observed_marker(ax, x, y, color, filled=True, label=None, marker="o", **kw):
    ax.scatter(
        x,
        y,
        s=kw.pop("s", 14),
        marker=marker,
        facecolors=color if filled else "none",
        edgecolors=color,
        linewidths=0.8,
        label=label,
        zorder=3,
        **kw,
    )


def _narrow_log_ticks(ax, lo: float, hi: float) -> None:
    """Readable ticks on a log axis spanning far less than a decade (a compute cluster)."""
    ticks = np.geomspace(lo, hi, 3)
    digits = next((d for d in range(3, 9) if len({f"{t:.{d}g}" for t in ticks}) == 3), 9)
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.xaxis.set_major_formatter(ticker.FixedFormatter([f"{t:.{digits}g}" for t in ticks]))


def _sci_label(value: float, _pos: object = None) -> str:
    """5e23 -> '$5\\times10^{23}$', 1e23 -> '$10^{23}$'."""
    exp = int(np.floor(np.log10(value) + 1e-9))
    mant = value / 10**exp
    if abs(mant - 1) < 1e-6:
        return f"$10^{{{exp}}}$"
    return f"${mant:.3g}\\times10^{{{exp}}}$"


def _log_x(ax) -> None:
    """Log x axis with labels that never collide, whatever its span."""
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if hi / lo < 3:
        _narrow_log_ticks(ax, lo * (hi / lo) ** 0.1, hi / (hi / lo) ** 0.1)
    elif hi / lo < 100:
        decades = np.arange(np.floor(np.log10(lo)), np.ceil(np.log10(hi)) + 1)
        ticks = [m * 10**d for d in decades for m in (1, 2, 5) if lo <= m * 10**d <= hi]
        ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_sci_label))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    else:
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def _no_task(res: Results, task: str) -> str:
    present = ", ".join(tasks_of(res.fit_points)) or "none"
    return f"no fitted points of task {task!r} at this scale (tasks: {present})"


def _predictions(res: Results, name: str, why: str = "") -> pd.DataFrame:
    """The ``ood`` or ``technique`` predictions; an error when the file has no rows."""
    df = getattr(res, name)
    if df.empty:
        raise CtxscaleError(f"{res.purpose}: {res.path(name)} has no rows{why}")
    return df


def _empty_guard(df: pd.DataFrame, purpose: str, what: str) -> None:
    if df.empty:
        raise CtxscaleError(f"{purpose}: {what}")


# -- figure 1 ----------------------------------------------------------------------------------
def fig_context_agnostic(res: Results) -> plt.Figure:
    """Context-agnostic vs context-aware fit on the same points.

    Top row: score against prompt length for the fitted model whose prompts run
    furthest past its context limit, with both fitted curves. Bottom row: predicted
    against observed for every fitted point, MAE of each fit in the panel title.
    """
    aware = res.predicted("fit_main")
    agnostic = res.predicted("fit_agnostic")
    _empty_guard(aware, res.purpose, "no fit-role points share a task with the fits")
    tasks = tasks_of(aware)
    fig, axes = _task_panels(2, tasks, 4.6)
    c_aware, c_agn = PALETTE[0], PALETTE[3]
    for j, task in enumerate(tasks):
        pts = aware[aware["task"] == task]
        beyond = (pts["n_pmt"] > pts["n_ctx"]).groupby(pts["model"]).mean()
        model = sorted(beyond.index, key=lambda m: (-beyond[m], m))[0]
        mp = pts[pts["model"] == model].sort_values("n_pmt")
        row = mp.iloc[0]
        # run the curves past the context limit: that is where the two laws part
        hi = max(mp["n_pmt"].max(), 2 * row["n_ctx"]) * 1.3
        grid = _grid_frame(row, n_pmt=_log_grid(mp["n_pmt"].min() / 1.3, hi))
        ax = axes[0, j]
        _observed_marker(ax, mp["n_pmt"], mp["score"], "black", label="observed")
        for name, color, label, ls in (
            ("fit_main", c_aware, "context-aware", "-"),
            ("fit_agnostic", c_agn, "context-agnostic", "--"),
        ):
            curve = res.predicted(name, grid)
            ax.plot(curve["n_pmt"], curve["predicted"], ls, color=color, label=label)
        ax.axvline(row["n_ctx"], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"{task_label(task)}\n{model} (n_ctx = {ctx_label(row['n_ctx'])})")
        ax.set_xlabel(NPMT_LABEL)
        if j == 0:
            ax.set_ylabel(SCORE_LABEL)

        ax = axes[1, j]
        agn = agnostic[agnostic["task"] == task]
        hi = max(pts["score"].max(), pts["predicted"].max(), agn["predicted"].max()) * 1.05
        ax.plot([0, hi], [0, hi], color="grey", lw=0.8, ls=":")
        _observed_marker(ax, pts["score"], pts["predicted"], c_aware, label="context-aware")
        _observed_marker(
            ax,
            agn["score"],
            agn["predicted"],
            c_agn,
            filled=False,
            label="context-agnostic",
            marker="s",
        )
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        # the MAEs in the title: a legend inside would cover points wherever it sits
        ax.set_title(
            f"MAE: context-aware {mae(pts['score'], pts['predicted']):.3f}\n"
            f"context-agnostic {mae(agn['score'], agn['predicted']):.3f}"
        )
        ax.set_xlabel("observed score")
        if j == 0:
            ax.set_ylabel("predicted score")
    handles = [
        Line2D([], [], ls="", marker="o", color="black", ms=4, label="observed"),
        Line2D([], [], color=c_aware, marker="o", ms=4, label="context-aware"),
        Line2D(
            [], [], color=c_agn, ls="--", marker="s", mfc="none", ms=4, label="context-agnostic"
        ),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)
    return fig


# -- figures 2-4 -------------------------------------------------------------------------------
def _closest_ctx(values: np.ndarray, target: float) -> float:
    values = np.unique(values)
    return float(values[np.argmin(np.abs(np.log(values) - np.log(target)))])


def _contour_ctx(cp: pd.DataFrame) -> float:
    """The n_ctx a contour panel shows: the one with the most compute levels (a compute
    ladder spans the x axis), the paper's 128k among equals."""
    levels = cp.groupby("n_ctx")["C"].nunique()
    best = levels[levels == levels.max()].index.to_numpy(dtype=float)
    return _closest_ctx(best, CONTOUR_NCTX)


def fig_contour(res: Results, task: str) -> plt.Figure:
    """Fitted law over (C, n_pmt) at one n_ctx, one panel per model size, points overlaid."""
    pts = res.predicted("fit_main")
    pts = pts[pts["task"] == task]
    _empty_guard(pts, res.purpose, _no_task(res, task))
    sizes = clusters(pts)
    ctx_of = {n: _contour_ctx(pts[pts["N"] == n]) for n in sizes}
    # the surface spans the prompts observed and twice the context limit, where it collapses
    y_lo = pts["n_pmt"].min() / 1.5
    y_hi = max(pts["n_pmt"].max() * 1.5, 2 * max(ctx_of.values()))
    panels = []
    for n in sizes:
        cp = pts[pts["N"] == n]
        n_ctx = ctx_of[n]
        at = cp[cp["n_ctx"] == n_ctx]
        c_lo, c_hi = cp["C"].min(), cp["C"].max()
        pad = max(np.log(c_hi / c_lo) * 0.15, 0.002)
        cs = np.exp(np.linspace(np.log(c_lo) - pad, np.log(c_hi) + pad, 60))
        ns = _log_grid(y_lo, y_hi, 80)
        cc, nn = np.meshgrid(cs, ns)
        row = at.iloc[0]
        grid = _grid_frame(row, C=cc.ravel(), n_pmt=nn.ravel(), n_ctx=np.full(cc.size, n_ctx))
        z = res.predicted("fit_main", grid)["predicted"].to_numpy().reshape(cc.shape)
        panels.append((n, n_ctx, at, cs, ns, z))
    z_all = np.concatenate([p[5].ravel() for p in panels] + [pts["score"].to_numpy()])
    z_lo, z_hi = max(float(z_all.min()), 0.0), min(float(z_all.max()), 1.0)
    if z_hi - z_lo < 1e-3:  # a flat surface still needs a few levels
        z_lo, z_hi = max(z_lo - 0.05, 0.0), min(z_hi + 0.05, 1.0)
    levels = ticker.MaxNLocator(nbins=12).tick_values(z_lo, z_hi)
    norm = matplotlib.colors.BoundaryNorm(levels, plt.get_cmap(CONTOUR_CMAP).N, extend="both")
    width = min(FULL_WIDTH, 0.6 + 2.6 * len(panels))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width, 2.9), squeeze=False, constrained_layout=True
    )
    for ax, (n, n_ctx, at, cs, ns, z) in zip(axes[0], panels, strict=True):
        cf = ax.contourf(cs, ns, z, levels=levels, cmap=CONTOUR_CMAP, norm=norm, extend="both")
        ax.contour(cs, ns, z, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
        ax.scatter(
            at["C"],
            at["n_pmt"],
            c=at["score"],
            cmap=CONTOUR_CMAP,
            norm=norm,
            edgecolors="black",
            linewidths=0.7,
            s=26,
            zorder=3,
        )
        ax.axhline(n_ctx, color="white", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(False)
        _narrow_log_ticks(ax, cs[0], cs[-1])
        ax.set_title(f"{cluster_label(pts, n)}\nn_ctx = {ctx_label(n_ctx)}")
        ax.set_xlabel(C_LABEL)
        ax.set_ylabel(NPMT_LABEL)
    fig.colorbar(cf, ax=axes[0].tolist(), label=SCORE_LABEL)
    sep = ": " if len(panels) > 1 else ":\n"  # one narrow panel: two lines, nothing clipped
    fig.suptitle(f"{task_label(task)}{sep}fitted law (contours) and observed points", fontsize=8)
    handles = [
        Line2D(
            [], [], ls="", marker="o", mfc="white", mec="black", label="observed (colour=score)"
        ),
        Line2D([], [], ls="--", color="grey", label=r"$n_{pmt} = n_{ctx}$"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    return fig


# -- figures 5-7 -------------------------------------------------------------------------------
def fig_extrapolation(res: Results, task: str) -> plt.Figure:
    """Long-context generalisation at the largest n_ctx: fit below the cut-off, held-out above."""
    cutoff = res.holdout_npmt()
    pts = res.predicted("fit_extrapolation")
    pts = pts[pts["task"] == task]
    _empty_guard(pts, res.purpose, _no_task(res, task))
    n_ctx = pts["n_ctx"].max()
    at = pts[pts["n_ctx"] == n_ctx]
    held_all = pts[pts["n_pmt"] >= cutoff]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH + 0.4, 2.8), constrained_layout=True)
    # one curve per model at that n_ctx (a size can have several: a compute ladder)
    models = at.sort_values(["N", "C"], kind="mergesort")["model"].unique()
    several = len(models) > at["N"].nunique()
    for k, model in enumerate(models):
        color = PALETTE[k % len(PALETTE)]
        mp = at[at["model"] == model].sort_values("n_pmt")
        row = mp.iloc[0]
        n = row["N"]
        grid = _grid_frame(
            row, n_pmt=_log_grid(min(mp["n_pmt"].min(), cutoff) / 1.3, mp["n_pmt"].max() * 1.3)
        )
        curve = res.predicted("fit_extrapolation", grid)
        held = mp[mp["n_pmt"] >= cutoff]
        train = mp[mp["n_pmt"] < cutoff]
        name = model if several else cluster_label(at, n)
        label = f"{name}\nheld-out MAE " + (
            f"{mae(held['score'], held['predicted']):.3f} (n={len(held)})" if len(held) else "n/a"
        )
        ax.plot(curve["n_pmt"], curve["predicted"], color=color, label=label)
        _observed_marker(ax, train["n_pmt"], train["score"], color, filled=False)
        _observed_marker(ax, held["n_pmt"], held["score"], color, filled=True)
    ax.axvline(cutoff, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(NPMT_LABEL)
    ax.set_ylabel(SCORE_LABEL)
    all_mae = mae(held_all["score"], held_all["predicted"]) if len(held_all) else np.nan
    ax.set_title(
        f"{task_label(task)}, n_ctx = {ctx_label(n_ctx)}\n"
        f"fit on n_pmt < {cutoff:,.0f}; held-out MAE over all n_ctx {all_mae:.3f}"
    )
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], ls="", marker="o", mfc="none", mec="black", label="fitted on"),
        Line2D([], [], ls="", marker="o", mfc="black", mec="black", label="held out"),
    ]
    # below the axes: inside, wherever it sits, it covers a curve or the points past n_ctx
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    return fig


# -- OOD and technique ---------------------------------------------------------------------
def fig_ood_compute(res: Results) -> plt.Figure:
    """Predicted vs observed for each out-of-distribution family across compute."""
    ood = _predictions(res, "ood", " (no OOD family)")
    fit = res.predicted("fit_main")
    tasks = tasks_of(ood)
    families = sorted(ood["family"].unique())
    fig, axes = _task_panels(1, tasks, 2.9)
    colors = {fam: PALETTE[(k + 1) % len(PALETTE)] for k, fam in enumerate(families)}
    for j, task in enumerate(tasks):
        ax = axes[0, j]
        maes = []
        ref = fit[fit["task"] == task]
        if len(ref):
            ax.scatter(ref["C"], ref["score"], s=8, color="0.6", marker="o", label="fitted on")
            ax.scatter(ref["C"], ref["predicted"], s=14, color="0.35", marker="_")
        for fam in families:
            fp = ood[(ood["task"] == task) & (ood["family"] == fam)]
            if fp.empty:
                continue
            maes.append(f"{fam}: MAE {mae(fp['score'], fp['predicted']):.3f}")
            _observed_marker(ax, fp["C"], fp["score"], colors[fam], label=maes[-1])
            ax.scatter(
                fp["C"], fp["predicted"], s=40, color=colors[fam], marker="_", linewidths=1.5
            )
        _log_x(ax)
        # the MAEs in the title: a legend inside the panel covers points wherever it sits
        ax.set_title("\n".join([task_label(task), *maes]))
        ax.set_xlabel(C_LABEL)
        if j == 0:
            ax.set_ylabel(SCORE_LABEL)
    handles = [Line2D([], [], ls="", marker="o", color="0.6", label="fitted on")]
    handles += [Line2D([], [], ls="", marker="o", color=colors[f], label=f) for f in families]
    handles += [
        Line2D([], [], ls="", marker="o", color="black", label="observed"),
        Line2D([], [], ls="", marker="_", markersize=9, color="black", label="predicted"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    return fig


def _shortener(names) -> Callable[[str], str]:
    """Drop the name prefix (up to a '-') that every name shares: compact in-panel text."""
    prefix = os.path.commonprefix(sorted(set(names)))
    cut = prefix.rfind("-") + 1
    return lambda name: name[cut:] or name


def fig_yarn_vs_pi(res: Results) -> plt.Figure:
    """Both context-extension techniques: observed series and the law's predictions."""
    tech = _predictions(res, "technique")
    fit = res.predicted("fit_main")
    tasks = tasks_of(tech)
    fig, axes = _task_panels(1, tasks, 3.0)
    models = sorted(tech["model"].unique())
    legend: dict[str, Line2D] = {}
    for j, task in enumerate(tasks):
        ax = axes[0, j]
        maes = []
        for k, model in enumerate(models):
            tp = tech[(tech["task"] == task) & (tech["model"] == model)].sort_values("n_pmt")
            if tp.empty:
                continue
            ref = fit[fit["task"] == task]
            yp = ref
            if len(ref):
                n_near = ref["N"].iloc[np.argmin(np.abs(np.log(ref["N"] / tp["N"].iloc[0])))]
                same = ref[ref["N"] == n_near]
                ctx = _closest_ctx(same["n_ctx"].to_numpy(), tp["n_ctx"].iloc[0])
                same = same[same["n_ctx"] == ctx]
                # the YaRN checkpoint of the same size, context and compute (one model)
                c_near = same["C"].iloc[np.argmin(np.abs(np.log(same["C"] / tp["C"].iloc[0])))]
                yp = same[same["C"] == c_near]
                yp = yp[yp["model"] == yp["model"].iloc[0]].sort_values("n_pmt")
            color_t, color_y = PALETTE[(2 * k + 1) % 10], PALETTE[(2 * k) % 10]
            if len(yp):
                yname = yp["model"].iloc[0]
                _observed_marker(ax, yp["n_pmt"], yp["score"], color_y)
                ax.plot(yp["n_pmt"], yp["predicted"], "-", color=color_y)
                legend[yname] = Line2D(
                    [], [], marker="o", color=color_y, ls="-", label=f"{yname} (fitted on)"
                )
                maes.append((yname, mae(yp["score"], yp["predicted"])))
            _observed_marker(ax, tp["n_pmt"], tp["score"], color_t, marker="s")
            ax.plot(tp["n_pmt"], tp["predicted"], "--", color=color_t)
            ax.axvline(tp["n_ctx"].iloc[0], color=color_t, ls=":", lw=0.8)
            legend[model] = Line2D(
                [], [], marker="s", color=color_t, ls="--", label=f"{model} (predicted)"
            )
            maes.append((model, mae(tp["score"], tp["predicted"])))
        ax.set_xscale("log")
        # the MAEs in the title, a YaRN model and its other-technique twin a line: a legend
        # inside the panel covers points wherever it sits
        short = _shortener([name for name, _ in maes])
        cells = [f"{short(name)} {value:.3f}" for name, value in maes]
        pairs = [", ".join(cells[i : i + 2]) for i in range(0, len(cells), 2)]
        ax.set_title("\n".join([task_label(task), "MAE " + pairs[0], *pairs[1:]]))
        ax.set_xlabel(NPMT_LABEL)
        if j == 0:
            ax.set_ylabel(SCORE_LABEL)
    handles = list(legend.values()) + [
        Line2D([], [], ls=":", color="black", lw=0.8, label=r"$n_{ctx}$"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3))
    fig.suptitle("Markers: observed; lines: the law's predictions (YaRN fit)", fontsize=7)
    return fig


# -- diagnostics -------------------------------------------------------------------------------
def fig_residuals(res: Results) -> plt.Figure:
    """Residuals (observed - predicted, main fit) against n_pmt and n_ctx, per task."""
    pts = res.predicted("fit_main")
    _empty_guard(pts, res.purpose, "no fit-role points share a task with the main fit")
    pts = pts.assign(residual=pts["score"] - pts["predicted"])
    tasks = tasks_of(pts)
    sizes = clusters(pts)
    fig, axes = _task_panels(2, tasks, 4.4)
    for j, task in enumerate(tasks):
        tp = pts[pts["task"] == task]
        for row, xcol, xlabel in ((0, "n_pmt", NPMT_LABEL), (1, "n_ctx", NCTX_LABEL)):
            ax = axes[row, j]
            ax.axhline(0, color="grey", lw=0.8)
            for k, n in enumerate(sizes):
                cp = tp[tp["N"] == n]
                inside = cp[cp["n_pmt"] <= cp["n_ctx"]]
                beyond = cp[cp["n_pmt"] > cp["n_ctx"]]
                color = PALETTE[k % len(PALETTE)]
                jitter = 1.0 if row == 0 else 1.0 + 0.04 * (k - (len(sizes) - 1) / 2)
                _observed_marker(
                    ax, inside[xcol] * jitter, inside["residual"], color, label=cluster_label(tp, n)
                )
                _observed_marker(ax, beyond[xcol] * jitter, beyond["residual"], color, False)
            ax.set_xscale("log", base=2 if row == 1 else 10)
            if row == 1:
                ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: ctx_label(v)))
            ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel("residual (observed - predicted)")
            if row == 0:
                ax.set_title(f"{task_label(task)}: MAE {mae(tp['score'], tp['predicted']):.3f}")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles += [
        Line2D(
            [], [], ls="", marker="o", mfc="black", mec="black", label=r"$n_{pmt} \leq n_{ctx}$"
        ),
        Line2D([], [], ls="", marker="o", mfc="none", mec="black", label=r"$n_{pmt} > n_{ctx}$"),
    ]
    ncols = len(handles) if len(tasks) >= 3 else 2
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols)
    return fig


PARAM_PANELS = (
    ("params", "A", "$A$ (at $C = C_c$)", True),
    ("params", "alpha", r"$\alpha$", False),
    ("identifiable", "log10_A_C_c", r"$\log_{10}(A\,C_c^{-\alpha})$", False),
    ("params", "B", r"$B$ (at $n_{pmt} = n_{pmt,c}$)", True),
    ("params", "beta", r"$\beta$", False),
    ("identifiable", "log10_B_n_pmt_c", r"$\log_{10}(B\,n_{pmt,c}^{-\beta})$", False),
)


def fig_params(res: Results) -> plt.Figure:
    """Fitted parameters and identifiable combinations per task with bootstrap CIs."""
    fit = res.fit("fit_main")
    tables = {"params": fit_parameters(fit), "identifiable": fit_identifiable(fit)}
    _empty_guard(tables["params"], res.purpose, f"{res.path('fit_main')} records no parameters")
    tasks = tasks_of(tables["params"])
    fig, axes = plt.subplots(2, 3, figsize=(FULL_WIDTH, 3.9), constrained_layout=True)
    x = np.arange(len(tasks))
    for ax, (block, name, label, log) in zip(axes.ravel(), PARAM_PANELS, strict=True):
        df = tables[block]
        pp = df[df["parameter"] == name].set_index("task").reindex(tasks)
        vals = pp["value"].to_numpy(dtype=float)
        lo = pp["lo"].to_numpy(dtype=float)
        hi = pp["hi"].to_numpy(dtype=float)
        err = np.vstack([np.nan_to_num(vals - lo), np.nan_to_num(hi - vals)])
        ax.errorbar(x, vals, yerr=np.clip(err, 0, None), fmt="o", color=PALETTE[0], capsize=3)
        if log and np.all(vals[~np.isnan(vals)] > 0):
            ax.set_yscale("log")
        ax.set_xticks(x, [t.replace("_", "\n") for t in tasks])
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.set_ylabel(label)
    fig.suptitle(
        "Main fit per task; bars: bootstrap CI where recorded. "
        r"$C_c$, $n_{pmt,c}$ are fixed at the data's reference scales",
        fontsize=8,
    )
    return fig


# -- drawing, saving ---------------------------------------------------------------------------
#: The catalog's figures (ctxscale.catalog): name -> entry naming this module's drawing function.
FIGURES = catalog.FIGURES


def draw_figure(name: str, res: Results) -> plt.Figure:
    """Draw figure ``name`` (checking its inputs first) inside the fixed style."""
    entry = res.prepare("figure", name)
    draw = catalog.resolve(entry.draw)
    with plt.rc_context(STYLE):
        return draw(res) if entry.task is None else draw(res, entry.task)


def figure_bytes(fig: plt.Figure, fmt: str) -> bytes:
    """The figure encoded as PDF or PNG, with no timestamp or random id inside."""
    buf = io.BytesIO()
    metadata = PDF_METADATA if fmt == "pdf" else PNG_METADATA
    with plt.rc_context(STYLE):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
    return buf.getvalue()


def save_figure(fig: plt.Figure, out: Path) -> list[Path]:
    """Write ``out`` (.pdf or .png) and its sibling of the other format; returns both paths."""
    out = Path(out)
    if out.suffix not in (".pdf", ".png"):
        raise CtxscaleError(f"figure output {out} must end in .pdf or .png")
    written = []
    # PNG first: the report renders PNGs of fresh figures, and a PDF save before would
    # leave a layout pass behind that shifts the PNG by a pixel
    for fmt in ("png", "pdf"):
        written.append(atomic_write(out.with_suffix(f".{fmt}"), figure_bytes(fig, fmt)))
    return sorted(written, key=lambda p: p.suffix != ".pdf")


def render_figure(name: str, res: Results, out: Path) -> tuple[list[Path], float]:
    """Draw and save one figure; returns the paths and the seconds it took."""
    t0 = time.perf_counter()
    fig = draw_figure(name, res)
    try:
        paths = save_figure(fig, out)
    finally:
        plt.close(fig)
    return paths, time.perf_counter() - t0
