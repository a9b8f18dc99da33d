"""Figures, tables and the report, rendered from a synthetic results set."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_results import HOLDOUT, write_results  # noqa: E402
from test_oracles_law import paper_law  # noqa: E402

from ctxscale import catalog  # noqa: E402
from ctxscale.cli import main  # noqa: E402
from ctxscale.errors import CtxscaleError  # noqa: E402
from ctxscale.outputs import render  # noqa: E402
from ctxscale.outputs.figures import FIGURES, draw_figure, render_figure, save_figure  # noqa: E402
from ctxscale.outputs.report import write_report  # noqa: E402
from ctxscale.outputs.results import Inputs, Results, option_flag  # noqa: E402
from ctxscale.outputs.tables import TABLES, build_table, paper_results, render_table  # noqa: E402

TESTS = Path(__file__).parent
TASKS_ALL = ["arithmetic", "common_sense", "translation"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    return write_results(tmp_path_factory.mktemp("results"))


@pytest.fixture()
def res(paths) -> Results:
    return Results(Inputs(**paths), "test")


class Drawn:
    """One figure as this module's tests see it, drawn once: read-back tests read the open
    figure; ``written`` saves it as PDF and PNG the first time it is asked for (before any
    other layout pass, as render_figure saves a fresh drawing, so the bytes are a fresh
    rendering's); ``problems`` is the readability check, made once, after that save."""

    def __init__(self, name: str, res: Results, out: Path) -> None:
        t0 = time.perf_counter()
        self.fig = draw_figure(name, res)
        self.seconds = time.perf_counter() - t0  # drawing and saving, as render_figure times
        self.out = out / f"{name}.pdf"  # the path asked for, as render_figure's `out`
        self._written: list[Path] | None = None
        self._problems: list[str] | None = None

    @property
    def written(self) -> list[Path]:
        if self._written is None:
            t0 = time.perf_counter()
            self._written = save_figure(self.fig, self.out)
            self.seconds += time.perf_counter() - t0
        return self._written

    @property
    def problems(self) -> list[str]:
        if self._problems is None:
            _ = self.written
            self._problems = _readability_problems(self.fig)
        return self._problems


@pytest.fixture(scope="module")
def drawn(paths, tmp_path_factory):
    """``drawn(name)``: each figure drawn once per module (and saved and checked at most
    once); the render, readability and read-back tests all look at that one drawing, and
    none of them changes what the others read."""
    import matplotlib.pyplot as plt

    out = tmp_path_factory.mktemp("figures")
    res = Results(Inputs(**paths), "test")
    cache: dict[str, Drawn] = {}

    def get(name: str) -> Drawn:
        if name not in cache:
            cache[name] = Drawn(name, res, out)
        return cache[name]

    yield get
    for entry in cache.values():
        plt.close(entry.fig)


def _args(paths: dict[str, Path], *names: str) -> list[str]:
    out = []
    for name in names:
        out += [option_flag(name), str(paths[name])]
    return out


def test_cli_names_match_registries():
    assert tuple(FIGURES) == render.FIGURE_NAMES
    assert tuple(TABLES) == render.TABLE_NAMES


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_renders_pdf_and_png(name, drawn):
    written, seconds = drawn(name).written, drawn(name).seconds
    pdf, png = drawn(name).out, drawn(name).out.with_suffix(".png")
    assert written == [pdf, png]
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert b"CreationDate" not in pdf.read_bytes()
    assert seconds < 30


def _drawn_tick_labels(axis) -> list:
    """The tick labels matplotlib draws: non-empty, of ticks inside the view interval."""
    lo, hi = sorted(axis.get_view_interval())
    pad = 1e-9 * max(abs(lo), abs(hi), 1.0)
    out = []
    for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
        if not lo - pad <= tick.get_loc() <= hi + pad:
            continue
        out += [
            lab
            for lab in (tick.label1, tick.label2)
            if lab.get_visible() and lab.get_text().strip()
        ]
    return out


def _readability_problems(fig) -> list[str]:
    """What a reader would trip over: text leaving the canvas, overlapping tick labels on an
    axis, a numeric axis (with ticks) that has fewer than two labelled ones."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    tick_texts = {
        id(lab)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]
        for lab in (tick.label1, tick.label2)
    }
    shown = [t for t in fig.findobj(Text) if id(t) not in tick_texts]
    for ax in fig.axes:
        if ax.axison:
            shown += [lab for axis in (ax.xaxis, ax.yaxis) for lab in _drawn_tick_labels(axis)]
    problems = []
    for t in shown:
        if not t.get_visible() or not t.get_text().strip():
            continue
        b = t.get_window_extent(renderer)
        if b.x0 < -1 or b.y0 < -1 or b.x1 > W + 1 or b.y1 > H + 1:
            problems.append(f"text {t.get_text()!r} leaves the canvas")
    for ax in fig.axes:
        if not ax.axison:
            continue
        for axis in (ax.xaxis, ax.yaxis):
            labels = _drawn_tick_labels(axis)
            boxes = [lab.get_window_extent(renderer) for lab in labels]
            name = f"{ax.get_label() or ax.get_title() or 'axes'} {axis.axis_name}"
            numeric = axis.get_scale() in ("linear", "log") and len(axis.get_ticklocs()) > 0
            if axis.get_visible() and numeric and len(labels) < 2:
                problems.append(f"{name}: {len(labels)} labelled tick(s)")
            for i, a in enumerate(boxes):
                if any(a.overlaps(b) for b in boxes[i + 1 :]):
                    problems.append(f"{name}: tick labels overlap")
    return problems


def test_readability_check_finds_each_defect():
    """The check itself: a clipped title, crowded tick labels and a one-tick axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    try:
        ax.set_title("a title far too long for a figure two inches wide, cut at both ends")
        ax.set_xticks(range(40), [f"label {i}" for i in range(40)])
        ax.set_yticks([0.5])
        found = " | ".join(_readability_problems(fig))
    finally:
        plt.close(fig)
    assert "leaves the canvas" in found
    assert "x: tick labels overlap" in found
    assert "y: 1 labelled tick(s)" in found


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_is_readable(name, drawn):
    assert drawn(name).problems == []


def test_figure_labels_axes_and_uses_log_scales(drawn):
    fig = drawn("fig2_contour_arithmetic").fig
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    panels = [ax for ax in axes if ax.get_xlabel().startswith("training compute")]
    assert len(panels) == 2  # one panel per model size (7B, 13B)
    for ax in panels:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert "(tokens)" in ax.get_ylabel() and "(FLOPs)" in ax.get_xlabel()
        assert "n_ctx = 8k" in ax.get_title()


def test_rerender_is_byte_identical(paths, drawn, tmp_path):
    """A second rendering, by render_figure from a fresh Results, repeats the module's
    first one byte for byte."""
    for name in ("fig3_contour_common_sense",):
        first = drawn(name).written
        second, seconds = render_figure(name, Results(Inputs(**paths)), tmp_path / f"{name}.pdf")
        assert second == [tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"] and seconds < 30
        for a, b in zip(first, second, strict=True):
            assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.slow
def test_rerender_in_fresh_processes_is_byte_identical(paths, tmp_path):
    """Separate interpreters (different hash seeds, fresh font caches) give the same bytes."""
    code = "import sys; from ctxscale.cli import main; sys.exit(main(sys.argv[2:]))"
    outs = []
    for k, seed in enumerate(("1", "2")):
        out = tmp_path / str(k) / "fig5_extrapolation_arithmetic.pdf"
        cmd = [sys.executable, "-c", code, str(TESTS), "figure", out.stem, "--out", str(out)]
        cmd += _args(paths, "points", "fit_extrapolation", "config")
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        env["PYTHONPATH"] = str(TESTS.parent / "src")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    for suffix in (".pdf", ".png"):
        assert outs[0].with_suffix(suffix).read_bytes() == outs[1].with_suffix(suffix).read_bytes()


def test_pdf_and_png_have_no_timestamps(drawn):
    pdf, png = (path.read_bytes() for path in drawn("fig5_extrapolation_arithmetic").written)
    assert b"CreationDate" not in pdf and b"ModDate" not in pdf
    assert b"Matplotlib" not in pdf and b"matplotlib" not in png


@pytest.mark.parametrize("k", range(3))
def test_extrapolation_curves_are_the_fitted_law(k, drawn, paths):
    """Figures 5-7 read back: each drawn curve equals the extrapolation fit's law, written
    out in the test from the paper's formula, for exactly one model at the figure's n_ctx."""
    task = TASKS_ALL[k]
    fit = json.loads(paths["fit_extrapolation"].read_text())
    p, width = fit["tasks"][task]["params"], fit["settings"]["penalty_width"]
    points = pd.read_csv(paths["points"])
    at = points[(points["role"] == "fit") & (points["task"] == task)]
    n_ctx = at["n_ctx"].max()
    computes = sorted(at.loc[at["n_ctx"] == n_ctx, "C"].unique())
    fig = drawn(f"fig{5 + k}_extrapolation_{task}").fig
    curves = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    curves = [ln for ln in curves if len(ln.get_xdata()) > 10]
    assert len(curves) == len(computes) > 1
    for line in curves:
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        law = {
            C: [
                paper_law(C, n, n_ctx, p["A"], p["C_c"], p["alpha"], p["B"], p["n_pmt_c"],
                          p["beta"], width)
                for n in x
            ]
            for C in computes
        }  # fmt: skip
        assert [C for C in computes if np.allclose(y, law[C], rtol=1e-9, atol=1e-12)] != []
        assert sum(np.allclose(y, law[C], rtol=1e-9, atol=1e-12) for C in computes) == 1


def test_figure_1_curves_are_the_two_fitted_laws(drawn, paths):
    """Figure 1 read back: in each task's top panel the solid curve is the main fit's law and
    the dashed one the context-agnostic fit's compute term, both written out in the test,
    at the compute and n_ctx of the model the panel's title names."""
    main_fit = json.loads(paths["fit_main"].read_text())
    agnostic = json.loads(paths["fit_agnostic"].read_text())
    width = main_fit["settings"]["penalty_width"]
    points = pd.read_csv(paths["points"])
    fig = drawn("fig1_context_agnostic").fig
    panels = [ax for ax in fig.axes if ax.get_xscale() == "log"]
    assert len(panels) == len(TASKS_ALL)
    for ax, task in zip(panels, TASKS_ALL, strict=True):
        model = ax.get_title().splitlines()[1].split(" (n_ctx")[0]
        row = points[(points["model"] == model) & (points["task"] == task)].iloc[0]
        C, n_ctx = row["C"], row["n_ctx"]
        solid, dashed = (
            next(ln for ln in ax.get_lines() if ln.get_linestyle() == style)
            for style in ("-", "--")
        )
        p = main_fit["tasks"][task]["params"]
        x = np.asarray(solid.get_xdata())
        want = [
            paper_law(C, n, n_ctx, p["A"], p["C_c"], p["alpha"], p["B"], p["n_pmt_c"],
                      p["beta"], width)
            for n in x
        ]  # fmt: skip
        assert np.allclose(solid.get_ydata(), want, rtol=1e-9, atol=1e-12)
        q = agnostic["tasks"][task]["params"]
        flat = 1.0 - math.exp(-q["A"] * (C / q["C_c"]) ** q["alpha"])
        assert np.allclose(dashed.get_ydata(), flat, rtol=1e-9, atol=1e-12)


# -- figures read back: what a reader sees against the paper's formula and the input tables --
# Each test below draws a figure, reads its artists (iso-lines, scatter offsets and colours,
# line data, tick labels) and compares them with values the test computes itself: the law
# typed from the paper (test_oracles_law.paper_law) with the fit file's parameters, and the
# input tables as written. No ctxscale law, fit or prediction code is used on the test side.
@pytest.fixture(scope="module")
def inputs(paths) -> dict:
    """The input files as the tests read them: tables and fit files."""
    return {
        **{k: pd.read_csv(paths[k]) for k in ("points", "ood", "technique")},
        **{k: json.loads(paths[k].read_text()) for k in ("fit_main", "fit_agnostic")},
    }


def _law_of(fit: dict, task: str):
    """``f(C, n_pmt, n_ctx)``: the fit's law for ``task`` typed from the paper, with the fit
    file's six parameters and penalty width."""
    settings = fit["settings"]
    assert (settings["law"], settings["penalty"]) == ("context_aware", "log_sigmoid")
    p, width = fit["tasks"][task]["params"], settings["penalty_width"]

    def law(C, n_pmt, n_ctx):
        return paper_law(C, n_pmt, n_ctx, p["A"], p["C_c"], p["alpha"], p["B"], p["n_pmt_c"],
                         p["beta"], width)  # fmt: skip

    return law


def _law_at(law, rows: pd.DataFrame) -> np.ndarray:
    """The law at each row's C, n_pmt, n_ctx, in row order."""
    return np.array([law(r.C, r.n_pmt, r.n_ctx) for r in rows.itertuples()])


def _assert_points(coll, x, y) -> None:
    """A scatter draws exactly the points (x, y), in any order."""
    got = np.asarray(coll.get_offsets(), dtype=float)
    want = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
    assert got.shape == want.shape

    def order(a):
        return a[np.lexsort((a[:, 1], a[:, 0]))]

    np.testing.assert_allclose(order(got), order(want), rtol=1e-9, atol=1e-12)


def _assert_all_shown(ax) -> None:
    """Every scatter point lies inside the panel's view (none cut off by the limits)."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            xy = np.asarray(coll.get_offsets(), dtype=float)
            assert ((xy[:, 0] >= x0) & (xy[:, 0] <= x1)).all(), ax.get_title()
            assert ((xy[:, 1] >= y0) & (xy[:, 1] <= y1)).all(), ax.get_title()


def _read_label(text: str) -> tuple[float, float]:
    """A tick label as a reader reads it, and how far from its tick it may be (half a unit of
    its last printed digit): '$5\\times10^{23}$', '$\\mathdefault{10^{2}}$', '7.77e+22',
    '-0.02' (with a Unicode minus), '8k' (8192 tokens)."""
    s = text.replace("$", "").replace(r"\mathdefault", "").replace("{", "").replace("}", "")
    s = s.replace("\N{MINUS SIGN}", "-").replace(",", "").strip()
    if s.endswith("k"):
        return float(s[:-1]) * 1024, 0.0
    power = "^" in s
    if power:
        mant, _, tail = s.rpartition(r"\times")
        base, _, exp = tail.partition("^")
        assert base == "10", text
        s = f"{mant or 1}e{exp}"
    value = float(s)
    digits = len(s.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")) or 1
    digits = max(digits, 3) if power else digits  # '10^{23}' is 1.00e23
    e = math.floor(math.log10(abs(value))) if value else 0
    return value, 0.5 * 10.0 ** (e - digits + 1)


def _assert_ticks_read_true(axis, at_least: int = 2) -> list[float]:
    """Each labelled major tick in view reads its own position; returns the values read."""
    locs = list(axis.get_majorticklocs())
    texts = axis.get_major_formatter().format_ticks(locs)
    lo, hi = sorted(axis.get_view_interval())
    pad = 1e-9 * max(abs(lo), abs(hi))
    read = []
    for loc, text in zip(locs, texts, strict=True):
        if text.strip() and lo - pad <= loc <= hi + pad:
            value, tol = _read_label(text)
            assert abs(value - loc) <= tol + 1e-9 * abs(loc), (text, loc)
            read.append(value)
    assert len(read) >= at_least, [t for t in texts if t.strip()]
    return read


def _is_bar_marker(coll) -> bool:
    """The scatter's marker is a horizontal bar ('_'): its path has no height."""
    v = coll.get_paths()[0].vertices
    return bool(np.ptp(v[:, 1]) < 1e-9 < np.ptp(v[:, 0]))


def _edge_crossing(xs: np.ndarray, ys: np.ndarray, x: float, y: float):
    """The grid edge a contour vertex lies on: its two end nodes and the vertex's fraction
    along it (None when the vertex is on no edge of the grid)."""
    i = int(np.argmin(np.abs(np.log(xs / x))))
    j = int(np.argmin(np.abs(np.log(ys / y))))
    if math.isclose(ys[j], y, rel_tol=1e-12):  # on a row: between two compute nodes
        i0 = int(np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2))
        a, b = (xs[i0], ys[j]), (xs[i0 + 1], ys[j])
        return a, b, (x - a[0]) / (b[0] - a[0])
    if math.isclose(xs[i], x, rel_tol=1e-12):  # on a column: between two n_pmt nodes
        j0 = int(np.clip(np.searchsorted(ys, y) - 1, 0, len(ys) - 2))
        a, b = (xs[i], ys[j0]), (xs[i], ys[j0 + 1])
        return a, b, (y - a[1]) / (b[1] - a[1])
    return None


@pytest.mark.parametrize("k", range(3))
def test_contour_figure_draws_the_fitted_law_and_the_observed_points(k, drawn, inputs):
    """Figures 2-4 read back, one panel per model size (its family in the title) at n_ctx = 8k:

    - every vertex of every iso-line lies where the main fit's law, typed from the paper at
      the panel's n_ctx, equals the line's level: contouring interpolates linearly between
      two nodes of the drawing grid (60 x 80 nodes, log-spaced between the panel's limits),
      and the test redoes that interpolation from the law at both nodes;
    - the levels are evenly spaced and cover the law over the panels and the observed scores;
    - the dots are the table's points of that size at n_ctx = 8k, coloured by their observed
      score on the levels' colour scale; the dashed line is n_pmt = n_ctx;
    - the axes span the prompts observed and twice n_ctx, show every dot, and their tick
      labels read C and n_pmt at the ticks' positions.
    """
    from matplotlib.contour import ContourSet

    task = TASKS_ALL[k]
    law = _law_of(inputs["fit_main"], task)
    pts = inputs["points"]
    pts = pts[(pts["role"] == "fit") & (pts["task"] == task)]
    n_ctx = 8192.0
    fig = drawn(f"fig{2 + k}_contour_{task}").fig
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    (cbar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert "score" in cbar.get_ylabel()
    sizes = sorted(pts["N"].unique())
    assert len(panels) == len(sizes) == 2
    levels, z_all = None, [pts["score"].to_numpy()]
    for ax, N in zip(panels, sizes, strict=True):
        cp = pts[pts["N"] == N]
        (family,) = cp["family"].unique()
        assert ax.get_title() == f"{family}: N = {N / 1e9:.3g}B\nn_ctx = 8k"
        (C,) = cp["C"].unique()
        filled, lines = (c for c in ax.collections if isinstance(c, ContourSet))
        assert filled.filled and not lines.filled
        levels = filled.levels if levels is None else levels
        np.testing.assert_array_equal(filled.levels, levels)  # one scale for all panels
        np.testing.assert_array_equal(lines.levels, levels)
        # the drawing grid, from the panel's limits
        (c0, c1), (n0, n1) = ax.get_xlim(), ax.get_ylim()
        assert c0 < C < c1 and n0 < cp["n_pmt"].min() and n1 >= 2 * n_ctx
        xs = np.exp(np.linspace(np.log(c0), np.log(c1), 60))
        ys = np.geomspace(n0, n1, 80)
        # the law rises with C (alpha > 0): its extremes on the grid lie on the end columns
        assert inputs["fit_main"]["tasks"][task]["params"]["alpha"] > 0
        z_all.append(np.array([law(c, n, n_ctx) for c in xs[[0, -1]] for n in ys]))
        n_vertices = 0
        for level, path in zip(lines.levels, lines.get_paths(), strict=True):
            for x, y in path.vertices:
                edge = _edge_crossing(xs, ys, x, y)
                assert edge is not None, f"iso-line vertex ({x:g}, {y:g}) off the grid"
                a, b, t = edge
                assert -1e-9 <= t <= 1 + 1e-9
                za, zb = law(*a, n_ctx), law(*b, n_ctx)
                assert za + t * (zb - za) == pytest.approx(level, rel=1e-9, abs=1e-12)
                n_vertices += 1
        assert n_vertices > 100
        # the observed points of that size at n_ctx = 8k, coloured by score
        (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
        at = cp[cp["n_ctx"] == n_ctx]
        _assert_points(dots, at["C"], at["n_pmt"])
        order = np.argsort(np.asarray(dots.get_offsets())[:, 1], kind="stable")
        want = at.sort_values("n_pmt", kind="stable")["score"].to_numpy()
        np.testing.assert_allclose(np.asarray(dots.get_array())[order], want, rtol=1e-12)
        np.testing.assert_array_equal(dots.norm.boundaries, levels)
        assert dots.cmap.name == filled.cmap.name
        (dashed,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert list(dashed.get_ydata()) == [n_ctx, n_ctx]
        _assert_all_shown(ax)
        assert "compute C" in ax.get_xlabel() and "(FLOPs)" in ax.get_xlabel()
        assert "prompt length" in ax.get_ylabel() and "(tokens)" in ax.get_ylabel()
        read = _assert_ticks_read_true(ax.xaxis, at_least=3)
        assert min(read) <= C <= max(read)
        _assert_ticks_read_true(ax.yaxis)
    z = np.concatenate(z_all)
    lo, hi = max(z.min(), 0.0), min(z.max(), 1.0)
    step = np.diff(levels)
    np.testing.assert_allclose(step, step[0], rtol=1e-9)
    assert levels[0] <= lo + 1e-12 and levels[-1] >= hi - 1e-12
    assert 0 < step[0] <= (hi - lo) / 5  # at least five bands to read


def test_ood_figure_draws_observed_scores_and_the_fitted_law(drawn, inputs):
    """ood_compute read back, per task panel: each out-of-distribution family's dots are its
    observed (C, score) from the predictions file the figure reads, and its bars (same
    colour, '_' marker) the main fit's law typed from the paper at each point's C, n_pmt,
    n_ctx; the panel's title reads its MAE; the grey 'fitted on' dots and bars are the fitted
    families' scores and the law at them; every point is in view and the C tick labels read
    their positions."""
    pts = inputs["points"]
    fig = drawn("ood_compute").fig
    panels = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title().splitlines() for ax in panels]
    assert [t[0] for t in titles] == [catalog.task_label(t) for t in TASKS_ALL]
    for ax, task in zip(panels, TASKS_ALL, strict=True):
        law = _law_of(inputs["fit_main"], task)
        colls = ax.collections
        at = {c.get_label(): i for i, c in enumerate(colls) if not c.get_label().startswith("_")}
        ref = pts[(pts["role"] == "fit") & (pts["task"] == task)]
        i = at["fitted on"]
        _assert_points(colls[i], ref["C"], ref["score"])
        _assert_points(colls[i + 1], ref["C"], _law_at(law, ref))
        assert _is_bar_marker(colls[i + 1]) and not _is_bar_marker(colls[i])
        ood = inputs["ood"][inputs["ood"]["task"] == task]
        families = sorted(ood["family"].unique())
        assert families == sorted(pts.loc[pts["role"] == "ood", "family"].unique())
        assert len(families) == 2 and len(at) == 1 + len(families)
        for fam in families:
            fp = ood[ood["family"] == fam]
            pred = _law_at(law, fp)
            (label,) = [name for name in at if name.startswith(f"{fam}: MAE ")]
            dots, bars = colls[at[label]], colls[at[label] + 1]
            _assert_points(dots, fp["C"], fp["score"])
            _assert_points(bars, fp["C"], pred)
            assert _is_bar_marker(bars) and not _is_bar_marker(dots)
            np.testing.assert_allclose(dots.get_edgecolor()[0], bars.get_edgecolor()[0])
            mae = np.mean(np.abs(fp["score"].to_numpy() - pred))
            assert float(label.split("MAE ")[1]) == pytest.approx(mae, abs=5e-4 + 1e-9)
            assert label in ax.get_title().splitlines()[1:]  # the panel's title reads it
        _assert_all_shown(ax)
        assert "(FLOPs)" in ax.get_xlabel() and ax.get_xscale() == "log"
        _assert_ticks_read_true(ax.xaxis)
        _assert_ticks_read_true(ax.yaxis)
    assert "score" in panels[0].get_ylabel()


def test_technique_figure_pairs_pi_with_its_yarn_twin_under_the_law(drawn, inputs):
    """yarn_vs_pi read back. The test picks the technique model (PI) from its predictions
    file and, from the points table, the YaRN model of the same N and n_ctx. Per task panel:
    the squares are the PI model's observed (n_pmt, score) and the dashed line runs through
    its n_pmt at the main fit's law typed from the paper at its own C and n_ctx; the dots and
    the solid line are the same for the YaRN model; the dotted line marks n_ctx; the panel's
    title reads each model's MAE; the figure legend names both models."""
    pts = inputs["points"]
    tech = inputs["technique"]
    ((pi, N, n_ctx),) = tech[["model", "N", "n_ctx"]].drop_duplicates().itertuples(index=False)
    same_n = np.isclose(pts["N"], N, rtol=1e-5)  # the points table keeps 6 digits
    twin = pts[(pts["role"] == "fit") & same_n & (pts["n_ctx"] == n_ctx)]
    (yarn,) = twin["model"].unique()
    fig = drawn("yarn_vs_pi").fig
    panels = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title().splitlines() for ax in panels]
    assert [t[0] for t in titles] == [catalog.task_label(t) for t in TASKS_ALL]
    for ax, task in zip(panels, TASKS_ALL, strict=True):
        law = _law_of(inputs["fit_main"], task)
        maes = {}
        for model, rows, style, square in ((yarn, twin, "-", False), (pi, tech, "--", True)):
            tp = rows[rows["task"] == task].sort_values("n_pmt")
            pred = _law_at(law, tp)
            (line,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == style]
            np.testing.assert_array_equal(line.get_xdata(), tp["n_pmt"])
            np.testing.assert_allclose(line.get_ydata(), pred, rtol=1e-9, atol=1e-12)
            colour = matplotlib.colors.to_rgba(line.get_color())
            (marks,) = [c for c in ax.collections if np.allclose(c.get_edgecolor()[0], colour)]
            _assert_points(marks, tp["n_pmt"], tp["score"])
            corners = np.abs(marks.get_paths()[0].vertices)
            assert square == bool(np.allclose(corners, corners.max())), model
            maes[model] = np.mean(np.abs(tp["score"].to_numpy() - pred))
        (dotted,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert list(dotted.get_xdata()) == [n_ctx, n_ctx]
        (line,) = ax.get_title().splitlines()[1:]  # one YaRN model and its PI twin
        cells = line.removeprefix("MAE ").split(", ")
        assert len(cells) == 2
        for model, value in maes.items():
            (text,) = [c for c in cells if model.endswith(c.rsplit(" ", 1)[0])]
            assert float(text.rsplit(" ", 1)[1]) == pytest.approx(value, abs=5e-4 + 1e-9)
        _assert_all_shown(ax)
        _assert_ticks_read_true(ax.xaxis)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"{yarn} (fitted on)" in names and f"{pi} (predicted)" in names


def test_residual_figure_draws_observed_minus_the_fitted_law(drawn, inputs):
    """residuals read back, per task column: in the top panel each model size's filled dots
    are its points with n_pmt <= n_ctx at (n_pmt, score - law), the law typed from the paper,
    and its open dots those beyond n_ctx; the bottom panel shows the same residuals at each
    point's n_ctx (shifted by at most 5% so that sizes sit side by side), with tick labels
    that read context lengths (4k ... 128k); the title reads the mean |residual|."""
    pts = inputs["points"]
    fig = drawn("residuals").fig
    assert len(fig.axes) == 2 * len(TASKS_ALL)
    for j, task in enumerate(TASKS_ALL):
        tp = pts[(pts["role"] == "fit") & (pts["task"] == task)]
        tp = tp.assign(r=tp["score"] - _law_at(_law_of(inputs["fit_main"], task), tp))
        top, bottom = fig.axes[j], fig.axes[len(TASKS_ALL) + j]
        title, _, value = top.get_title().rpartition(": MAE ")
        assert title == catalog.task_label(task)
        assert float(value) == pytest.approx(tp["r"].abs().mean(), abs=5e-4 + 1e-9)
        for ax in (top, bottom):
            colls = ax.collections
            for N in sorted(tp["N"].unique()):
                cp = tp[tp["N"] == N]
                (family,) = cp["family"].unique()
                (i,) = [i for i, c in enumerate(colls) if c.get_label().startswith(family)]
                inside = cp["n_pmt"] <= cp["n_ctx"]
                for coll, sel, filled in (
                    (colls[i], inside, True),
                    (colls[i + 1], ~inside, False),
                ):
                    want = cp[sel]
                    face = np.asarray(coll.get_facecolor())
                    assert filled == bool(len(face) and face[0][3] > 0), (task, family)
                    if ax is top:
                        _assert_points(coll, want["n_pmt"], want["r"])
                        continue
                    xy = np.asarray(coll.get_offsets(), dtype=float)
                    got, want = xy[np.argsort(xy[:, 1])], want.sort_values("r")
                    np.testing.assert_allclose(got[:, 1], want["r"], rtol=1e-9, atol=1e-12)
                    shift = got[:, 0] / want["n_ctx"].to_numpy()
                    assert np.allclose(shift, shift[0]) and 0.95 <= shift[0] <= 1.05
            _assert_all_shown(ax)
        _assert_ticks_read_true(top.xaxis)
        read = _assert_ticks_read_true(bottom.xaxis)
        assert set(read) <= set(tp["n_ctx"])


PARAM_LABELS = {  # a y label's leading symbol -> what the reader takes the panel to show
    "$A$": "A",
    r"$\alpha$": "alpha",
    "$B$": "B",
    r"$\beta$": "beta",
    r"$\log_{10}(A\,C_c^{-\alpha})$": "log10_A_C_c",
    r"$\log_{10}(B\,n_{pmt,c}^{-\beta})$": "log10_B_n_pmt_c",
}


def test_params_figure_draws_the_fit_files_values_and_intervals(drawn, inputs):
    """params read back: each panel, named by its y label, has one dot per task (named by
    the x tick labels) at the fit file's value of that parameter, or at the combination
    log10(A C_c^-alpha) / log10(B n_pmt_c^-beta) worked out in the test from the six
    parameters, and its bar spans the file's bootstrap interval."""
    from matplotlib.collections import LineCollection

    fit = inputs["fit_main"]["tasks"]
    fig = drawn("params").fig
    shown = []
    for ax in fig.axes:
        name = PARAM_LABELS[ax.get_ylabel().split(" ")[0]]
        shown.append(name)
        block = "params" if name in ("A", "alpha", "B", "beta") else "identifiable"
        ticks = ax.xaxis.get_major_formatter().format_ticks(ax.get_xticks())
        tasks = [t.replace("\n", "_") for t in ticks]
        assert sorted(tasks) == TASKS_ALL
        (dots,) = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
        (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        segments = {float(s[0][0]): s for s in bars.get_segments()}
        for x, y, task in zip(dots.get_xdata(), dots.get_ydata(), tasks, strict=True):
            p = fit[task]["params"]
            want = {
                "log10_A_C_c": math.log10(p["A"]) - p["alpha"] * math.log10(p["C_c"]),
                "log10_B_n_pmt_c": math.log10(p["B"]) - p["beta"] * math.log10(p["n_pmt_c"]),
            }.get(name, p.get(name))
            assert y == pytest.approx(want, rel=1e-9), (name, task)
            lo, hi = fit[task]["ci"][block][name]
            seg = segments[float(x)]
            assert sorted(seg[:, 1]) == pytest.approx([lo, hi], rel=1e-9), (name, task)
    assert sorted(shown) == sorted(PARAM_LABELS.values())


def test_figure_1_scatter_is_each_fit_against_the_observed_scores(drawn, inputs):
    """Figure 1, bottom row read back: per task, the filled dots are (observed score, main
    fit's law) at every fitted point, the open squares (observed score, the agnostic fit's
    compute term 1 - exp(-A (C/C_c)^alpha)), both typed from the paper; the panel's title
    reads each fit's MAE; both axes start at 0 and show every point."""
    pts = inputs["points"]
    fig = drawn("fig1_context_agnostic").fig
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "observed score"]
    assert len(panels) == len(TASKS_ALL)
    for ax, task in zip(panels, TASKS_ALL, strict=True):
        tp = pts[(pts["role"] == "fit") & (pts["task"] == task)]
        q = inputs["fit_agnostic"]["tasks"][task]["params"]
        flat = [1.0 - math.exp(-q["A"] * (c / q["C_c"]) ** q["alpha"]) for c in tp["C"]]
        aware = _law_at(_law_of(inputs["fit_main"], task), tp)
        title = ax.get_title().removeprefix("MAE: ").splitlines()
        for (name, pred), line in zip(
            (("context-aware", aware), ("context-agnostic", flat)), title, strict=True
        ):
            (coll,) = [c for c in ax.collections if c.get_label() == name]
            _assert_points(coll, tp["score"], pred)
            mae = np.mean(np.abs(tp["score"].to_numpy() - np.asarray(pred)))
            label, value = line.rsplit(" ", 1)
            assert label == name and float(value) == pytest.approx(mae, abs=5e-4 + 1e-9)
        assert ax.get_xlim()[0] == 0 and ax.get_ylim()[0] == 0
        _assert_all_shown(ax)


#: Each catalogued figure -> the tests that read back what it draws. A new figure needs one.
READ_BACK = {
    "fig1_context_agnostic": (
        test_figure_1_curves_are_the_two_fitted_laws,
        test_figure_1_scatter_is_each_fit_against_the_observed_scores,
    ),
    **{
        f"fig{2 + k}_contour_{t}": (
            test_contour_figure_draws_the_fitted_law_and_the_observed_points,
        )
        for k, t in enumerate(TASKS_ALL)
    },
    **{
        f"fig{5 + k}_extrapolation_{t}": (test_extrapolation_curves_are_the_fitted_law,)
        for k, t in enumerate(TASKS_ALL)
    },
    "ood_compute": (test_ood_figure_draws_observed_scores_and_the_fitted_law,),
    "yarn_vs_pi": (test_technique_figure_pairs_pi_with_its_yarn_twin_under_the_law,),
    "residuals": (test_residual_figure_draws_observed_minus_the_fitted_law,),
    "params": (test_params_figure_draws_the_fit_files_values_and_intervals,),
}


def test_every_figure_has_a_read_back_test():
    assert list(READ_BACK) == list(FIGURES)


def test_mae_table_adds_the_loss_variant_beside_the_main_fit(paths, tmp_path):
    """With --fit-loss-variant the in-distribution MAE of that fit (another loss) is a row of
    its own, on the same points as the main fit's; without it the row is absent."""
    import json

    from ctxscale.analysis import fit as fitmod

    doc = json.loads(paths["fit_main"].read_text())
    doc["settings"]["loss"] = "absolute"
    for entry in doc["tasks"].values():
        entry["params"]["beta"] *= 1.2  # another optimum: a different MAE
    variant = tmp_path / "loss_variant.json"
    variant.write_text(json.dumps(doc))
    table = build_table("mae", Results(Inputs(**paths, fit_loss_variant=variant), "test"))
    rows = table.set_index(["task", "setting"])
    points = pd.read_csv(paths["points"])
    fitted = points[(points["role"] == "fit") & (points["task"] == "translation")]
    pred = fitmod.predict_points(fitmod.read_fit(variant), fitted)
    row = rows.loc[("translation", "in_distribution_absolute_loss")]
    assert row["n_points"] == rows.loc[("translation", "in_distribution"), "n_points"]
    assert row["mae"] == pytest.approx(np.mean(np.abs(fitted["score"] - pred)))
    assert row["mae"] != pytest.approx(rows.loc[("translation", "in_distribution"), "mae"])
    render_table("mae", Results(Inputs(**paths, fit_loss_variant=variant), "t"), tmp_path / "m.csv")
    assert "| in-distribution, absolute-loss fit |" in (tmp_path / "m.md").read_text()
    plain = build_table("mae", Results(Inputs(**paths), "test"))
    assert "in_distribution_absolute_loss" not in set(plain["setting"])


def test_mae_table_matches_hand_computation(res, paths):
    table = build_table("mae", res)
    points = pd.read_csv(paths["points"])
    assert list(table["task"].unique()) == ["arithmetic", "common_sense", "translation"]
    row = table[(table["task"] == "arithmetic") & (table["setting"] == "extrapolation")].iloc[0]
    from ctxscale.analysis import fit as fitmod

    held = points[(points["role"] == "fit") & (points["task"] == "arithmetic")]
    held = held[held["n_pmt"] >= HOLDOUT]
    pred = fitmod.predict_points(fitmod.read_fit(paths["fit_extrapolation"]), held)
    assert row["n_points"] == len(held) > 0
    assert row["mae"] == pytest.approx(np.mean(np.abs(held["score"] - pred)))
    assert row["ci_lo"] <= row["mae"] <= row["ci_hi"]
    assert row["paper_mae"] == 0.017


def test_ablation_table_separates_beyond_context(res):
    table = build_table("ablation", res).set_index(["task", "fit", "subset"])
    # The synthetic scores collapse past n_ctx: without the penalty the error there is large.
    beyond_without = table.loc[("arithmetic", "without_penalty", "gt_ctx"), "mae"]
    beyond_with = table.loc[("arithmetic", "with_penalty", "gt_ctx"), "mae"]
    assert beyond_without > 10 * beyond_with
    counts = table.xs("with_penalty", level="fit")["n_points"]
    assert counts[("arithmetic", "all")] == (
        counts[("arithmetic", "le_ctx")] + counts[("arithmetic", "gt_ctx")]
    )
    assert table.loc[("arithmetic", "without_penalty", "gt_ctx"), "paper_mae"] == 0.104


def test_params_table_has_parameters_and_combinations(res):
    table = build_table("params", res)
    arith = table[table["task"] == "arithmetic"].set_index("parameter")
    params = ["A", "C_c", "alpha", "B", "n_pmt_c", "beta"]
    ident = ["log10_A_C_c", "log10_B_n_pmt_c"]
    assert list(arith.index) == params + ident
    assert list(arith["kind"]) == ["parameter"] * 6 + ["identifiable"] * 2
    row = arith[arith["kind"] == "parameter"].loc["A"]
    assert row["value"] == 2.0 and row["ci_lo"] == pytest.approx(1.8)
    fixed = arith[arith["kind"] == "parameter"].loc["C_c"]
    assert fixed["note"] and np.isnan(fixed["ci_lo"])  # fixed at the reference scale
    combo = arith.loc["log10_A_C_c"]
    assert combo["value"] == pytest.approx(np.log10(2.0) - 23.0)


def test_metric_check_puts_the_corrected_metric_beside_the_original(res):
    df = build_table("metric_check", res).set_index("dataset")
    n_arith = int((res.points["task"] == "arithmetic").sum())
    boolean = df.loc["dm_math__numbers__is_prime"]
    assert (boolean["n_points"], boolean["n_instances"]) == (n_arith, 100 * n_arith)
    assert (boolean["score"], boolean["score_corrected"]) == (0.0, 0.5)
    assert boolean["max_abs_change"] == 0.5
    numeric = df.loc["dm_math__arithmetic__add_or_sub"]
    assert numeric["score_corrected"] == pytest.approx(numeric["score"])
    assert numeric["max_abs_change"] == 0.0


def test_tables_write_csv_and_markdown_identically(res, tmp_path):
    for name in TABLES:
        a = render_table(name, res, tmp_path / "a" / f"{name}.csv")[0]
        b = render_table(name, res, tmp_path / "b" / f"{name}.csv")[0]
        for x, y in zip(a, b, strict=True):
            assert x.read_bytes() == y.read_bytes()
        assert a[1].read_text().startswith("| ")
        assert a[0].read_text().split(",")[0] == "task"


@pytest.fixture(scope="module")
def report(paths, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The report written once (rendering every figure takes a few seconds)."""
    root = tmp_path_factory.mktemp("report")
    figdir = root / "figures"
    res = Results(Inputs(**paths))
    render_figure("params", res, figdir / "params.pdf")  # one pre-rendered, the rest in memory
    md, html = write_report(res, root / "paper" / "report.md", figdir)
    return md, html, figdir


@pytest.mark.slow
def test_report_has_every_table_figure_and_paper_number(report, res):
    md, html, _ = report
    text, page = md.read_text(), html.read_text()
    for name in TABLES:
        assert f"Table `{name}`" in text
    for name in FIGURES:
        assert f"![{name}](../figures/{name}.png)" in text
        assert f'alt="{name}"' in page
    assert page.count("data:image/png;base64,") == len(FIGURES)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    paper = paper_results()
    for value in (*paper["mae"]["in_distribution"].values(), 0.104, 0.029, 0.014):
        assert f"{value:.3f}" in text
    assert "produced at the paper's scale" in text
    assert res.manifest_sha256() in text and "holdout_npmt" in text
    assert "Not produced" not in text
    assert "What these points cannot show" not in text  # several C, prompts past n_ctx


def test_report_states_what_a_small_design_cannot_show(paths, tmp_path):
    points = pd.read_csv(paths["points"])
    fitted = points[points["role"] == "fit"]
    small = fitted[(fitted["C"] == fitted["C"].min()) & (fitted["n_pmt"] <= fitted["n_ctx"])]
    small_path = tmp_path / "points.csv"
    small.to_csv(small_path, index=False)
    md, _ = write_report(Results(Inputs(points=small_path)), tmp_path / "report.md")
    text = md.read_text()
    assert "the compute exponent alpha is not identified" in text
    assert "the penalty term is not exercised" in text


def test_report_lists_outputs_missing_at_this_scale(paths, tmp_path):
    drop = ("ood", "technique", "fit_agnostic", "fit_extrapolation", "fit_main", "scores_corrected")
    inputs = {k: v for k, v in paths.items() if k not in drop}
    md, _ = write_report(Results(Inputs(**inputs)), tmp_path / "report.md")
    text = md.read_text()
    assert "Not produced at this scale: figure ood_compute needs --fit-main (" in text
    assert "), --ood (predictions for the out-of-distribution" in text
    assert "- figure params: figure params needs --fit-main" in text
    assert "- table ablation: table ablation needs --fit-main" in text
    assert text.count("Not produced at this scale") == len(FIGURES) + len(TABLES)


def test_missing_input_is_one_clear_line(paths, tmp_path, capsys):
    out = tmp_path / "x.pdf"
    status = main(["figure", "ood_compute", "--out", str(out), *_args(paths, "points", "fit_main")])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err
    assert err == (
        "ctxscale figure: error: figure ood_compute needs --ood "
        "(predictions for the out-of-distribution families (results/predictions/ood.csv))"
    )
    assert not out.exists()


def test_absent_file_and_bad_points_are_one_line(paths, tmp_path, capsys):
    status = main(
        ["table", "mae", "--out", str(tmp_path / "t.csv"), "--points", str(tmp_path / "nope.csv")]
    )
    assert status == 2
    assert "lacks the file(s) --points" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    df = pd.read_csv(paths["points"])
    df.loc[3, "score"] = 1.5
    df.to_csv(bad, index=False)
    with pytest.raises(CtxscaleError, match=r"row 4: column 'score' value 1.5 is outside"):
        _ = Results(Inputs(points=bad)).points
    df.drop(columns=["n_pmt"]).to_csv(bad, index=False)
    args = ["figure", "residuals", "--out", str(tmp_path / "r.pdf"), "--points", str(bad)]
    status = main([*args, "--fit-main", str(paths["fit_main"])])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "lacks column(s) n_pmt" in err and "\n" not in err


def test_cli_figure_table_report(paths, tmp_path):
    every = _args(paths, *paths)
    out = tmp_path / "f" / "fig7_extrapolation_translation.png"
    assert main(["figure", out.stem, "--out", str(out), *every]) == 0
    assert out.with_suffix(".pdf").is_file()
    assert main(["table", "mae", "--out", str(tmp_path / "t/mae.csv"), *every]) == 0
    assert (tmp_path / "t/mae.md").is_file()
    with pytest.raises(SystemExit):
        main(["figure", "fig9", "--out", str(tmp_path / "x.pdf")])


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.mark.slow
@pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)
def test_report_html_opens_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    """The page a reader opens: every figure decodes, the console stays clean, and a
    screenshot is kept (under $CTXSCALE_ARTIFACTS when set, for CI to keep)."""
    selenium = pytest.importorskip("selenium.webdriver")
    _, html, _ = report
    opts = selenium.ChromeOptions()
    opts.binary_location = BROWSER
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,1600",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = selenium.Chrome(options=opts, service=selenium.ChromeService(DRIVER))
    try:
        driver.get(html.resolve().as_uri())
        n_images, broken = driver.execute_script(
            "const im = Array.from(document.images);"
            "return [im.length, im.filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.alt)];"
        )
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        title = driver.title
        out = Path(os.environ.get("CTXSCALE_ARTIFACTS") or tmp_path)
        out.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(out / "report_screenshot.png"))
    finally:
        driver.quit()
    assert n_images == len(FIGURES) and broken == []
    assert errors == []
    assert title
    shot = (out / "report_screenshot.png").read_bytes()
    assert shot.startswith(b"\x89PNG") and len(shot) > 20_000


def test_docs_list_every_output_with_its_inputs():
    docs = (TESTS.parent / "docs" / "figures.md").read_text()
    assert render.inputs_markdown() in docs


def test_expected_figures_follow_tasks_and_roles():
    assert render.expected_figures(TASKS_ALL, ["fit", "ood", "technique"]) == list(FIGURES)
    assert render.expected_figures(["arithmetic"], ["fit"]) == [
        "fig1_context_agnostic",
        "fig2_contour_arithmetic",
        "fig5_extrapolation_arithmetic",
        "residuals",
        "params",
    ]


@pytest.mark.slow
def test_default_scale_report_says_it_is_not_the_paper(tmp_path):
    """One task, two small models, no OOD/technique: what the default run produces."""
    small = write_results(tmp_path / "small", small=True)
    res = Results(Inputs(**small))
    drawn = []
    for name in FIGURES:
        try:
            render_figure(name, res, tmp_path / "figures" / f"{name}.pdf")
            drawn.append(name)
        except CtxscaleError as exc:
            assert "\n" not in str(exc)
    assert drawn == render.expected_figures(["arithmetic"], ["fit"])
    md, html = write_report(res, tmp_path / "paper" / "report.md", tmp_path / "figures")
    text = md.read_text()
    # rendered in memory instead of read from the figure files: the very same bytes
    html_mem = write_report(res, tmp_path / "paper2" / "report.md")[1]
    assert html_mem.read_bytes() == html.read_bytes()
    assert "It does not reproduce the paper's numbers" in text
    assert "prompts of at most 2,230 tokens" in text
    ablation = build_table("ablation", res)
    assert (ablation.loc[ablation["subset"] == "gt_ctx", "n_points"] == 0).all()
    not_produced = text.split("## Not produced")[1]
    assert (
        "figure ood_compute" in not_produced and "figure fig3_contour_common_sense" in not_produced
    )
    assert "table" not in not_produced


@pytest.mark.slow
def test_figures_and_tables_from_real_fits(tmp_path):
    """The same outputs from fits made by ctxscale.analysis.fit (not hand-written fit files)."""
    from ctxscale.analysis.fit import fit_table

    small = write_results(tmp_path, small=True)
    points = pd.read_csv(small["points"])
    for name, kw in (
        ("fit_main", {}),
        ("fit_no_penalty", {"penalty": "none"}),
        ("fit_extrapolation", {"holdout_npmt": 1000.0}),
        ("fit_agnostic", {"law": "context_agnostic"}),
    ):
        fit_table(points, bootstrap=8, n_jobs=1, **kw).write(small[name])
    res = Results(Inputs(**small))
    params = build_table("params", res).set_index(["kind", "parameter"])
    assert params.loc[("parameter", "A"), "ci_lo"] < params.loc[("parameter", "A"), "value"]
    assert params.loc[("parameter", "C_c"), "note"]  # the fit fixes it at a reference scale
    assert not np.isnan(params.loc[("identifiable", "log10_A_C_c"), "ci_hi"])
    mae = build_table("mae", res).set_index("setting")
    assert mae.loc["in_distribution", "mae"] < 0.02  # noise sd 0.01 around the law
    assert mae.loc["extrapolation", "n_points"] == (points["n_pmt"] >= 1000).sum()
    for name in ("fig1_context_agnostic", "fig5_extrapolation_arithmetic", "params"):
        render_figure(name, res, tmp_path / "figures" / f"{name}.pdf")


def test_results_dir_supplies_inputs_not_given(paths, tmp_path, capsys):
    results = paths["points"].parent
    out = tmp_path / "t" / "ablation.csv"
    assert main(["table", "ablation", "--results", str(results), "--out", str(out)]) == 0
    explicit = tmp_path / "u" / "ablation.csv"
    args = _args(paths, "points", "fit_main", "fit_no_penalty")
    assert main(["table", "ablation", *args, "--out", str(explicit)]) == 0
    assert out.read_bytes() == explicit.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["table", "ablation", "--results", str(empty), "--out", str(out)]) == 2
    assert "table ablation needs --points" in capsys.readouterr().err
