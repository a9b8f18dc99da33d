"""``results/manifest.tsv``: path, size and sha256 of every artifact, sorted by path.

Two runs of the same config and seed must produce the same manifest byte for byte;
CI compares the manifests of two runs from clean (scripts/check.sh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctxscale import artifacts
from ctxscale.config import load_config
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_write, sha256_file

HEADER = "path\tbytes\tsha256\n"


def manifest_text(paths: list[str], root: str | Path = ".") -> str:
    """The manifest of ``paths`` (relative to ``root``); a missing artifact is an error."""
    root = Path(root)
    lines = [HEADER]
    for rel in sorted(set(paths)):
        full = root / rel
        if not full.is_file():
            raise CtxscaleError(f"manifest: artifact {rel} is missing")
        lines.append(f"{rel}\t{full.stat().st_size}\t{sha256_file(full)}\n")
    return "".join(lines)


def write_manifest(paths: list[str], out: str | Path, root: str | Path = ".") -> int:
    text = manifest_text(paths, root)
    atomic_write(out, text)
    return text.count("\n") - 1


def _run(args: argparse.Namespace) -> int:
    paths = args.paths or artifacts.all_artifacts(load_config(args.config))
    n = write_manifest([p for p in paths if p != args.out], args.out)
    print(f"manifest: {n} artifacts -> {args.out}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "manifest",
        help="write path, bytes and sha256 of every artifact of a config (sorted TSV)",
        description=__doc__.split("\n\n")[0],
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="list the artifacts of this config (what the workflow makes)")
    src.add_argument("--paths", nargs="+", help="hash these files instead")
    p.add_argument("--out", default=artifacts.MANIFEST, help="manifest file (TSV)")
    p.set_defaults(func=_run)
