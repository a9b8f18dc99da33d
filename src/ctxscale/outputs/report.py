"""The paper report: every figure and table, our numbers beside the paper's.

Writes ``report.md`` and a self-contained ``report.html`` (figures embedded as base64
PNG, inline CSS, no external assets) from the same list of blocks. The report states
the scale it was run at (derived from the config and the points, never hard-coded),
the configuration and the manifest hash. A figure or table whose inputs are missing
at this scale is listed with the reason instead of failing the whole report.
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from ctxscale.catalog import FIGURES, TABLES
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import sha256_file
from ctxscale.outputs.figures import ctx_label, draw_figure, figure_bytes, size_label
from ctxscale.outputs.results import Results
from ctxscale.outputs.tables import build_table, markdown_table, paper_results, table_cells


@dataclass
class Report:
    """A document as blocks, rendered to Markdown and to HTML."""

    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def items(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def code(self, text: str, lang: str = "") -> None:
        self.blocks.append(("code", text, lang))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def image(self, alt: str, png: bytes, link: str) -> None:
        self.blocks.append(("img", alt, png, link))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(b[1])
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in b[1]))
            elif kind == "code":
                out.append(f"```{b[2]}\n{b[1].rstrip()}\n```")
            elif kind == "table":
                out.append(markdown_table(b[1], b[2]).rstrip())
            elif kind == "img":
                out.append(f"![{b[1]}]({b[3]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        body = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "code":
                body.append(f"<pre><code>{html.escape(b[1].rstrip())}</code></pre>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(c)}</th>" for c in b[1])
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                    for r in b[2]
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(b[2]).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(b[1])}" '
                    f'src="data:image/png;base64,{data}"></figure>'
                )
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )


_CSS = (
    "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0;font-size:.85rem}"
    "th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left}"
    "th{background:#eee}figure{margin:1rem 0}img{max-width:100%}"
    "pre{background:#f6f6f6;padding:.6rem;overflow-x:auto;font-size:.8rem}"
    "code{background:#f6f6f6}.note{color:#a00}"
)


def _inline(text: str) -> str:
    """Escape text for HTML, keeping `code` spans and **bold**."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _fmt_list(values) -> str:
    return ", ".join(values)


def _scale_section(doc: Report, res: Results) -> None:
    pts = res.points if res.has("points") else None
    doc.h(2, "Scale of this run")
    scale = res.scale
    paper = paper_results()["setup"]
    if pts is not None:
        fit = pts[pts["role"] == "fit"]
        summary = [
            f"scale: `{scale}`",
            f"points: {len(pts)} (model, task, n_shots) rows, {len(fit)} of them fitted on",
            "tasks: " + _fmt_list(sorted(pts["task"].unique())),
            "fitted families: "
            + "; ".join(
                f"{fam} (N = {size_label(g['N'].iloc[0])}, n_ctx "
                + ", ".join(ctx_label(c) for c in sorted(g["n_ctx"].unique()))
                + ")"
                for fam, g in fit.groupby("family", sort=True)
            ),
            f"training compute C of fitted models: {fit['C'].min():.4g} .. {fit['C'].max():.4g} "
            "FLOPs",
            f"prompt lengths n_pmt: {pts['n_pmt'].min():,.0f} .. {pts['n_pmt'].max():,.0f} tokens",
            *_npmt_ranges(pts),
            "n_shots: " + _fmt_list(str(int(s)) for s in sorted(pts["n_shots"].unique())),
        ]
        for role in ("ood", "technique", "check"):
            models = sorted(pts.loc[pts["role"] == role, "model"].unique())
            if models:
                summary.append(f"{role} models: " + _fmt_list(models))
    else:
        summary = [f"scale: `{scale}`", "no points table was given"]
    if scale == "paper":
        doc.p(
            "This report was produced at the paper's scale (config `scale: paper`): the "
            "numbers below are our replication of the paper's, set beside them."
        )
    elif _miniworld_fitted(res):
        doc.p(
            "**The law is fitted here on the miniature world, not on the paper's models.** "
            "The fitted family is a ladder of tiny Llama-shaped models (about 10^5 "
            "parameters) trained by this workflow on the CPU, with YaRN and positional-"
            "interpolation extensions, evaluated on three generated tasks that mirror the "
            "paper's three (docs/miniworld.md). Its compute, context limits and prompt "
            "lengths are 10 orders of magnitude below the paper's, so its parameters and "
            "MAE values are not estimates of the paper's: they show whether the law's form "
            "describes models that behave as the paper says LLMs do, measured end to end "
            "through the same pipeline. The real small models (role `check`) are scored "
            "beside it as a real-model check (section below); with one compute value each "
            "they cannot be fitted."
        )
    else:
        c_max = f"{pts['C'].max():.2g}" if pts is not None else "?"
        data_cfg = (res.config.get("data") or {}) if res.has("config") else {}
        limit = data_cfg.get("max_instances")
        per_dataset = (
            f"at most {limit} instances per dataset" if limit else "few instances per dataset"
        )
        npmt_max = f"{pts['n_pmt'].max():,.0f}" if pts is not None else "?"
        doc.p(
            f"**This run used the `{scale}` small scale. It does not reproduce the paper's "
            "numbers, and its MAE values are not estimates of them.** The paper fits "
            f"{paper['models']} ({paper['compute_range']} FLOPs) on {paper['instances']:,} "
            "instances with up to 511 demonstrations (prompts up to 128k tokens), on GPUs. "
            f"This run uses small models that run on a CPU (largest compute {c_max} FLOPs), "
            f"{per_dataset} and prompts of at most {npmt_max} tokens, so compute, "
            "context limits and prompt lengths lie in another regime and small models' "
            "scores sit near the floor on harder tasks. It checks the pipeline end to end and "
            "the law's form on this regime; the paper's numbers need the paper-scale "
            "configuration on GPUs (see the README)."
        )
    doc.items(summary + _evaluation_notes(res))
    caveats = _design_caveats(pts)
    if caveats:
        doc.p("**What these points cannot show.** " + " ".join(caveats))


def _miniworld_fitted(res: Results) -> bool:
    """Whether the fitted families are the miniature world's (config ``miniworld``)."""
    if not res.has("config") or not res.has("points"):
        return False
    mw = res.config.get("miniworld") or {}
    names = {f["name"] for f in mw.get("families") or []} if mw.get("activate") else set()
    fitted = set(res.points.loc[res.points["role"] == "fit", "family"])
    return bool(fitted) and fitted <= names


def _miniworld_section(doc: Report, res: Results) -> None:
    """The miniature world's signal before fitting, and the fitted penalty's position."""
    if not _miniworld_fitted(res):
        return
    pts = res.points
    fit = pts[pts["role"] == "fit"]
    base = fit[fit["n_ctx"] == fit["n_ctx"].min()]
    c_top, c_low = base["C"].max(), base["C"].min()
    doc.h(2, "The miniature world before fitting")
    doc.p(
        "Signal in the measured points, per task: the best score within n_ctx of the "
        "highest and the lowest compute level of the base ladder, and the best score of "
        "the top base model past 4 n_ctx (the penalty's region). Fitted penalty: where "
        "the main fit puts the fall, as a multiple of n_ctx (the paper's form fixes it at "
        "1), with its width in log(n_pmt / n_ctx) units."
    )
    main = res.fit("fit_main") if res.has("fit_main") else {"tasks": {}}
    header = ["task", "top C, best within n_ctx", "lowest C, best within n_ctx"]
    header += ["top C, best past 4 n_ctx", "penalty centre (x n_ctx)", "penalty width"]
    rows = []
    for task, g in base.groupby("task", sort=True):
        inside = g[g["n_pmt"] <= g["n_ctx"]]
        top, low = inside[inside["C"] == c_top], inside[inside["C"] == c_low]
        far = g[(g["C"] == c_top) & (g["n_pmt"] > 4 * g["n_ctx"])]
        pen = (main["tasks"].get(task) or {}).get("penalty") or {}
        rows.append(
            [
                task,
                f"{top['score'].max():.3f}",
                f"{low['score'].max():.3f}",
                f"{far['score'].max():.3f}" if len(far) else "-",
                f"{pen['penalty_centre']:.2f}" if pen else "1 (fixed)",
                f"{pen['penalty_width']:.3f}" if pen else "-",
            ]
        )
    doc.table(header, rows)


def _check_section(doc: Report, res: Results) -> None:
    """The real models' scores (role ``check``): measured, neither fitted nor predicted."""
    if not res.has("points"):
        return
    pts = res.points[res.points["role"] == "check"]
    if pts.empty:
        return
    doc.h(2, "Real-model check")
    doc.p(
        "Real small models scored through the same pipeline (task-level score at each "
        "shot count, with the mean prompt length). They are neither fitted nor predicted: "
        "each has one training compute, so the law's compute term cannot be identified "
        "from them."
    )
    shots = sorted(pts["n_shots"].unique())
    header = ["model", "task"] + [f"{int(k)} shots" for k in shots]
    rows = []
    for (model, task), g in pts.groupby(["model", "task"], sort=True):
        g = g.set_index("n_shots")
        rows.append(
            [model, task]
            + [
                f"{g.at[k, 'score']:.3f} ({g.at[k, 'n_pmt']:,.0f} tok)" if k in g.index else "-"
                for k in shots
            ]
        )
    doc.table(header, rows)


def _npmt_ranges(pts) -> list[str]:
    """Each task's n_pmt range: how far its points reach towards the longest contexts."""
    return [
        f"n_pmt of {task}: {g['n_pmt'].min():,.0f} .. {g['n_pmt'].max():,.0f} tokens"
        for task, g in pts.groupby("task", sort=True)
    ]


def _evaluation_notes(res: Results) -> list[str]:
    """How instances were filtered and a task's score aggregated, and what stays fixed."""
    if not res.has("config"):
        return []
    from ctxscale.config import AGGREGATIONS, default, length_filter

    config = res.config
    agg = (config.get("scores") or {}).get("aggregation", default("scores.aggregation"))
    return [
        f"instance-length filter: {length_filter(config)}",
        f"task score and n_pmt: aggregation `{agg}`: {AGGREGATIONS[agg]}",
        "evaluation instances: one seeded set per dataset serves every n_shots (the original "
        "redraws them per n_shots), so the points of one dataset differ only in their "
        "demonstrations and the shot count's effect is not mixed with a change of instances",
    ]


def _design_caveats(pts) -> list[str]:
    """Limits of the fitted points' design that a reader must know before reading the fits."""
    if pts is None:
        return []
    fit = pts[pts["role"] == "fit"]
    caveats = []
    if fit["C"].nunique() < 2:
        caveats.append(
            "Every fitted model has the same training compute, so the compute exponent alpha "
            "is not identified: predictions at other compute (the out-of-distribution check) "
            "follow an arbitrary alpha, as its bootstrap interval shows."
        )
    if not (fit["n_pmt"] > fit["n_ctx"]).any():
        caveats.append(
            "No fitted point has a prompt longer than its model's context limit "
            "(n_pmt > n_ctx), so the penalty term is not exercised and the ablation's "
            "n_pmt > n_ctx column is empty."
        )
    return caveats


def _provenance_section(doc: Report, res: Results) -> None:
    doc.h(2, "Configuration and provenance")
    items = []
    if res.has("manifest"):
        lines = [ln for ln in res.path("manifest").read_text().splitlines() if ln.strip()]
        items.append(
            f"manifest `{res.inputs.manifest}`: sha256 `{res.manifest_sha256()}` "
            f"({max(len(lines) - 1, 0)} artifacts listed)"
        )
    else:
        items.append("manifest: not given")
    for name in (
        "points",
        "fit_main",
        "fit_no_penalty",
        "fit_penalty_variant",
        "fit_loss_variant",
        "fit_floor_variant",
        "fit_coupling_variant",
        "fit_extrapolation",
        "fit_agnostic",
    ):
        if res.has(name):
            items.append(
                f"{name}: `{getattr(res.inputs, name)}` sha256 `{sha256_file(res.path(name))}`"
            )
    doc.items(items)
    if res.has("config"):
        doc.p(f"Configuration `{res.inputs.config}` (sha256 `{sha256_file(res.path('config'))}`):")
        doc.code(res.path("config").read_text(), "yaml")


def _paper_note(name: str) -> str:
    """The figure's paper counterpart (ctxscale.catalog), with the paper's MAE filled in."""
    entry = FIGURES[name]
    if entry.paper_mae is None:
        return entry.paper
    value = paper_results()["mae"][entry.paper_mae].get(entry.task)
    return entry.paper.format(mae=f"{value:.3f}" if value else "n/a")


def _figure_png(name: str, res: Results, figures_dir: Path | None) -> bytes:
    if figures_dir is not None and (figures_dir / f"{name}.png").is_file():
        return (figures_dir / f"{name}.png").read_bytes()
    fig = draw_figure(name, res)
    try:
        return figure_bytes(fig, "png")
    finally:
        plt.close(fig)


def build_report(
    res: Results, out_md: Path, figures_dir: Path | None = None
) -> tuple[Report, list[str]]:
    """The report's blocks, and the figures/tables it could not produce (with reasons)."""
    doc = Report()
    missing: list[str] = []
    res.purpose = "report"
    doc.h(1, "Context-aware scaling laws: our results beside the paper's")
    doc.p(
        f"Replication of {paper_results()['source']}. Every figure and table below is "
        "regenerated from the workflow's results files by `ctxscale figure`, "
        "`ctxscale table` and `ctxscale report`."
    )
    _scale_section(doc, res)
    _miniworld_section(doc, res)
    _check_section(doc, res)

    doc.h(2, "Tables")
    for name, entry in TABLES.items():
        doc.h(3, f"Table `{name}`")
        doc.p(entry.caption)
        res.purpose = f"table {name}"
        try:
            df = build_table(name, res)
        except CtxscaleError as exc:
            missing.append(f"table {name}: {exc}")
            doc.p(f"Not produced at this scale: {exc}")
            continue
        doc.table(*table_cells(name, df))

    doc.h(2, "Figures")
    for name, entry in FIGURES.items():
        doc.h(3, f"Figure `{name}`")
        doc.p(entry.caption)
        note = _paper_note(name)
        if note:
            doc.p(note)
        res.purpose = f"figure {name}"
        try:
            png = _figure_png(name, res, figures_dir)
        except CtxscaleError as exc:
            missing.append(f"figure {name}: {exc}")
            doc.p(f"Not produced at this scale: {exc}")
            continue
        base = figures_dir if figures_dir is not None else Path("figures")
        link = Path(os.path.relpath(base / f"{name}.png", out_md.parent)).as_posix()
        doc.image(name, png, link)

    res.purpose = "report"
    _provenance_section(doc, res)
    if missing:
        doc.h(2, "Not produced")
        doc.items(missing)
    return doc, missing


def write_report(res: Results, out_md: Path, figures_dir: Path | None = None) -> list[Path]:
    """Write ``out_md`` and ``report.html`` beside it; returns both paths."""
    out_md = Path(out_md)
    if out_md.suffix != ".md":
        raise CtxscaleError(f"report output {out_md} must end in .md")
    res.path("points")  # nothing to report without the points
    doc, _ = build_report(res, out_md, figures_dir)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_html = out_md.with_suffix(".html")
    out_md.write_text(doc.markdown())
    out_html.write_text(doc.html("ctxscale report"))
    return [out_md, out_html]
