"""``ctxscale cap-prompts``: lower ``max_new_tokens`` of prompts files to a configured cap.

A default-scale setting (config ``data.max_new_tokens``): the paper's 400 new tokens for
arithmetic let a small model that never writes the stop string generate 400 tokens, and a
batch runs as long as its longest row, which on 2 CPU cores costs minutes per shard. The
cap is written into the prompts file itself (and from there into every shard's settings
line), so the artifacts say what was run. ``null`` (the paper preset) keeps the registry's
values.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ctxscale.errors import CtxscaleError


def effective_max_new_tokens(registry_value: int, cap: int | None) -> int:
    """The max new tokens a dataset runs with: its registry value, lowered to ``cap`` if set."""
    return registry_value if cap is None else min(registry_value, cap)


def cap_prompts(path: str | Path, cap: int) -> bool:
    """Cap one prompts file in place (atomically); True when it changed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CtxscaleError(f"{path}: not a readable prompts file ({exc})") from None
    current = doc.get("max_new_tokens")
    if not isinstance(current, int):
        raise CtxscaleError(f"{path}: no integer 'max_new_tokens'")
    if effective_max_new_tokens(current, cap) == current:
        return False
    doc["max_new_tokens"] = effective_max_new_tokens(current, cap)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1) + "\n"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def _run(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 1:
        raise CtxscaleError("--max-new-tokens must be at least 1")
    changed = sum(cap_prompts(p, args.max_new_tokens) for p in args.prompts)
    print(f"cap-prompts: {changed} of {len(args.prompts)} files capped at {args.max_new_tokens}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cap-prompts",
        help="cap max_new_tokens of prompts files (default-scale setting data.max_new_tokens)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("prompts", nargs="+", help="prompts files (results/prompts/...json)")
    p.add_argument("--max-new-tokens", type=int, required=True, help="the cap")
    p.set_defaults(func=_run)
