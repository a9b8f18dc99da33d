"""Every file the experiment produces, derived from the config alone.

One definition shared by the workflow (``Snakefile``: rule targets and the DAG) and by the
CLI (``ctxscale scores`` finds its shards here, ``ctxscale manifest`` hashes exactly this
list), so a target can never exist in one place and be missing from the other.
"""

from __future__ import annotations

import re
from typing import Any

from ctxscale import catalog
from ctxscale.catalog import TASKS
from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.models import ModelSpec, models_from_config

#: The workflow's fits, results/fits/{name}.json; what each fits: :func:`fit_settings`.
FITS = (
    "main",
    "no_penalty",
    "penalty_variant",
    "loss_variant",
    "floor_variant",
    "coupling_variant",
    "extrapolation",
    "context_agnostic",
)
PREDICTIONS = ("ood", "technique")
REPORT = ("paper/report.md", "paper/report.html")
CONFIG_COPY = catalog.INPUTS["config"].path
MANIFEST = catalog.INPUTS["manifest"].path
CORRECTED_SCORES = catalog.INPUTS["scores_corrected"].path


def task_of(dataset: str) -> str:
    """The task (arithmetic, common_sense, translation) a dataset belongs to."""
    from ctxscale.data.tasks import get_spec  # the task registry is the authority

    return str(get_spec(dataset).task)


def tasks_in(config: dict[str, Any]) -> list[str]:
    """Tasks present in the config, in the paper's order."""
    present = {task_of(d) for d in prompt_grid(config)}
    return [t for t in TASKS if t in present]


def roles_in(config: dict[str, Any]) -> set[str]:
    return {m.role for m in models_from_config(config)}


PROMPTS = "results/prompts"
#: where the prompts files of a family's own length-filter tokenizer go, one folder each
BY_TOKENIZER = "by_tokenizer"


def tokenizer_slug(tokenizer: str) -> str:
    """The folder name of a tokenizer's prompts files: its hub id or path with every run of
    characters other than letters, digits, ``_``, ``.`` and ``-`` made ``--``
    (``Qwen/Qwen2.5-0.5B`` -> ``Qwen--Qwen2.5-0.5B``, ``bytes/4`` -> ``bytes--4``)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "--", tokenizer).strip("-.")
    if not slug:
        raise CtxscaleError(f"tokenizer {tokenizer!r} gives no folder name for its prompts")
    return slug


def prompts_dir(tokenizer: str | None = None, root: str = PROMPTS) -> str:
    """The folder of the prompts files filtered with ``tokenizer`` (None: ``data.tokenizer``,
    the shared files) under the prompts root."""
    return root if tokenizer is None else f"{root}/{BY_TOKENIZER}/{tokenizer_slug(tokenizer)}"


def prompt_path(
    dataset: str, n_shots: int, tokenizer: str | None = None, root: str = PROMPTS
) -> str:
    """A prompts file: ``results/prompts/{dataset}/{n_shots}.json`` for ``data.tokenizer``,
    ``results/prompts/by_tokenizer/{slug}/{dataset}/{n_shots}.json`` for another one."""
    return f"{prompts_dir(tokenizer, root)}/{dataset}/{n_shots}.json"


def prompts_for(model: ModelSpec, dataset: str, n_shots: int, root: str = PROMPTS) -> str:
    """The prompts file that ``model`` runs on (dataset, n_shots): the one filtered with its
    family's tokenizer. Every mapping of a model to its prompts goes through here."""
    return prompt_path(dataset, n_shots, model.tokenizer, root)


def own_tokenizers(config: dict[str, Any]) -> dict[str, str]:
    """{slug: tokenizer} of the families' own length-filter tokenizers (not data.tokenizer)."""
    out: dict[str, str] = {}
    for m in models_from_config(config):
        if m.tokenizer is not None:
            slug = tokenizer_slug(m.tokenizer)
            if out.setdefault(slug, m.tokenizer) != m.tokenizer:
                raise CtxscaleError(
                    f"tokenizers {out[slug]!r} and {m.tokenizer!r} share the prompts folder "
                    f"{slug!r}; name one of them otherwise (a local copy, say)"
                )
    return dict(sorted(out.items()))


def shard_path(model: str, dataset: str, n_shots: int, root: str = "results/generations") -> str:
    return f"{root}/{model}/{dataset}/{n_shots}.jsonl"


def figure_names(config: dict[str, Any]) -> list[str]:
    """Figures that the config can produce: tasks it has, roles it has."""
    return catalog.figure_names(tasks_in(config), roles_in(config))


def prediction_names(config: dict[str, Any]) -> list[str]:
    roles = roles_in(config)
    return [p for p in PREDICTIONS if p in roles]


def models(config: dict[str, Any]) -> list[ModelSpec]:
    return models_from_config(config)


def dataset_manifest(model: str, dataset: str, root: str = "results/generations") -> str:
    """The list of one (model, dataset)'s shards: the inference job's declared output."""
    return f"{root}/{model}/{dataset}/manifest.tsv"


def inference_outputs(config: dict[str, Any]) -> list[str]:
    return [dataset_manifest(m.name, d) for m in models_from_config(config) for d in m.datasets]


def shards(config: dict[str, Any], root: str = "results/generations") -> list[str]:
    return [
        shard_path(m.name, d, k, root)
        for m in models_from_config(config)
        for d in m.datasets
        for k in m.shots(d)
    ]


def prompt_grid(config: dict[str, Any]) -> dict[str, list[int]]:
    """Every dataset's shot counts with a prompts file: the config's grid, and the
    miniature world's grid for its datasets."""
    grid = {d: sorted(config["n_shots"]) for d in config["datasets"]}
    mw = config.get("miniworld") or {}
    if mw.get("activate"):
        for d in mw["datasets"]:
            grid[d] = sorted(mw["n_shots"])
    return grid


def prompts(config: dict[str, Any]) -> list[str]:
    """The shared prompts files (the grid's) and those of each family's own tokenizer."""
    shared = [prompt_path(d, k) for d, ks in prompt_grid(config).items() for k in ks]
    own = {
        prompts_for(m, d, k)
        for m in models_from_config(config)
        if m.tokenizer is not None
        for d, ks in m.plan
        for k in ks
    }
    return shared + sorted(own)


def penalty_variant(main: str) -> str:
    """The penalty form set beside the main one: its centre fitted, or fixed at n_ctx."""
    return "log_sigmoid" if main == "log_sigmoid_fitted" else "log_sigmoid_fitted"


def loss_variant(main: str) -> str:
    """The loss set beside the main one: absolute error (what the MAE measures) if the main
    fit's loss is another, else squared error."""
    return "squared" if main == "absolute" else "absolute"


def fit_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The ``FitSettings`` fields of the workflow's fit ``name`` (:data:`FITS`) from a
    resolved config's ``fit`` block; a field left out keeps its ``FitSettings`` default.

    ``ctxscale fit --config CONFIG --variant NAME`` fits with these (the fit rule keeps them
    as its params, so a change reruns the fit). Only the main fit's parameter CIs are
    reported (the params table and figure): the other fits are point fits, their MAE
    intervals resample the points. ``bounds`` holds the configured bounds only.
    """
    fit = config["fit"]
    common: dict[str, Any] = {
        "seed": int(fit["seed"]),
        "bounds": {k: (float(lo), float(hi)) for k, (lo, hi) in sorted(fit["bounds"].items())},
        "bootstrap": 0,
        "loss": fit["loss"],
    }
    penalty: dict[str, Any] = {"penalty": fit["penalty"]}
    if fit["penalty_width"] is not None:
        penalty["penalty_width"] = float(fit["penalty_width"])
    variants = {
        "main": {**penalty, "bootstrap": int(fit["bootstrap"])},
        "no_penalty": {"penalty": "none"},
        "penalty_variant": {"penalty": penalty_variant(fit["penalty"])},
        "loss_variant": {**penalty, "loss": loss_variant(fit["loss"])},
        "floor_variant": {**penalty, "floor": True},
        "coupling_variant": {**penalty, "coupling": True},
        "extrapolation": {**penalty, "holdout_npmt": float(fit["holdout_npmt"])},
        "context_agnostic": {"law": "context_agnostic"},
    }
    if name not in variants:
        raise CtxscaleError(f"unknown fit {name!r}; the workflow's fits: {', '.join(FITS)}")
    return {**common, **variants[name]}


def sensitivity_points(config: dict[str, Any]) -> str:
    """The points table of the aggregation the config did not choose (a sensitivity table)."""
    chosen = (config.get("scores") or {}).get("aggregation", default("scores.aggregation"))
    other = "datasets" if chosen == "dataset_groups" else "dataset_groups"
    return f"results/points_by_{other}.csv"


def analysis_artifacts(config: dict[str, Any]) -> list[str]:
    """Scores, fits, predictions, figures and tables (everything after inference but the report)."""
    out = ["results/scores.csv", "results/points.csv", sensitivity_points(config)]
    out.append(CORRECTED_SCORES)
    out += [f"results/fits/{f}.json" for f in FITS]
    out += [f"results/predictions/{p}.csv" for p in prediction_names(config)]
    for name in figure_names(config):
        out += [f"figures/{name}.pdf", f"figures/{name}.png"]
    for name in catalog.TABLES:
        out += [f"results/tables/{name}.csv", f"results/tables/{name}.md"]
    return out


def mini_checkpoints(config: dict[str, Any]) -> list[str]:
    """Every file of the miniature world's trained checkpoints (none when it is off)."""
    from ctxscale.mini import world

    if not world.active(config):
        return []
    cks = world.checkpoints(config["miniworld"])
    return [f for c in cks for f in world.checkpoint_files(c.name)]


def targets(config: dict[str, Any]) -> list[str]:
    """Declared outputs the manifest covers (shards are made inside the inference jobs).

    The report is not among them: it states the manifest's hash, so it comes after it.
    """
    return sorted(
        {
            CONFIG_COPY,
            *prompts(config),
            *mini_checkpoints(config),
            *inference_outputs(config),
            *analysis_artifacts(config),
        }
    )


def all_artifacts(config: dict[str, Any]) -> list[str]:
    """What the manifest lists: every artifact but the manifest and the report, sorted."""
    return sorted(
        {
            CONFIG_COPY,
            *prompts(config),
            *mini_checkpoints(config),
            *shards(config),
            *inference_outputs(config),
            *analysis_artifacts(config),
        }
    )
