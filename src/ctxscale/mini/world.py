"""The miniature world's checkpoints, derived from the ``miniworld`` block of the config.

Torch-free, so the workflow can plan the DAG (names, N, D, n_ctx, C) without importing a
model. A family is one training run of one shape: its compute ladder is the run's
checkpoints at ``steps`` (each after its own short learning-rate decay), and its context
extensions fine-tune one ladder checkpoint at ``factor`` times the training length with
transformers' rope scaling (``yarn``, or ``linear`` = positional interpolation). A family
with ``base_family`` trains nothing itself: it extends a checkpoint of that family.

N counts non-embedding parameters (the paper's convention) exactly; D counts every
training token, fine-tuning included, so C = 6 N D is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctxscale.errors import CtxscaleError

MODELS_DIR = "results/miniworld/models"
METHOD_TAGS = {"yarn": "yarn", "linear": "pi"}


@dataclass(frozen=True)
class Checkpoint:
    """One miniature model: how it is made and the law's inputs for it."""

    name: str
    family: str
    role: str
    shape: dict
    steps: int  # base-run steps before its decay branch (of the checkpoint it extends)
    decay_steps: int
    n_ctx: int
    N: int
    D: int
    method: str | None = None  # yarn | linear for an extension
    factor: int = 1
    base: str | None = None  # the checkpoint an extension fine-tunes
    extend_steps: int = 0

    @property
    def path(self) -> str:
        return f"{MODELS_DIR}/{self.name}"


def non_embedding_params(shape: dict) -> int:
    """N of a Llama-shaped model: attention, gated MLP and norms (embeddings excluded)."""
    d, m, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    per_layer = 4 * d * d + 3 * d * m + 2 * d
    return layers * per_layer + d


def _decay(steps: int, fraction: float) -> int:
    return max(1, round(steps * fraction))


def checkpoints(mw: dict[str, Any]) -> list[Checkpoint]:
    """Every checkpoint of the miniature world, in config order (ladders, then extensions)."""
    train, ext = mw["train"], mw["extend"]
    L, batch = int(train["n_ctx"]), int(train["batch_size"])
    out: list[Checkpoint] = []
    by_name: dict[str, Checkpoint] = {}
    for fam in mw["families"]:
        name, role = fam["name"], fam["role"]
        if fam.get("base_family"):
            bases = [c for c in out if c.family == fam["base_family"] and c.method is None]
            if not bases:
                raise CtxscaleError(
                    f"config: miniworld.families: {name}: base_family "
                    f"{fam['base_family']!r} has no checkpoints before it"
                )
            shape, ladder = bases[0].shape, []
        else:
            shape = {**mw["model"], **(fam.get("model") or {})}
            ladder = sorted(int(s) for s in fam["steps"])
        n = non_embedding_params(shape)
        for steps in ladder:
            decay = _decay(steps, train["decay_fraction"])
            ck = Checkpoint(
                name=f"{name}-s{steps}",
                family=name,
                role=role,
                shape=shape,
                steps=steps,
                decay_steps=decay,
                n_ctx=L,
                N=n,
                D=(steps + decay) * batch * L,
            )
            out.append(ck)
            by_name[ck.name] = ck
        for spec in fam.get("extend") or []:
            base_name = f"{fam.get('base_family') or name}-s{int(spec['from_steps'])}"
            base = by_name.get(base_name)
            if base is None:
                raise CtxscaleError(
                    f"config: miniworld.families: {name}: extend from_steps "
                    f"{spec['from_steps']} is not a step of the ladder it extends"
                )
            for factor in spec["factors"]:
                ctx = L * int(factor)
                tokens = int(ext["steps"]) * int(ext["batch_tokens"])
                ck = Checkpoint(
                    name=f"{base.name}-{METHOD_TAGS[spec['method']]}{factor}x",
                    family=name,
                    role=role,
                    shape=shape,
                    steps=base.steps,
                    decay_steps=base.decay_steps,
                    n_ctx=ctx,
                    N=n,
                    D=base.D + tokens,
                    method=spec["method"],
                    factor=int(factor),
                    base=base.name,
                    extend_steps=int(ext["steps"]),
                )
                out.append(ck)
                by_name[ck.name] = ck
    names = [c.name for c in out]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise CtxscaleError(f"config: miniworld: checkpoint name {dup[0]!r} is made twice")
    return out


def prompt_tokens(dataset: str, n_shots: int) -> int:
    """Exact prompt length of a miniature dataset: BOS, the demonstrations, the query."""
    from ctxscale.mini.corpus import DEMO_TOKENS

    return 2 + n_shots * DEMO_TOKENS[dataset.removeprefix("mini_")]


def prompt_limit(mw: dict[str, Any], n_ctx: int) -> int:
    """The longest prompt, in tokens, a checkpoint of context ``n_ctx`` runs:
    max(max_prompt_factor x the training length, 2 x n_ctx)."""
    return max(int(mw["max_prompt_factor"]) * int(mw["train"]["n_ctx"]), 2 * n_ctx)


def shots_for(mw: dict[str, Any], dataset: str, n_ctx: int) -> tuple[int, ...]:
    """Shot counts a checkpoint of context ``n_ctx`` runs: prompts up to
    :func:`prompt_limit` tokens."""
    limit = prompt_limit(mw, n_ctx)
    return tuple(k for k in sorted(mw["n_shots"]) if prompt_tokens(dataset, k) <= limit)


def model_specs(config: dict[str, Any]) -> list:
    """The miniature checkpoints as :class:`~ctxscale.models.ModelSpec` (none if inactive)."""
    from ctxscale.models import ModelSpec

    if not active(config):
        return []
    mw = config["miniworld"]
    if "train" not in mw:  # a raw config file: fill in the schema's defaults first
        from ctxscale.config import validate_config

        mw = validate_config(config)["miniworld"]
    backend = str(config.get("backend") or "transformers")
    out = []
    for ck in checkpoints(mw):
        plan = tuple((d, shots_for(mw, d, ck.n_ctx)) for d in mw["datasets"])
        settings: dict[str, Any] = {"dtype": "float32", "batch_size": 64, "miniworld": True}
        if backend == "vllm":  # vLLM refuses prompts past max_model_len (its n_ctx unless set)
            settings["max_model_len"] = 2 * prompt_limit(mw, ck.n_ctx)
        out.append(
            ModelSpec(
                name=ck.name,
                family=ck.family,
                role=ck.role,
                N=float(ck.N),
                D=float(ck.D),
                n_ctx=ck.n_ctx,
                backend=backend,
                path=ck.path,
                settings=settings,
                plan=plan,
            )
        )
    return out


def active(config: dict[str, Any]) -> bool:
    """Whether the config runs the miniature world."""
    return bool((config.get("miniworld") or {}).get("activate"))


def family_checkpoints(mw: dict[str, Any], family: str) -> list[Checkpoint]:
    """The ladder checkpoints one training run of ``family`` writes."""
    return [c for c in checkpoints(mw) if c.family == family and c.method is None]


def by_name(mw: dict[str, Any], name: str) -> Checkpoint:
    for c in checkpoints(mw):
        if c.name == name:
            return c
    raise CtxscaleError(f"unknown miniature checkpoint {name!r}")


CHECKPOINT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "ctxscale-mini.json",
)


def checkpoint_files(name: str) -> list[str]:
    """The files a miniature checkpoint directory holds (the training rules' outputs)."""
    return [f"{MODELS_DIR}/{name}/{f}" for f in CHECKPOINT_FILES]


def infer_groups(mw: dict[str, Any]) -> dict[str, list[str]]:
    """Checkpoints evaluated together: each family's ladder, and the extensions of each
    ladder checkpoint (ready together; a group name is a valid rule-name suffix)."""
    groups: dict[str, list[str]] = {}
    for c in checkpoints(mw):
        part = "ladder" if c.method is None else f"{c.base}_extensions"
        key = f"{c.family}_{part}".replace("-", "_").replace(".", "_")
        groups.setdefault(key, []).append(c.name)
    return groups


def extension_groups(mw: dict[str, Any]) -> dict[str, list[str]]:
    """The :func:`infer_groups` of extensions: fine-tuned together in one job, since each
    is seconds of work beside a process start."""
    bases = extension_bases(mw)
    return {k: v for k, v in infer_groups(mw).items() if all(n in bases for n in v)}


def trained_families(mw: dict[str, Any]) -> list[str]:
    """Families with a training run of their own (not ``base_family`` extensions)."""
    return [f["name"] for f in mw.get("families") or [] if not f.get("base_family")]


def extension_bases(mw: dict[str, Any]) -> dict[str, str]:
    """Extension checkpoint -> the ladder checkpoint it fine-tunes."""
    return {c.name: c.base for c in checkpoints(mw) if c.base is not None}


def settings(mw: dict[str, Any], what: str) -> dict[str, Any]:
    """What changes the weights of a family's run or of one extension (rerun trigger)."""
    common = {"seed": mw["seed"], "train": mw["train"], "threads": mw["threads"]}
    if what in trained_families(mw):
        cks = [c.__dict__ for c in checkpoints(mw) if c.family == what and c.method is None]
        return {**common, "checkpoints": cks}
    return {**common, "extend": mw["extend"], "checkpoint": by_name(mw, what).__dict__}
