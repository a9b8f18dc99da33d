"""``results/manifest.tsv``: path, size and sha256 of every artifact, sorted by path.

Two runs of the same config and seed must produce the same manifest byte for byte;
CI compares the manifests of two runs from clean (scripts/check.sh).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from ctxscale import artifacts
from ctxscale.config import load_config
from ctxscale.errors import CtxscaleError

HEADER = "path\tbytes\tsha256\n"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    tmp.replace(out)
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
