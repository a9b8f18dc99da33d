"""``ctxscale fit`` and ``ctxscale predict``: the law from the command line.

ctxscale fit POINTS --out FIT.json [--penalty NAME | --no-penalty] [--bootstrap N] ...
ctxscale fit POINTS --out FIT.json --config CONFIG [--variant NAME]   # a workflow fit
ctxscale predict FIT.json POINTS --out PRED.csv [--where COLUMN=VALUE ...]

A setting comes from its flag, else (with ``--config``) from the config's ``fit`` block
(``artifacts.fit_settings``), else from the config schema's default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctxscale import artifacts
from ctxscale.analysis import law as lawmod
from ctxscale.analysis.fit import (
    DEFAULT_BOUNDS,
    DEFAULT_CI_LEVEL,
    DEFAULT_HUBER_DELTA,
    DEFAULT_LOSS,
    DEFAULT_SEED,
    LOSSES,
    FitSettings,
    fit_table,
    predict_points,
    read_fit,
)
from ctxscale.analysis.points import (
    apply_where,
    load_points,
    parse_where,
    read_table,
    validate_points,
)
from ctxscale.config import default, load_config
from ctxscale.errors import CtxscaleError


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``fit`` and ``predict`` subcommands."""
    p = subparsers.add_parser(
        "fit",
        help="fit the context-aware law per task to a points table",
        description="Fit the law per task (differential evolution + local optimiser) to a "
        "points table with columns task, C, n_pmt, n_ctx, score (CSV or Parquet); write "
        "FIT.json with parameters, identifiable combinations, bootstrap CIs and MAE.",
    )
    p.add_argument("points", help="points table (.csv, .parquet)")
    p.add_argument("--out", required=True, help="FIT.json to write")
    p.add_argument(
        "--config",
        help="experiment config (YAML): fit with its fit block's settings, as the workflow "
        "does; a flag given here overrides its setting",
    )
    p.add_argument(
        "--variant",
        choices=artifacts.FITS,
        help="with --config: which of the workflow's fits (default: main)",
    )
    p.add_argument(
        "--law",
        help=f"one of {', '.join(lawmod.LAWS)} (default: {FitSettings.law})",
    )
    # Setting flags default to None: a flag given wins over --config, which wins over the
    # schema's default (FitSettings' defaults and fit.bootstrap).
    pen = p.add_mutually_exclusive_group()
    pen.add_argument(
        "--penalty",
        help=f"one of {', '.join(lawmod.PENALTIES)} (default: {lawmod.DEFAULT_PENALTY})",
    )
    pen.add_argument(
        "--no-penalty",
        dest="penalty",
        action="store_const",
        const="none",
        help="same as --penalty none (the ablation)",
    )
    p.add_argument(
        "--penalty-width",
        type=float,
        help="width of the log_sigmoid penalty in log(n_pmt/n_ctx) units "
        f"(default: {lawmod.DEFAULT_PENALTY_WIDTH})",
    )
    p.add_argument("--loss", help=f"one of {', '.join(LOSSES)} (default: {DEFAULT_LOSS})")
    p.add_argument(
        "--huber-delta",
        type=float,
        default=DEFAULT_HUBER_DELTA,
        help="Huber transition (%(default)s)",
    )
    p.add_argument("--seed", type=int, help=f"seed (default: {DEFAULT_SEED})")
    p.add_argument(
        "--bootstrap",
        type=int,
        metavar="N",
        help=f"bootstrap resamples for CIs, 0 for none (default: {default('fit.bootstrap')})",
    )
    p.add_argument(
        "--ci-level", type=float, default=DEFAULT_CI_LEVEL, help="CI level (default: %(default)s)"
    )
    p.add_argument(
        "--holdout-npmt",
        type=float,
        default=None,
        metavar="X",
        help="fit on n_pmt < X only; report MAE on the held-out rest",
    )
    p.add_argument(
        "--floor",
        action="store_const",
        const=True,
        default=None,
        help="also fit a floor: floor + (1 - floor) x the law (a variant beside the paper's "
        "form, for scores that do not fall to 0)",
    )
    p.add_argument(
        "--coupling",
        action="store_const",
        const=True,
        default=None,
        help="also fit gamma: the prompt term's scale B becomes B (C / C_c)^gamma (a variant "
        "beside the paper's form, for models whose compute changes how many demonstrations "
        "they need)",
    )
    p.add_argument(
        "--bound",
        action="append",
        default=[],
        nargs=3,
        metavar=("NAME", "LOW", "HIGH"),
        help="search bounds of a free parameter (repeatable), e.g. --bound alpha 0 10; "
        f"defaults: {', '.join(f'{k} {lo:g} {hi:g}' for k, (lo, hi) in DEFAULT_BOUNDS.items())}",
    )
    _add_where(p)
    p.add_argument("--tasks", default=None, help="comma-separated tasks to fit (default: all)")
    p.add_argument(
        "--jobs", type=int, default=None, help="bootstrap worker processes (default: all CPUs)"
    )
    p.set_defaults(func=run_fit)

    q = subparsers.add_parser(
        "predict",
        help="add the fitted law's prediction to a points table",
        description="Write POINTS with a 'predicted' column from FIT.json (same law/penalty).",
    )
    q.add_argument("fit", help="FIT.json written by ctxscale fit")
    q.add_argument("points", help="table with columns task, C, n_pmt, n_ctx (.csv, .parquet)")
    q.add_argument("--out", required=True, help="PRED.csv (or .parquet) to write")
    _add_where(q)
    q.set_defaults(func=run_predict)


def parse_bounds(items: list[list[str]]) -> dict[str, tuple[float, float]]:
    """``--bound NAME LOW HIGH`` values as a bounds mapping (names checked)."""
    out = {}
    for name, lo, hi in items:
        if name not in DEFAULT_BOUNDS:
            known = ", ".join(DEFAULT_BOUNDS)
            raise CtxscaleError(f"--bound: unknown parameter {name!r} (known: {known})")
        try:
            out[name] = (float(lo), float(hi))
        except ValueError:
            raise CtxscaleError(f"--bound {name}: {lo!r} {hi!r} are not numbers") from None
    return out


def _add_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="keep only rows with COLUMN == VALUE (repeatable), e.g. role=fit",
    )


def fit_settings(args: argparse.Namespace) -> FitSettings:
    """The settings of ``ctxscale fit``: each flag given, else the ``--config`` fit's
    (``artifacts.fit_settings``), else the defaults (the schema's ``fit.bootstrap``)."""
    if args.variant and not args.config:
        raise CtxscaleError("--variant names a fit of the workflow: give --config too")
    fields: dict = {"bootstrap": default("fit.bootstrap")}
    if args.config:
        fields.update(artifacts.fit_settings(load_config(args.config), args.variant or "main"))
    flags = ("law", "penalty", "penalty_width", "loss", "seed", "bootstrap", "holdout_npmt")
    flags += ("floor", "coupling")
    fields.update({k: getattr(args, k) for k in flags if getattr(args, k) is not None})
    bounds = {**DEFAULT_BOUNDS, **fields.pop("bounds", {}), **parse_bounds(args.bound)}
    settings = FitSettings(
        **fields, huber_delta=args.huber_delta, ci_level=args.ci_level, bounds=bounds
    )
    settings.check()
    return settings


def run_fit(args: argparse.Namespace) -> int:
    settings = fit_settings(args)
    if args.jobs is not None and args.jobs < 1:
        raise CtxscaleError(f"--jobs must be >= 1, got {args.jobs}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    df = load_points(args.points, where=parse_where(args.where), tasks=tasks)
    result = fit_table(df, settings, tasks=tasks, n_jobs=args.jobs, progress=sys.stderr.isatty())
    result.write(args.out)
    _print_summary(result)
    print(f"wrote {args.out}")
    return 0


def _print_summary(result) -> None:
    """One line per task: points, MAE, held-out MAE, exponents with their intervals."""

    def exponent(tf, key: str) -> str:
        value = tf.identifiable.get(key)
        if value is None:
            return "-"
        if tf.ci is None:
            return f"{value:.3f}"
        lo, hi = tf.ci["identifiable"][key]
        return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"

    keys = ("alpha", "beta", "gamma") if result.settings.coupling else ("alpha", "beta")
    print(
        f"{'task':<16} {'n_points':>8} {'mae':>8} {'mae_heldout':>11}  "
        + " ".join(f"{k + ' [CI]':<24}" for k in keys).rstrip()
    )
    for name in sorted(result.tasks):
        t = result.tasks[name]
        held = t.holdout["mae_heldout"] if t.holdout else None
        held_s = f"{held:.4f}" if held is not None else "-"
        print(
            f"{name:<16} {t.n_points:>8d} {t.mae:>8.4f} {held_s:>11}  "
            + " ".join(f"{exponent(t, k):<24}" for k in keys).rstrip()
        )


def run_predict(args: argparse.Namespace) -> int:
    fit = read_fit(args.fit)
    source = str(args.points)
    rows = apply_where(read_table(args.points), parse_where(args.where), source)
    # Validate with the file's row numbers, then write the rows as read plus the prediction.
    df = validate_points(rows, source, require_score=False)
    out_df = rows.reset_index(drop=True).copy()
    out_df["predicted"] = predict_points(fit, df, source=source)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        out_df.to_parquet(out, index=False)
    else:
        out_df.to_csv(out, index=False, float_format="%.10g", lineterminator="\n")
    print(f"wrote {args.out} ({len(out_df)} rows)")
    return 0
