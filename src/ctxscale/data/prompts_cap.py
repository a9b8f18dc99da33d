"""The new-token cap: lower ``max_new_tokens`` of prompts files to a configured value.

A default-scale setting (config ``data.max_new_tokens``): the paper's 400 new tokens for
arithmetic let a small model that never writes the stop string generate 400 tokens, and a
batch runs as long as its longest row, which on 2 CPU cores costs minutes per shard. The
cap is written into each prompts file when ``ctxscale prepare --max-new-tokens`` writes it
(and from there into every shard's settings line), so the artifacts say what was run.
``null`` (the paper preset) keeps the registry's values. ``ctxscale cap-prompts`` applies
the same cap to an existing prompts file, writing a new one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ctxscale.errors import CtxscaleError


def effective_max_new_tokens(registry_value: int, cap: int | None) -> int:
    """The max new tokens a dataset runs with: its registry value, lowered to ``cap`` if set."""
    return registry_value if cap is None else min(registry_value, cap)


def capped(doc: dict[str, Any], cap: int | None, where: str = "prompts file") -> dict[str, Any]:
    """``doc`` with ``max_new_tokens`` lowered to ``cap`` (a new dict; ``doc`` is unchanged)."""
    current = doc.get("max_new_tokens")
    if not isinstance(current, int):
        raise CtxscaleError(f"{where}: no integer 'max_new_tokens'")
    return {**doc, "max_new_tokens": effective_max_new_tokens(current, cap)}


def cap_prompts(src: str | Path, out: str | Path, cap: int) -> bool:
    """Write prompts file ``src`` to ``out`` with the cap applied; True when it lowered it."""
    from ctxscale.data.tasks import write_json

    src = Path(src)
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CtxscaleError(f"{src}: not a readable prompts file ({exc})") from None
    new = capped(doc, cap, str(src))
    write_json(new, Path(out))
    return new["max_new_tokens"] != doc["max_new_tokens"]


def _run(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 1:
        raise CtxscaleError("--max-new-tokens must be at least 1")
    changed = cap_prompts(args.prompts, args.out, args.max_new_tokens)
    print(f"cap-prompts: {args.prompts} -> {args.out} ({'capped' if changed else 'unchanged'})")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cap-prompts",
        help="write a prompts file with max_new_tokens capped (ctxscale prepare "
        "--max-new-tokens does this as it writes)",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("prompts", help="prompts file (results/prompts/...json)")
    p.add_argument("--out", required=True, help="the capped prompts file to write")
    p.add_argument("--max-new-tokens", type=int, required=True, help="the cap")
    p.set_defaults(func=_run)
