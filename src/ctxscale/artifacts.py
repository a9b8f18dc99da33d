"""Every file the experiment produces, derived from the config alone.

One definition shared by the workflow (``Snakefile``: rule targets and the DAG) and by the
CLI (``ctxscale scores`` finds its shards here, ``ctxscale manifest`` hashes exactly this
list), so a target can never exist in one place and be missing from the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ctxscale.errors import CtxscaleError
from ctxscale.models import ModelSpec, models_from_config

TASKS = ("arithmetic", "common_sense", "translation")

# Task of each dataset of the paper, used only when the task registry (ctxscale.tasks)
# is not importable; the registry is the authority once present.
_FALLBACK_TASKS = {
    "arithmetic": ("gsm8k", "math", "aqua_rat", "aqua", "deepmind_mathematics", "dm_math"),
    "common_sense": (
        "piqa",
        "hellaswag",
        "arc_easy",
        "arc_challenge",
        "openbookqa",
        "siqa",
        "social_iqa",
        "winogrande",
        "commonsense_qa",
        "commonsenseqa",
    ),
    "translation": ("wmt14_cs_en", "wmt14_de_en", "wmt14_fr_en", "wmt14_hi_en", "wmt14_ru_en"),
}


@dataclass(frozen=True)
class Figure:
    """A figure of the paper: the task it shows (None: all) and the role it needs."""

    name: str
    task: str | None = None
    needs_role: str | None = None


FIGURES = (
    Figure("fig1_context_agnostic"),
    Figure("fig2_contour_arithmetic", "arithmetic"),
    Figure("fig3_contour_common_sense", "common_sense"),
    Figure("fig4_contour_translation", "translation"),
    Figure("fig5_extrapolation_arithmetic", "arithmetic"),
    Figure("fig6_extrapolation_common_sense", "common_sense"),
    Figure("fig7_extrapolation_translation", "translation"),
    Figure("ood_compute", needs_role="ood"),
    Figure("yarn_vs_pi", needs_role="technique"),
    Figure("residuals"),
    Figure("params"),
)
TABLES = ("ablation", "mae", "params")
FITS = ("main", "no_penalty", "penalty_variant", "extrapolation", "context_agnostic")
PREDICTIONS = ("ood", "technique")
REPORT = ("paper/report.md", "paper/report.html")
CONFIG_COPY = "results/config.yaml"
MANIFEST = "results/manifest.tsv"


def task_of(dataset: str) -> str:
    """The task (arithmetic, common_sense, translation) a dataset belongs to."""
    try:  # the task registry (ctxscale.tasks) is the authority
        from ctxscale.tasks import get_spec
    except ImportError:
        get_spec = None
    if get_spec is not None:
        return str(get_spec(dataset).task)
    key = dataset.lower()
    for task, names in _FALLBACK_TASKS.items():
        if key in names or any(key.startswith(n + "_") or key.startswith(n + ".") for n in names):
            return task
    raise CtxscaleError(
        f"dataset {dataset!r}: unknown task; known datasets: "
        + ", ".join(n for names in _FALLBACK_TASKS.values() for n in names)
    )


def tasks_in(config: dict[str, Any]) -> list[str]:
    """Tasks present in the config, in the paper's order."""
    present = {task_of(d) for d in prompt_grid(config)}
    return [t for t in TASKS if t in present]


def roles_in(config: dict[str, Any]) -> set[str]:
    return {m.role for m in models_from_config(config)}


def prompt_path(dataset: str, n_shots: int) -> str:
    return f"results/prompts/{dataset}/{n_shots}.json"


def shard_path(model: str, dataset: str, n_shots: int, root: str = "results/generations") -> str:
    return f"{root}/{model}/{dataset}/{n_shots}.jsonl"


def figure_names(config: dict[str, Any]) -> list[str]:
    """Figures that the config can produce: tasks it has, roles it has."""
    tasks, roles = set(tasks_in(config)), roles_in(config)
    return [
        f.name
        for f in FIGURES
        if (f.task is None or f.task in tasks) and (f.needs_role is None or f.needs_role in roles)
    ]


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
    return [prompt_path(d, k) for d, ks in prompt_grid(config).items() for k in ks]


def sensitivity_points(config: dict[str, Any]) -> str:
    """The points table of the aggregation the config did not choose (a sensitivity table)."""
    chosen = (config.get("scores") or {}).get("aggregation", "dataset_groups")
    other = "datasets" if chosen == "dataset_groups" else "dataset_groups"
    return f"results/points_by_{other}.csv"


def analysis_artifacts(config: dict[str, Any]) -> list[str]:
    """Scores, fits, predictions, figures and tables (everything after inference but the report)."""
    out = ["results/scores.csv", "results/points.csv", sensitivity_points(config)]
    out += [f"results/fits/{f}.json" for f in FITS]
    out += [f"results/predictions/{p}.csv" for p in prediction_names(config)]
    for name in figure_names(config):
        out += [f"figures/{name}.pdf", f"figures/{name}.png"]
    for name in TABLES:
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
