"""Every figure and table the experiment produces, declared once (pure data, no matplotlib).

An entry names its output, the input files it reads (as ``ctxscale figure/table`` options,
see :data:`INPUTS`), its caption, its paper counterpart and the dotted name of the function
that draws or builds it. The workflow (rule inputs, wildcard constraints), the CLI
(``choices=``), :mod:`ctxscale.artifacts` (targets), :mod:`ctxscale.outputs.report` (captions,
paper notes) and the drawing code all read this module. Adding a figure touches its entry
here and its drawing function, nothing else.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ctxscale.errors import CtxscaleError

#: The paper's three tasks, in its order.
TASKS = ("arithmetic", "common_sense", "translation")
TASK_LABELS = {
    "arithmetic": "Arithmetic reasoning",
    "common_sense": "Common-sense reasoning",
    "translation": "Machine translation",
}


@dataclass(frozen=True)
class Input:
    """One results file a figure, table or the report reads: its workflow path and help."""

    path: str
    help: str


#: Input option name -> workflow path and help text (``fit_main`` is ``--fit-main``). Order
#: is the report's.
INPUTS: dict[str, Input] = {
    "points": Input("results/points.csv", "task-level points table (results/points.csv)"),
    "scores_corrected": Input(
        "results/scores_corrected_metric.csv",
        "scores of the datasets with a corrected metric (results/scores_corrected_metric.csv)",
    ),
    "fit_main": Input(
        "results/fits/main.json",
        "context-aware fit with the penalty (results/fits/main.json)",
    ),
    "fit_no_penalty": Input(
        "results/fits/no_penalty.json",
        "context-aware fit without the penalty (results/fits/no_penalty.json)",
    ),
    "fit_penalty_variant": Input(
        "results/fits/penalty_variant.json",
        "context-aware fit with the other penalty form: centre fitted if the main fit fixes "
        "it at n_ctx, and fixed if the main fit fits it (results/fits/penalty_variant.json)",
    ),
    "fit_loss_variant": Input(
        "results/fits/loss_variant.json",
        "the main fit with the other loss: absolute if the main fit's is squared, else "
        "squared (results/fits/loss_variant.json)",
    ),
    "fit_floor_variant": Input(
        "results/fits/floor_variant.json",
        "the main fit's law with a fitted floor, floor + (1 - floor) P: a variant beside the "
        "paper's form (results/fits/floor_variant.json)",
    ),
    "fit_coupling_variant": Input(
        "results/fits/coupling_variant.json",
        "the main fit's law with the prompt term's scale coupled to compute, "
        "B (C / C_c)^gamma: a variant beside the paper's separable form "
        "(results/fits/coupling_variant.json)",
    ),
    "fit_extrapolation": Input(
        "results/fits/extrapolation.json",
        "fit on n_pmt below the hold-out cut-off (results/fits/extrapolation.json)",
    ),
    "fit_agnostic": Input(
        "results/fits/context_agnostic.json",
        "context-agnostic baseline fit (results/fits/context_agnostic.json)",
    ),
    "ood": Input(
        "results/predictions/ood.csv",
        "predictions for the out-of-distribution families (results/predictions/ood.csv)",
    ),
    "technique": Input(
        "results/predictions/technique.csv",
        "predictions for the other context-extension technique (results/predictions/technique.csv)",
    ),
    "manifest": Input(
        "results/manifest.tsv", "artifact manifest with sha256 sums (results/manifest.tsv)"
    ),
    "config": Input("results/config.yaml", "experiment config (config.yaml)"),
}


@dataclass(frozen=True)
class Output:
    """A figure or a table: what it reads, what it says, and the code that makes it.

    ``inputs`` are every file the workflow hands it; ``optional`` those it can do without
    (the config only supplies fallbacks). ``draw`` is ``"module:function"``, called as
    ``f(results)``, or ``f(results, task)`` for a per-task figure. A table also names
    ``cells``, ``f(table) -> (header, rows)`` for its Markdown. ``paper`` is the paper's
    counterpart; ``{mae}`` in it is the paper's MAE of setting ``paper_mae`` for ``task``.
    """

    name: str
    draw: str
    inputs: tuple[str, ...]
    caption: str
    paper: str = ""
    task: str | None = None
    needs_role: str | None = None
    optional: tuple[str, ...] = ("config",)
    cells: str | None = None
    paper_mae: str | None = None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(i for i in self.inputs if i not in self.optional)

    def paths(self) -> dict[str, str]:
        """The workflow path of each input, keyed by option name."""
        return {k: INPUTS[k].path for k in self.inputs}


def lookup(kind: str, name: str) -> Output:
    """The entry of figure or table ``name`` (``kind``: "figure" or "table")."""
    registry = FIGURES if kind == "figure" else TABLES
    if name not in registry:
        raise CtxscaleError(f"unknown {kind} {name!r}; known: {', '.join(registry)}")
    return registry[name]


def resolve(dotted: str) -> Callable[..., Any]:
    """``"ctxscale.outputs.figures:fig_params"`` -> the function (imported on first use)."""
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


def task_order(tasks: Iterable[str]) -> list[str]:
    """Tasks present: the paper's three first, in its order, then any others."""
    present = set(tasks)
    return [t for t in TASKS if t in present] + sorted(present - set(TASKS))


def task_label(task: str) -> str:
    return TASK_LABELS.get(task, task.replace("_", " "))


def _figures() -> list[Output]:
    out = [
        Output(
            "fig1_context_agnostic",
            "ctxscale.outputs.figures:fig_context_agnostic",
            ("points", "fit_main", "fit_agnostic"),
            "Context-agnostic vs context-aware fit on the same points: score against prompt "
            "length for the fitted model whose prompts run furthest past its context limit "
            "(top), and predicted against observed for every fitted point (bottom).",
            "Paper Figure 1 (motivation): a context-agnostic law cannot follow the collapse "
            "of performance once prompts exceed the context limit.",
        )
    ]
    for k, task in enumerate(TASKS):
        out.append(
            Output(
                f"fig{2 + k}_contour_{task}",
                "ctxscale.outputs.figures:fig_contour",
                ("points", "fit_main"),
                f"{task_label(task)}: the fitted law over training compute C and prompt length "
                f"n_pmt at n_ctx = 8k (or the available n_ctx closest to it), one panel per model "
                f"size, observed points coloured by score on the same scale.",
                "Paper Figures 2-4: contours of the fit over (C, n_pmt) at n_ctx = 8k for "
                "Llama-2-7B (C ~ 7.8e22) and Llama-2-13B (C ~ 1.5e23); in-distribution MAE "
                "{mae}.",
                task=task,
                paper_mae="in_distribution",
            )
        )
    for k, task in enumerate(TASKS):
        out.append(
            Output(
                f"fig{5 + k}_extrapolation_{task}",
                "ctxscale.outputs.figures:fig_extrapolation",
                ("points", "fit_extrapolation", "config"),
                f"{task_label(task)}: long-context generalisation at the largest n_ctx; the law "
                f"fitted on points with n_pmt below the cut-off (open markers), held-out points "
                f"filled, their MAE in the legend.",
                "Paper Figures 5-7: at n_ctx = 128k, the law fitted on n_pmt < 10k predicts "
                "held-out points up to 128k; extrapolation MAE {mae}.",
                task=task,
                paper_mae="extrapolation",
            )
        )
    out += [
        Output(
            "ood_compute",
            "ctxscale.outputs.figures:fig_ood_compute",
            ("points", "fit_main", "ood"),
            "Out-of-distribution compute: observed scores (dots) and the law's predictions "
            "(bars) of families the law was not fitted on, across training compute; the fitted "
            "families in grey.",
            "Paper: the law fitted on Llama-2 7B/13B predicts Qwen-2.5-0.5B, Gemma-2 (2B, 9B, "
            "27B) and Llama-2-70B across three orders of magnitude of compute (shown as a "
            "figure; no per-model numbers published).",
            needs_role="ood",
        ),
        Output(
            "yarn_vs_pi",
            "ctxscale.outputs.figures:fig_yarn_vs_pi",
            ("points", "fit_main", "technique"),
            "Context-extension technique: the model extended by another technique (squares, "
            "dashed prediction) beside the YaRN model of the same size and closest n_ctx (dots, "
            "solid prediction).",
            "Paper: Llama-2-7B extended with positional interpolation instead of YaRN follows "
            "the same law (shown as a figure; no numbers published).",
            needs_role="technique",
        ),
        Output(
            "residuals",
            "ctxscale.outputs.figures:fig_residuals",
            ("points", "fit_main"),
            "Residuals of the main fit against prompt length (top) and context limit (bottom); "
            "open markers are prompts longer than the context limit.",
            "Not in the paper: a diagnostic of the main fit.",
        ),
        Output(
            "params",
            "ctxscale.outputs.figures:fig_params",
            ("fit_main",),
            "Fitted parameters of the main fit per task (A, alpha, B, beta; C_c and n_pmt_c are "
            "fixed at reference scales of the data) and the identifiable combinations "
            "log10(A C_c^-alpha), log10(B n_pmt_c^-beta), with bootstrap confidence intervals.",
            "Not in the paper: the fitted values are not published.",
        ),
    ]
    return out


FIGURES: dict[str, Output] = {f.name: f for f in _figures()}

TABLES: dict[str, Output] = {
    t.name: t
    for t in (
        Output(
            "mae",
            "ctxscale.outputs.tables:table_mae",
            (
                "points",
                "fit_main",
                "fit_extrapolation",
                "fit_loss_variant",
                "fit_floor_variant",
                "fit_coupling_variant",
                "config",
            ),
            "Mean absolute error per task: in-distribution (main fit on every fitted point; "
            "with --fit-loss-variant also the same fit with the other loss, e.g. absolute "
            "error, which the MAE itself measures; with --fit-floor-variant and "
            "--fit-coupling-variant also the law with a fitted floor and with its prompt "
            "term coupled to compute, variants beside the paper's form) "
            "and long-context extrapolation (fit on n_pmt below the cut-off, scored on the "
            "held-out points of every model, and of the longest-context model alone: the "
            "paper's extrapolation figures use n_ctx = 128k, where held-out points lie inside "
            "the context limit), 95% bootstrap CI over points.",
            optional=("fit_loss_variant", "fit_floor_variant", "fit_coupling_variant", "config"),
            cells="ctxscale.outputs.tables:cells_mae",
        ),
        Output(
            "ablation",
            "ctxscale.outputs.tables:table_ablation",
            ("points", "fit_main", "fit_no_penalty", "fit_penalty_variant", "config"),
            "Penalty ablation: MAE of the fits with and without the context penalty on "
            "prompts within the context limit, beyond it, and all (the paper reports "
            "arithmetic only); with --fit-penalty-variant also the other penalty form "
            "(centre fitted, or fixed at n_ctx).",
            optional=("fit_penalty_variant", "config"),
            cells="ctxscale.outputs.tables:cells_ablation",
        ),
        Output(
            "params",
            "ctxscale.outputs.tables:table_params",
            ("points", "fit_main"),
            "Fitted parameters of the main fit with bootstrap CIs, and the identifiable "
            "combinations log10(A C_c^-alpha) and log10(B n_pmt_c^-beta): A and C_c (B and "
            "n_pmt_c) enter the law only through these, so the fit fixes C_c and n_pmt_c at "
            "reference scales of the data (geometric means) and fits A, alpha, B, beta.",
            cells="ctxscale.outputs.tables:cells_params",
        ),
        Output(
            "metric_check",
            "ctxscale.outputs.tables:table_metric_check",
            ("scores_corrected",),
            "Metric check: the datasets whose original metric cannot score every answer they "
            "ask for (DeepMind's modules: the original's math_equiv scores True/False answers "
            "as 0, ignores signs and reads only an expression's last number), scored again "
            "from the same outputs by a corrected metric. Mean score over every model and "
            "shot count by each metric, and the largest change of one (model, dataset, "
            "n_shots) score. The fits use the original metric, as the paper.",
            optional=(),
            cells="ctxscale.outputs.tables:cells_metric_check",
        ),
    )
}


def figure_names(tasks: Iterable[str], roles: Iterable[str]) -> list[str]:
    """The figures a run can draw, given its tasks and the roles of its families.

    A per-task figure needs that task's points; a figure that needs a role (``ood``,
    ``technique``) needs a family of that role. Every table is always available.
    """
    tasks, roles = set(tasks), set(roles)
    return [
        f.name
        for f in FIGURES.values()
        if (f.task is None or f.task in tasks) and (f.needs_role is None or f.needs_role in roles)
    ]
