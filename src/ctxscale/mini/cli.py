"""``ctxscale mini train`` and ``ctxscale mini extend``: the workflow's training steps."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ctxscale.config import load_config
from ctxscale.errors import CtxscaleError
from ctxscale.mini import world


def _setup(args: argparse.Namespace) -> dict:
    config = load_config(args.config)
    if not world.active(config):
        raise CtxscaleError("config: miniworld.activate is false; nothing to train")
    import torch

    torch.set_num_threads(int(args.threads or config["miniworld"]["threads"]))
    return config


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _train(args: argparse.Namespace) -> int:
    from ctxscale.mini import train

    config = _setup(args)
    mw = config["miniworld"]
    families = world.trained_families(mw)
    if args.family not in families:
        known = ", ".join(families)
        raise CtxscaleError(f"unknown miniature family {args.family!r}; trained families: {known}")
    for path in train.train_family(mw, args.family, int(mw["seed"]), _log):
        print(path)
    return 0


def _extend(args: argparse.Namespace) -> int:
    from ctxscale.mini import train

    config = _setup(args)
    mw = config["miniworld"]
    for name in args.model:
        if world.by_name(mw, name).method is None:
            raise CtxscaleError(f"{name} is a ladder checkpoint, not a context extension")
    for name in args.model:
        print(train.extend(mw, name, int(mw["seed"]), _log))
    return 0


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "mini",
        help="train the miniature world's models (docs/miniworld.md)",
        description="Train a miniature family's compute ladder, or fine-tune a context "
        "extension; checkpoints are written under " + world.MODELS_DIR + ".",
    )
    sub = p.add_subparsers(dest="mini_command", metavar="STEP", required=True)
    t = sub.add_parser("train", help="one family's run: a checkpoint per ladder step")
    t.add_argument("--config", required=True, help="resolved experiment config (YAML)")
    t.add_argument("--family", required=True, help="family name in miniworld.families")
    t.add_argument("--threads", type=int, help="torch threads (default: miniworld.threads)")
    t.set_defaults(func=_train)
    e = sub.add_parser("extend", help="fine-tune context extensions (YaRN or PI)")
    e.add_argument("--config", required=True, help="resolved experiment config (YAML)")
    e.add_argument("--model", required=True, nargs="+", help="extension checkpoint name(s)")
    e.add_argument("--threads", type=int, help="torch threads (default: miniworld.threads)")
    e.set_defaults(func=_extend)
