"""The command line itself: version, help, and the one-line error contract."""

import subprocess
import sys

from ctxscale import __version__
from ctxscale.cli import main


def test_version_is_printed(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: ctxscale" in capsys.readouterr().out


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "ctxscale", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("ctxscale ")


def _parsers(parser, path=("ctxscale",)):
    """Every (command path, parser) of the CLI, subcommands included."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_has_help_and_no_rest_markup():
    import argparse

    from ctxscale.cli import build_parser

    missing, markup = [], []
    for path, parser in _parsers(build_parser()):
        if "``" in (parser.description or ""):
            markup.append(" ".join(path))
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{' '.join(path)} {action.option_strings or action.dest}")
            elif "``" in action.help:
                markup.append(f"{' '.join(path)} {action.option_strings or action.dest}")
    assert missing == [] and markup == []


def test_tasks_alone_lists_the_datasets(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t")[:2] == ["name", "task"]
    assert any(line.startswith("gsm8k\tarithmetic") for line in out)
