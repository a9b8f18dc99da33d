"""Generation shards -> the scores table and the task-level points the law is fitted to.

``results/scores.csv``: one row per (model, dataset, n_shots) with the model's law inputs
(N, D, C = 6 N D, n_ctx) from the config, the mean prompt length n_pmt and the mean metric
value (score) over the instances the backend ran. ``results/points.csv``: one row per
(model, task, n_shots). With ``scores.aggregation: dataset_groups`` (the default) the
modules of a dataset group (the 56 DeepMind Mathematics modules, ``dm_math__<module>``)
are first averaged into one dataset, and then the task's datasets are averaged equally
(score and n_pmt), so arithmetic is GSM8K, MATH, AQuA and DeepMind at a quarter each rather
than 56 of 59 parts DeepMind. ``datasets`` averages every dataset equally; the variant not
chosen is written beside the points as a sensitivity table (``points_by_*.csv``).
Datasets whose registry entry names a ``corrected_metric`` (DeepMind's modules: the
original's ``math_equiv`` scores True/False answers as 0 and ignores signs) are rescored by
it from the stored outputs into ``results/scores_corrected_metric.csv``, beside the original
score; the fit keeps the original's. Instances whose status is not "ok" (e.g.
"over_max_model_len", a prompt the backend could not run) are not scored; they are counted
in ``n_excluded`` and named on stderr, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ctxscale import artifacts
from ctxscale.config import default, load_config
from ctxscale.data import metrics, tasks
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_write
from ctxscale.models import ModelSpec

FLOAT_FORMAT = "%.12g"
# Columns of both tables: the model's, then the point's (a dataset's or a task's).
_MODEL = ["family", "model", "role", "task"]
_POINT = ["n_shots", "n_ctx", "N", "D", "C", "n_pmt", "score"]
SCORE_COLUMNS = [*_MODEL, "dataset", *_POINT, "n_instances", "n_excluded"]
POINT_COLUMNS = [*_MODEL, *_POINT, "n_datasets", "n_groups", "n_instances"]
AGGREGATIONS = ("dataset_groups", "datasets")
CORRECTED_COLUMNS = [
    *_MODEL,
    "dataset",
    "n_shots",
    "n_instances",
    "metric",
    "score",
    "corrected_metric",
    "score_corrected",
]
_RECORD_FIELDS = ("id", "n_pmt", "score", "status")


def read_shard(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Settings line and records of one complete shard; errors name file and line."""
    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        hint = " (only a .partial exists: rerun its inference)" if partial.exists() else ""
        raise CtxscaleError(f"generation shard {path} is missing{hint}")
    settings: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise CtxscaleError(f"{path}:{lineno}: not a JSON line") from None
            if settings is None:
                if not isinstance(obj, dict) or not isinstance(obj.get("settings"), dict):
                    raise CtxscaleError(f"{path}:{lineno}: first line must be {{'settings': ...}}")
                settings = obj["settings"]
                continue
            for key in _RECORD_FIELDS:
                if key not in obj:
                    raise CtxscaleError(f"{path}:{lineno}: record lacks field {key!r}")
            if str(obj["id"]) in seen:
                raise CtxscaleError(f"{path}:{lineno}: instance id {obj['id']!r} appears twice")
            seen.add(str(obj["id"]))
            if obj["status"] == "ok":
                score = obj["score"]
                if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
                    raise CtxscaleError(f"{path}:{lineno}: score {score!r} is not in [0, 1]")
            records.append(obj)
    if settings is None:
        raise CtxscaleError(f"{path}: empty shard (no settings line)")
    return settings, records


def _prompts_file(prompts_dir: Path, spec: ModelSpec, dataset: str, n_shots: int) -> Path:
    """The prompts file the model's shard was generated from: the one filtered with its
    family's tokenizer (:func:`ctxscale.artifacts.prompts_for`)."""
    return Path(artifacts.prompts_for(spec, dataset, n_shots, str(prompts_dir)))


def _task_from_prompts(path: Path) -> str | None:
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            task = json.load(fh).get("task")
        return str(task) if task else None
    return None


def _references(path: Path) -> dict[str, Any]:
    """Instance id -> reference, from the prompts file the shard was generated from."""
    if not path.exists():
        raise CtxscaleError(f"prompts file {path} is missing (the corrected metric reads it)")
    with path.open(encoding="utf-8") as fh:
        return {str(i["id"]): i["reference"] for i in json.load(fh)["instances"]}


def build_scores(
    config: dict[str, Any],
    generations_dir: str | Path = "results/generations",
    prompts_dir: str | Path = "results/prompts",
) -> pd.DataFrame:
    """One row per (model, dataset, n_shots) of the config; every shard must be present."""
    return score_tables(config, generations_dir, prompts_dir, corrected=False)[0]


def score_tables(
    config: dict[str, Any],
    generations_dir: str | Path = "results/generations",
    prompts_dir: str | Path = "results/prompts",
    corrected: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scores table and, with ``corrected``, the corrected-metric table (one pass).

    The corrected table has a row per scores row whose dataset names a ``corrected_metric``
    in the registry: the same records rescored by it from their stored outputs, beside the
    original metric's score (the fit uses the original's).
    """
    rows, checks = [], []
    prompts_dir = Path(prompts_dir)
    # every model of a family (and every family on one tokenizer) shares a prompts file
    refs_of: dict[Path, dict[str, Any]] = {}
    for spec in artifacts.models(config):
        for dataset in spec.datasets:
            task = None
            fix = tasks.get_spec(dataset).corrected_metric if corrected else None
            for n_shots in spec.shots(dataset):
                path = Path(artifacts.shard_path(spec.name, dataset, n_shots, str(generations_dir)))
                settings, records = read_shard(path)
                for key, want in (("model", spec.name), ("dataset", dataset), ("n_shots", n_shots)):
                    if key in settings and settings[key] != want:
                        raise CtxscaleError(
                            f"{path}: settings.{key} is {settings[key]!r}, expected {want!r}"
                        )
                task = (
                    settings.get("task")
                    or task
                    or _task_from_prompts(_prompts_file(prompts_dir, spec, dataset, n_shots))
                    or artifacts.task_of(dataset)
                )
                ok = [r for r in records if r["status"] == "ok"]
                excluded = len(records) - len(ok)
                if excluded:
                    reasons = sorted({str(r["status"]) for r in records if r["status"] != "ok"})
                    print(
                        f"scores: {path}: {excluded} of {len(records)} instances not scored "
                        f"(status {', '.join(reasons)})",
                        file=sys.stderr,
                    )
                if not ok:
                    continue
                row = {
                    "family": spec.family,
                    "model": spec.name,
                    "role": spec.role,
                    "task": task,
                    "dataset": dataset,
                    "n_shots": int(n_shots),
                    "n_ctx": int(spec.n_ctx),
                    "N": float(spec.N),
                    "D": float(spec.D),
                    "C": float(spec.C),
                    "n_pmt": math.fsum(float(r["n_pmt"]) for r in ok) / len(ok),
                    "score": math.fsum(float(r["score"]) for r in ok) / len(ok),
                    "n_instances": len(ok),
                    "n_excluded": excluded,
                }
                rows.append(row)
                if fix:
                    prompts = _prompts_file(prompts_dir, spec, dataset, n_shots)
                    if prompts not in refs_of:
                        refs_of[prompts] = _references(prompts)
                    checks.append(_corrected_row(row, settings, ok, fix, refs_of[prompts], path))
    df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    check = pd.DataFrame(checks, columns=CORRECTED_COLUMNS)
    order = ["family", "model", "dataset", "n_shots"]
    return (
        df.sort_values(order, kind="mergesort").reset_index(drop=True),
        check.sort_values(order, kind="mergesort").reset_index(drop=True),
    )


def _corrected_row(
    row: dict[str, Any],
    settings: dict[str, Any],
    ok: list[dict[str, Any]],
    metric: str,
    refs: dict[str, Any],
    path: Path,
) -> dict[str, Any]:
    """One scores row's records rescored by the corrected metric from their outputs (``refs``:
    the references of the prompts file the shard ``path`` was generated from)."""
    values = []
    for r in ok:
        if str(r["id"]) not in refs:
            raise CtxscaleError(f"{path}: instance {r['id']!r} is not in its prompts file")
        values.append(metrics.score(metric, r.get("output"), refs[str(r["id"])]))
    return {
        **{k: row[k] for k in ("family", "model", "role", "task", "dataset", "n_shots")},
        "n_instances": row["n_instances"],
        "metric": settings.get("metric", tasks.get_spec(row["dataset"]).metric),
        "score": row["score"],
        "corrected_metric": metric,
        "score_corrected": math.fsum(values) / len(values),
    }


def dataset_group(dataset: str) -> str:
    """The group a dataset is averaged in first: ``dm_math`` for ``dm_math__<module>``."""
    return dataset.split("__", 1)[0]


def _mean_rows(grp: pd.DataFrame) -> tuple[float, float]:
    """Unweighted means of n_pmt and score over the rows, in a fixed (dataset) order."""
    grp = grp.sort_values("dataset", kind="mergesort")
    return math.fsum(grp["n_pmt"]) / len(grp), math.fsum(grp["score"]) / len(grp)


def build_points(
    scores: pd.DataFrame, aggregation: str = default("scores.aggregation")
) -> pd.DataFrame:
    """Task-level points at one (model, n_shots): the unweighted mean of the task's datasets,
    after averaging each dataset group's members into one dataset (``dataset_groups``) or
    not (``datasets``)."""
    if aggregation not in AGGREGATIONS:
        raise CtxscaleError(
            f"unknown aggregation {aggregation!r}; known: {', '.join(AGGREGATIONS)}"
        )
    keys = ["family", "model", "role", "task", "n_shots", "n_ctx", "N", "D", "C"]
    scores = scores.assign(
        group=[
            dataset_group(d) if aggregation == "dataset_groups" else d for d in scores["dataset"]
        ]
    )
    rows = []
    for key, grp in scores.groupby(keys, sort=True):
        means = [_mean_rows(g) for _, g in grp.groupby("group", sort=True)]
        row = dict(zip(keys, key, strict=True))
        row["n_pmt"] = math.fsum(m[0] for m in means) / len(means)
        row["score"] = math.fsum(m[1] for m in means) / len(means)
        row["n_datasets"] = len(grp)
        row["n_groups"] = len(means)
        row["n_instances"] = int(grp["n_instances"].sum())
        rows.append(row)
    df = pd.DataFrame(rows, columns=POINT_COLUMNS)
    return df.sort_values(["family", "model", "task", "n_shots"], kind="mergesort").reset_index(
        drop=True
    )


def sensitivity_path(points_path: str | Path, aggregation: str) -> Path:
    """Where the points of the aggregation not chosen go: beside the points table."""
    path = Path(points_path)
    return path.with_name(f"{path.stem}_by_{aggregation}{path.suffix}")


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """CSV with fixed float formatting and Unix newlines (byte-identical on regeneration)."""
    atomic_write(path, df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    scores, corrected = score_tables(config, args.generations, args.prompts)
    if scores.empty:
        raise CtxscaleError("no scored instances in any shard: nothing to aggregate")
    chosen = config["scores"]["aggregation"]
    other = next(a for a in AGGREGATIONS if a != chosen)
    points = build_points(scores, chosen)
    write_table(scores, args.out)
    write_table(points, args.points)
    write_table(build_points(scores, other), sensitivity_path(args.points, other))
    write_table(corrected, args.corrected)
    print(
        f"scores: {len(scores)} rows -> {args.out}; {len(points)} points ({chosen}) -> "
        f"{args.points}; sensitivity ({other}) -> {sensitivity_path(args.points, other)}; "
        f"{len(corrected)} rows rescored by a corrected metric -> {args.corrected}"
    )
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scores",
        help="aggregate generation shards into results/scores.csv and results/points.csv",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--config", required=True, help="experiment config (YAML)")
    p.add_argument("--generations", default="results/generations", help="shard root directory")
    p.add_argument("--prompts", default="results/prompts", help="prompt root (task names)")
    p.add_argument("--out", default="results/scores.csv", help="scores table (CSV)")
    p.add_argument("--points", default="results/points.csv", help="task-level points (CSV)")
    p.add_argument(
        "--corrected",
        default=artifacts.CORRECTED_SCORES,
        help="scores of the datasets with a corrected metric, beside the original's (CSV)",
    )
    p.set_defaults(func=_run)
