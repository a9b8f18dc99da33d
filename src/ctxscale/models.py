"""Model entries of the config: families of checkpoints with the law's inputs N, D, n_ctx.

A family block in ``config.yaml`` names a model family, its role in the experiment
and its checkpoints; settings given on the family (backend, dtype, tensor parallel
size, ...) apply to every checkpoint unless a checkpoint overrides them::

    families:
      - name: llama-2-7b-yarn
        role: fit              # fit: the law is fitted on it; ood: predicted only;
                               # technique: another context-extension method, predicted only;
                               # check: scored and reported, neither fitted nor predicted
        backend: vllm
        tensor_parallel_size: 2
        tokenizer: meta-llama/Llama-2-7b-hf   # the length filter's (default: data.tokenizer)
        checkpoints:
          - name: llama-2-7b-yarn-8k
            hub_id: WangResearchLab/Yarn-Llama-2-7b-8k
            N: 6476271616      # non-embedding parameters
            D: 2.00021e12      # training tokens, context-extension tokens included
            n_ctx: 8192        # context limit the checkpoint was trained/extended to
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctxscale.errors import CtxscaleError
from ctxscale.fileio import sha256_file

ROLES = ("fit", "ood", "technique", "check")
_FAMILY_ONLY = {"name", "role", "checkpoints", "tokenizer"}
_CHECKPOINT_FIELDS = {"name", "hub_id", "path", "gguf", "revision", "N", "D", "n_ctx", "backend"}


@dataclass(frozen=True)
class ModelSpec:
    """One checkpoint: where its weights are, and the law's inputs for it."""

    name: str
    family: str
    role: str
    N: float
    D: float
    n_ctx: int
    backend: str
    hub_id: str | None = None
    path: str | None = None
    gguf: dict[str, Any] | None = None
    revision: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: (dataset, shot counts) this checkpoint is evaluated on; the config's datasets x
    #: n_shots unless its family says otherwise (the miniature world's families do)
    plan: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: the family's own tokenizer for the instance-length filter where it differs from
    #: ``data.tokenizer``: its prompts files are its own (:func:`ctxscale.artifacts.prompts_for`);
    #: None: ``data.tokenizer``'s, the prompts files every such checkpoint shares
    tokenizer: str | None = None

    @property
    def datasets(self) -> list[str]:
        return [d for d, _ in self.plan]

    def shots(self, dataset: str) -> tuple[int, ...]:
        """The shot counts this checkpoint runs on ``dataset`` (empty if none)."""
        return dict(self.plan).get(dataset, ())

    @property
    def C(self) -> float:
        """Training compute C = 6 N D (Kaplan et al.), in FLOPs."""
        return 6.0 * self.N * self.D


def models_from_config(config: dict[str, Any]) -> list[ModelSpec]:
    """Flatten ``config['families']`` into checkpoints, in config order; names must be unique.

    The miniature world's checkpoints (``config['miniworld']``, when activated) follow.
    """
    specs: list[ModelSpec] = []
    grid = tuple(sorted(int(k) for k in config.get("n_shots") or ()))
    plan = tuple((d, grid) for d in config.get("datasets") or ())
    seen: set[str] = set()
    shared_tokenizer = (config.get("data") or {}).get("tokenizer")
    for i, fam in enumerate(config.get("families") or []):
        fname = fam.get("name") or f"families[{i}]"
        own = fam.get("tokenizer")
        tokenizer = None if own is None or own == shared_tokenizer else str(own)
        role = fam.get("role", "fit")
        if role not in ROLES:
            raise CtxscaleError(f"family {fname!r}: role {role!r} is not one of {', '.join(ROLES)}")
        shared = {k: v for k, v in fam.items() if k not in _FAMILY_ONLY}
        for j, ckpt in enumerate(fam.get("checkpoints") or []):
            where = f"family {fname!r} checkpoint {ckpt.get('name', j)!r}"
            merged = {**shared, **ckpt}
            for key in ("name", "N", "D", "n_ctx", "backend"):
                if merged.get(key) is None:
                    raise CtxscaleError(f"{where}: missing field {key!r}")
            if not (merged.get("hub_id") or merged.get("path") or merged.get("gguf")):
                raise CtxscaleError(f"{where}: needs one of 'hub_id', 'path' or 'gguf'")
            for key in ("N", "D", "n_ctx"):
                if float(merged[key]) <= 0:
                    raise CtxscaleError(f"{where}: {key} must be positive, got {merged[key]!r}")
            if merged["name"] in seen:
                raise CtxscaleError(f"{where}: checkpoint name {merged['name']!r} is used twice")
            seen.add(merged["name"])
            specs.append(
                ModelSpec(
                    name=str(merged["name"]),
                    family=str(fname),
                    role=role,
                    N=float(merged["N"]),
                    D=float(merged["D"]),
                    n_ctx=int(merged["n_ctx"]),
                    backend=str(config.get("backend") or merged["backend"]),
                    hub_id=merged.get("hub_id"),
                    path=merged.get("path"),
                    gguf=merged.get("gguf"),
                    revision=merged.get("revision"),
                    settings={k: v for k, v in merged.items() if k not in _CHECKPOINT_FIELDS},
                    plan=plan,
                    tokenizer=tokenizer,
                )
            )
    from ctxscale.mini import world

    for spec in world.model_specs(config):
        if spec.name in seen:
            raise CtxscaleError(f"miniworld: checkpoint name {spec.name!r} is used twice")
        seen.add(spec.name)
        specs.append(spec)
    return specs


def model_by_name(config: dict[str, Any], name: str) -> ModelSpec:
    """The checkpoint called ``name``; the error lists the known names."""
    specs = models_from_config(config)
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in specs)
    raise CtxscaleError(f"unknown model {name!r}; known models: {known}")


def weights_id(spec: ModelSpec) -> str | None:
    """What names the weights of ``spec`` in a shard's settings line, so that a shard made
    by other weights under the same checkpoint name is stale, not reused.

    The GGUF's sha256 from the config; for a checkpoint the workflow itself trains (the
    miniature world, whose weights change with its training settings while its names do
    not) the sha256 of its ``model.safetensors``; a hub id pinned to a revision. None where
    nothing cheap names them (a hub id without a revision, another local directory).
    """
    if spec.gguf and spec.gguf.get("sha256"):
        return f"sha256:{spec.gguf['sha256']}"
    if spec.settings.get("miniworld") and spec.path:
        weights = Path(spec.path) / "model.safetensors"
        if weights.is_file():
            return f"sha256:{sha256_file(weights)}"
        return None
    if spec.hub_id and spec.revision:
        return f"{spec.hub_id}@{spec.revision}"
    return None
