"""The ``ctxscale`` command line: one subcommand per stage of the pipeline.

Each stage module exposes ``add_cli(subparsers)``, which adds its subcommand(s) and
sets ``func`` on the parser; ``func(args)`` returns an exit status. A
:class:`~ctxscale.errors.CtxscaleError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from ctxscale import __version__
from ctxscale.errors import CtxscaleError

# Modules that contribute subcommands, in the order they appear in --help.
_COMMAND_MODULES: tuple[str, ...] = (
    "ctxscale.config",
    "ctxscale.data.tasks",
    "ctxscale.mini.cli",
    "ctxscale.data.prompts_cap",
    "ctxscale.inference.cli",
    "ctxscale.inference.dataset",
    "ctxscale.inference.plan",
    "ctxscale.analysis.aggregate",
    "ctxscale.analysis.fit_cli",
    "ctxscale.outputs.manifest",
    "ctxscale.outputs.render",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctxscale",
        description="Context-aware scaling laws: fit, predict, evaluate, report.",
    )
    parser.add_argument("--version", action="version", version=f"ctxscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_cli(sub)
    _plain_text(parser)
    return parser


def _plain_text(parser: argparse.ArgumentParser) -> None:
    """Drop reST literal markup (double backticks) that module docstrings lend to --help."""
    if parser.description:
        parser.description = parser.description.replace("``", "")
    for action in parser._actions:
        if isinstance(action.help, str):
            action.help = action.help.replace("``", "")
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _plain_text(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CtxscaleError as exc:
        print(f"ctxscale {args.command}: error: {exc}", file=sys.stderr)
        return 2


def run() -> None:
    """The ``ctxscale`` console script: :func:`main`, then exit with its status.

    Before the process ends, every object alive is moved out of the garbage collector's
    reach (``gc.freeze``): otherwise the interpreter's last collection walks the whole
    object graph of torch and transformers, about a second per job (measured 1.3 s ->
    0.3 s after importing the transformers backend), for memory the exit frees anyway.
    """
    status = main()
    gc.freeze()
    sys.exit(status)
