"""CLI: ``ctxscale figure``, ``ctxscale table`` and ``ctxscale report``.

Every input is an explicit path option (``--points``, ``--fit-main``, ...) so that a
workflow rule can declare exactly the files an output depends on; an output whose
inputs are missing gets one error line naming the option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctxscale import catalog
from ctxscale.results import INPUT_OPTIONS, Inputs, Results, option_flag

FIGURE_NAMES = tuple(catalog.FIGURES)
TABLE_NAMES = tuple(catalog.TABLES)


def expected_figures(tasks: set[str] | list[str], roles: set[str] | list[str]) -> list[str]:
    """The figures a run can draw, given its tasks and the roles of its families."""
    return catalog.figure_names(tasks, roles)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs (give the ones the output needs)")
    group.add_argument(
        "--results",
        metavar="DIR",
        help="default for every input not given: its standard file under DIR (points.csv, "
        "fits/*.json, predictions/*.csv, manifest.tsv) where it exists",
    )
    for name, help_text in INPUT_OPTIONS.items():
        group.add_argument(option_flag(name), dest=name, metavar="PATH", help=help_text)


def _figure(args: argparse.Namespace) -> int:
    from ctxscale.figures import render_figure

    res = Results(Inputs.from_args(args), f"figure {args.name}")
    paths, seconds = render_figure(args.name, res, Path(args.out))
    print(f"wrote {', '.join(map(str, paths))} ({seconds:.2f} s)", file=sys.stderr)
    return 0


def _table(args: argparse.Namespace) -> int:
    from ctxscale.tables import render_table

    res = Results(Inputs.from_args(args), f"table {args.name}")
    paths, seconds = render_table(args.name, res, Path(args.out))
    print(f"wrote {', '.join(map(str, paths))} ({seconds:.2f} s)", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from ctxscale.report import write_report

    res = Results(Inputs.from_args(args), "report")
    figures_dir = Path(args.figures_dir) if args.figures_dir else None
    paths = write_report(res, Path(args.out), figures_dir)
    print(f"wrote {', '.join(map(str, paths))}", file=sys.stderr)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "figure",
        help="render one figure (PDF and PNG)",
        description="Render one figure as PDF and PNG (byte-identical on every run).",
    )
    p.add_argument("name", choices=FIGURE_NAMES, metavar="NAME", help=", ".join(FIGURE_NAMES))
    p.add_argument("--out", required=True, help="output path, figures/NAME.pdf (.png beside)")
    _add_inputs(p)
    p.set_defaults(func=_figure)

    p = subparsers.add_parser(
        "table",
        help="write one table (CSV and Markdown)",
        description="Write one table as CSV (fixed float format) and Markdown.",
    )
    p.add_argument("name", choices=TABLE_NAMES, metavar="NAME", help=", ".join(TABLE_NAMES))
    p.add_argument("--out", required=True, help="output path, results/tables/NAME.csv (.md beside)")
    _add_inputs(p)
    p.set_defaults(func=_table)

    p = subparsers.add_parser(
        "report",
        help="write the paper report (Markdown and self-contained HTML)",
        description="Write paper/report.md and paper/report.html: every figure and table "
        "beside the paper's numbers, the scale, the configuration and the manifest hash.",
    )
    p.add_argument("--out", required=True, help="output path, paper/report.md (.html beside)")
    p.add_argument(
        "--figures-dir",
        "--figures",
        dest="figures_dir",
        metavar="DIR",
        help="where `ctxscale figure` wrote the PNGs (linked from the Markdown, embedded in "
        "the HTML); figures absent there are rendered in memory",
    )
    _add_inputs(p)
    p.set_defaults(func=_report)


def inputs_markdown() -> str:
    """The Markdown table of every output's input options, as docs/figures.md lists it."""
    rows = ["| command | output | input options |", "| --- | --- | --- |"]
    for kind, registry, out in (
        ("figure", catalog.FIGURES, "figures/{}.pdf + .png"),
        ("table", catalog.TABLES, "results/tables/{}.csv + .md"),
    ):
        for name, entry in registry.items():
            opts = ", ".join(
                f"`{option_flag(i)}`" + (" (optional)" if i in entry.optional else "")
                for i in entry.inputs
            )
            rows.append(f"| `ctxscale {kind} {name}` | `{out.format(name)}` | {opts} |")
    every = ", ".join(f"`{option_flag(i)}`" for i in INPUT_OPTIONS)
    rows.append(
        f"| `ctxscale report` | `paper/report.md` + `.html` | {every}, `--figures-dir` "
        "(every figure PNG in it) |"
    )
    return "\n".join(rows) + "\n"
