"""CLI: ``ctxscale figure``, ``ctxscale table`` and ``ctxscale report``.

Every input is an explicit path option (``--points``, ``--fit-main``, ...) so that a
workflow rule can declare exactly the files an output depends on; an output whose
inputs are missing gets one error line naming the option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

from ctxscale import catalog
from ctxscale.outputs.results import INPUT_OPTIONS, Inputs, Results, option_flag

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


class _Kind(NamedTuple):
    """What ``ctxscale figure`` / ``ctxscale table`` make, and the function that writes one."""

    registry: dict[str, catalog.Output]
    render: str
    help: str
    description: str
    out_help: str
    files: str


_KINDS = {
    "figure": _Kind(
        catalog.FIGURES,
        "ctxscale.outputs.figures:render_figure",
        "render one figure (PDF and PNG)",
        "Render one figure as PDF and PNG (byte-identical on every run).",
        "output path, figures/NAME.pdf (.png beside)",
        "figures/{}.pdf + .png",
    ),
    "table": _Kind(
        catalog.TABLES,
        "ctxscale.outputs.tables:render_table",
        "write one table (CSV and Markdown)",
        "Write one table as CSV (fixed float format) and Markdown.",
        "output path, results/tables/NAME.csv (.md beside)",
        "results/tables/{}.csv + .md",
    ),
}


def _render(args: argparse.Namespace) -> int:
    render = catalog.resolve(_KINDS[args.kind].render)
    res = Results(Inputs.from_args(args), f"{args.kind} {args.name}")
    paths, seconds = render(args.name, res, Path(args.out))
    print(f"wrote {', '.join(map(str, paths))} ({seconds:.2f} s)", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from ctxscale.outputs.report import write_report

    res = Results(Inputs.from_args(args), "report")
    figures_dir = Path(args.figures_dir) if args.figures_dir else None
    paths = write_report(res, Path(args.out), figures_dir)
    print(f"wrote {', '.join(map(str, paths))}", file=sys.stderr)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    for kind, spec in _KINDS.items():
        p = subparsers.add_parser(kind, help=spec.help, description=spec.description)
        names = tuple(spec.registry)
        p.add_argument("name", choices=names, metavar="NAME", help=", ".join(names))
        p.add_argument("--out", required=True, help=spec.out_help)
        _add_inputs(p)
        p.set_defaults(func=_render, kind=kind)

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
    for kind, spec in _KINDS.items():
        for name, entry in spec.registry.items():
            opts = ", ".join(
                f"`{option_flag(i)}`" + (" (optional)" if i in entry.optional else "")
                for i in entry.inputs
            )
            rows.append(f"| `ctxscale {kind} {name}` | `{spec.files.format(name)}` | {opts} |")
    every = ", ".join(f"`{option_flag(i)}`" for i in INPUT_OPTIONS)
    rows.append(
        f"| `ctxscale report` | `paper/report.md` + `.html` | {every}, `--figures-dir` "
        "(every figure PNG in it) |"
    )
    return "\n".join(rows) + "\n"
