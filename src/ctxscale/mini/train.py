"""Train the miniature world's models: one run per family, a decay branch per ladder step.

The schedule is warmup-stable-decay: linear warmup, a constant learning rate, and for every
checkpoint of the compute ladder a branch that copies the run and decays the rate linearly
to zero over ``decay_fraction`` of its steps. Every level of the ladder so costs one run
plus its short branch. Context extension fine-tunes a checkpoint at ``factor`` times the
training length after switching its rotary settings (YaRN or positional interpolation).

Deterministic: the seed fixes the weights and the data stream, the thread count is fixed,
and the checkpoint files are written with sorted, fixed content, so the same config gives
the same bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ctxscale.mini import corpus, export, world
from ctxscale.mini.model import MiniConfig, MiniLM


def get_lr(
    step: int, *, lr: float, warmup: int, decay_start: int | None, decay_steps: int
) -> float:
    """Warmup-stable-decay: linear warmup, constant, linear decay to 0 after ``decay_start``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if decay_start is not None and step >= decay_start:
        return lr * max(0.0, 1.0 - (step - decay_start + 1) / decay_steps)
    return lr


def make_optimizer(model: MiniLM, train: dict) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only.

    ``foreach``: one multi-tensor update per step instead of a loop over the parameters;
    the same arithmetic (the checkpoints are byte-identical), a few percent of a step less.
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": float(train["weight_decay"])},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=float(train["lr"]),
        betas=(float(train["beta1"]), float(train["beta2"])),
        foreach=True,
    )


def train_step(
    model: MiniLM,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    batch: int,
    length: int,
    mix: dict[str, float],
    lr: float,
    clip: float,
) -> float:
    """One optimiser step on a fresh batch; returns the loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    x, y, m = (torch.from_numpy(a) for a in corpus.batch(rng, batch, length, mix))
    logits = model(x)
    loss = F.cross_entropy(logits[m], y[m])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss.detach())


def _shape_config(shape: dict, train: dict) -> MiniConfig:
    return MiniConfig(
        vocab_size=len(corpus.vocab().tokens),
        rope_theta=float(train["rope_theta"]),
        max_position_embeddings=int(train["n_ctx"]),
        **shape,
    )


def _info(ck: world.Checkpoint, seed: int) -> dict[str, Any]:
    return {
        "name": ck.name,
        "family": ck.family,
        "N": ck.N,
        "D": ck.D,
        "n_ctx": ck.n_ctx,
        "steps": ck.steps,
        "decay_steps": ck.decay_steps,
        "method": ck.method,
        "factor": ck.factor,
        "base": ck.base,
        "extend_steps": ck.extend_steps,
        "seed": seed,
    }


Log = Callable[[str], None]


def train_family(mw: dict, family: str, seed: int, log: Log = print) -> list[str]:
    """Train one family's run and write each ladder checkpoint; returns their directories."""
    train = mw["train"]
    ladder = world.family_checkpoints(mw, family)
    if not ladder:
        raise ValueError(f"family {family!r} has no ladder to train")
    torch.manual_seed(seed)
    model = MiniLM(_shape_config(ladder[0].shape, train))
    n_real = model.num_params(non_embedding=True)
    if n_real != ladder[0].N:
        raise AssertionError(f"N {ladder[0].N} planned but the model has {n_real}")
    opt = make_optimizer(model, train)
    rng = np.random.default_rng([seed, 1])
    L, batch, warmup = int(train["n_ctx"]), int(train["batch_size"]), int(train["warmup"])
    mix, clip, lr = dict(train["mix"]), float(train["clip"]), float(train["lr"])
    out, step, t0 = [], 0, time.time()
    for ck in ladder:
        while step < ck.steps:
            loss = train_step(
                model,
                opt,
                rng,
                batch,
                L,
                mix,
                get_lr(step, lr=lr, warmup=warmup, decay_start=None, decay_steps=1),
                clip,
            )
            step += 1
            if step % 250 == 0:
                log(f"{family}: step {step} loss {loss:.3f} ({time.time() - t0:.0f} s)")
        # the decay branch: a copy of the run (weights, optimiser state, data stream)
        branch = copy.deepcopy(model)
        bopt = make_optimizer(branch, train)
        bopt.load_state_dict(copy.deepcopy(opt.state_dict()))
        brng = copy.deepcopy(rng)
        for j in range(ck.decay_steps):
            blr = get_lr(
                ck.steps + j, lr=lr, warmup=warmup, decay_start=ck.steps, decay_steps=ck.decay_steps
            )
            loss = train_step(branch, bopt, brng, batch, L, mix, blr, clip)
        log(f"{ck.name}: {ck.steps}+{ck.decay_steps} steps, loss {loss:.3f}, D={ck.D}")
        export.save_pretrained(branch, ck.path, _info(ck, seed))
        out.append(ck.path)
    return out


def extend(mw: dict, name: str, seed: int, log: Log = print) -> str:
    """Fine-tune a ladder checkpoint at ``factor`` x its length with new rotary settings."""
    ck = world.by_name(mw, name)
    if ck.method is None or ck.base is None:
        raise ValueError(f"{name} is not a context extension")
    train, ext = mw["train"], mw["extend"]
    model, _ = export.load(world.by_name(mw, ck.base).path)
    L = int(train["n_ctx"])
    cfg = dataclasses.replace(
        model.cfg,
        rope_type=ck.method,
        rope_factor=float(ck.factor),
        original_max_position_embeddings=L,
        max_position_embeddings=L * ck.factor,
    )
    model.set_rope(cfg)
    torch.manual_seed(seed)
    opt = make_optimizer(model, {**train, "lr": ext["lr"]})
    rng = np.random.default_rng([seed, 2, ck.factor, len(ck.method)])
    length = L * ck.factor
    batch = max(1, int(ext["batch_tokens"]) // length)
    steps, lr, warmup = int(ext["steps"]), float(ext["lr"]), max(1, int(ext["steps"]) // 10)
    loss = float("nan")
    for step in range(steps):
        slr = get_lr(
            step, lr=lr, warmup=warmup, decay_start=steps // 2, decay_steps=steps - steps // 2
        )
        loss = train_step(
            model, opt, rng, batch, length, dict(train["mix"]), slr, float(train["clip"])
        )
    log(f"{name}: {steps} steps at length {length} (batch {batch}), loss {loss:.3f}")
    export.save_pretrained(model, ck.path, _info(ck, seed))
    return ck.path
