"""``ctxscale infer-dataset``: every shot count of one (model, dataset), resumable.

The workflow's inference job. One job per (model, dataset) instead of one per shard keeps
the paper-scale DAG small (22 checkpoints x 76 datasets, not x 10 shot counts as well)
while keeping every property of a shard: each shard is produced by ``ctxscale infer``
(OUT.partial appended record by record, renamed to OUT when complete), and the
workflow declares the shards as outputs flagged ``update``, so Snakemake never deletes a
finished one:

- a killed job is rerun; finished shards are kept, the interrupted one resumes from its
  ``.partial``; nothing computed is lost;
- a shard (or partial) written with settings other than the current config's (another
  dtype, n_ctx, prompt file, ...) or for other instances than its prompts file's (another
  selection, e.g. filtered with another tokenizer) is stale: it is deleted and
  regenerated, never reused;
- when every shard is done, ``results/generations/{model}/{dataset}/manifest.tsv`` (path,
  bytes, sha256 of each shard) is written: the job's declared output.

The shards run in one process with one loaded model: the backend (and, for vLLM, its
engine and prefix cache) is built once per job and reused for every shot count, instead
of once per shard.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctxscale import artifacts
from ctxscale.config import config_digest, load_config
from ctxscale.errors import CtxscaleError
from ctxscale.models import ModelSpec, model_by_name, weights_id
from ctxscale.outputs.manifest import write_manifest

# Settings line keys that must equal the prompts file's own values.
_PROMPT_KEYS = ("dataset", "task", "n_shots", "seed", "metric", "max_new_tokens", "stop")


def _settings_line(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
        return json.loads(first).get("settings")
    except (OSError, ValueError, AttributeError):
        return None


def expected_settings(
    config: dict[str, Any], model: str, prompts: dict[str, Any]
) -> dict[str, Any]:
    """What a shard of ``model`` on ``prompts`` must say in its settings line."""
    spec = model_by_name(config, model)
    want: dict[str, Any] = {**(config.get("inference") or {}), **spec.settings}
    want = {k: v for k, v in want.items() if isinstance(v, str | int | float | bool)}
    want.update({"model": spec.name, "n_ctx": spec.n_ctx, "backend": spec.backend})
    if weights := weights_id(spec):
        want["weights"] = weights
    for key in _PROMPT_KEYS:
        if key in prompts:
            want[key] = prompts[key]
    want["n_instances"] = len(prompts.get("instances") or [])
    return want


def stale_reason(settings: dict[str, Any] | None, want: dict[str, Any]) -> str | None:
    """Why a shard with ``settings`` cannot be reused (None: it can).

    Keys the shard does not record (e.g. a backend that ignores batch_size) are skipped,
    except ``weights``: a shard that does not name the weights it was made with cannot
    vouch for the current ones. A config value ``auto`` (dtype, device) accepts whatever
    the backend resolved it to.
    """
    if settings is None:
        return "no settings line"
    for key, value in want.items():
        if key not in settings:
            if key == "weights":
                return "it does not record the weights it was made with"
            continue
        if value == "auto":
            continue
        got = settings[key]
        if isinstance(value, list | tuple):
            value = list(value)
        if got != value:
            return f"{key} is {got!r}, config says {value!r}"
    return None


def instances_reason(path: Path, ids: list[str], complete: bool) -> str | None:
    """Why the records of the shard (or partial) ``path`` are not the prompts file's
    instances ``ids``, in order (None: they are; a partial's records are the first ones).

    Another selection of instances (say, filtered with another tokenizer) can keep every
    setting and the count, so the settings line alone cannot tell.
    """
    got: list[str] = []
    with path.open(encoding="utf-8") as fh:
        fh.readline()
        for line in fh:
            try:
                got.append(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                break  # a partial's torn last line
    if got != (ids if complete else ids[: len(got)]):
        return "its records are not the prompts file's instances"
    return None


def prune_stale(
    shard: Path,
    want: dict[str, Any],
    log: Callable[[str], None] = print,
    ids: list[str] | None = None,
) -> None:
    """Delete ``shard`` and its partial if they were written with other settings (or, given
    the prompts file's instance ``ids``, for other instances).

    Takes the shard's lock, so a shard that another process is writing fails here, at once.
    """
    from ctxscale.inference.shards import shard_lock

    with shard_lock(shard):
        for path in (shard, shard.with_name(shard.name + ".partial")):
            if path.exists():
                reason = stale_reason(_settings_line(path), want)
                if reason is None and ids is not None:
                    reason = instances_reason(path, ids, complete=path == shard)
                if reason:
                    log(f"infer-dataset: {path} is stale ({reason}); regenerating")
                    path.unlink()


#: Produces one shard: ``run(config, spec, prompts_path, out) -> exit status``.
ShardRunner = Callable[[dict[str, Any], ModelSpec, Path, Path], int]


class SharedModelInfer:
    """One shard as ``ctxscale infer`` makes it (same checks, same shard writer), keeping
    one loaded backend per model: the first shard that needs work loads the model, later
    shards of the same (config, model) reuse it."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._backend: Any = None

    def __call__(
        self, config: dict[str, Any], spec: ModelSpec, prompts_path: Path, out: Path
    ) -> int:
        from ctxscale.inference import cli as infer_cli

        prompts, cache, scorer = infer_cli.check_shard_inputs(config, spec, prompts_path)
        if out.exists():
            return 0
        key = (config_digest(config), spec.name)
        if self._key != key:
            if self._backend is not None:  # free the previous model's engine first
                self._backend.close()
                self._backend = None
            self._backend = infer_cli.make_backend(spec.backend, spec, config, cache)
            self._key = key
        infer_cli.write_model_shard(prompts, self._backend, spec, out, scorer)
        return 0


def infer_dataset(
    config_path: str,
    model: str,
    dataset: str,
    out: str | Path,
    prompts_dir: str = "results/prompts",
    generations_dir: str = "results/generations",
    run: ShardRunner | None = None,
) -> list[str]:
    """Produce every shard of (model, dataset), then the list ``out``; returns the shards."""
    run = run or SharedModelInfer()
    config = load_config(config_path)
    spec = model_by_name(config, model)
    if dataset not in spec.datasets:
        raise CtxscaleError(f"dataset {dataset!r} is not among model {model!r}'s datasets")
    shards = []
    for n_shots in spec.shots(dataset):
        prompts_path = Path(artifacts.prompts_for(spec, dataset, n_shots, prompts_dir))
        if not prompts_path.is_file():
            raise CtxscaleError(f"prompts file {prompts_path} is missing (ctxscale prepare)")
        with prompts_path.open(encoding="utf-8") as fh:
            prompts = json.load(fh)
        shard = Path(artifacts.shard_path(model, dataset, n_shots, generations_dir))
        ids = [str(i.get("id")) for i in prompts.get("instances") or []]
        prune_stale(shard, expected_settings(config, model, prompts), ids=ids)
        if not shard.exists():
            shard.parent.mkdir(parents=True, exist_ok=True)
            status = run(config, spec, prompts_path, shard)
            if status != 0 or not shard.exists():
                raise CtxscaleError(f"inference failed for {shard} (exit status {status})")
        shards.append(str(shard))
    write_manifest(shards, out)
    return shards


def _run(args: argparse.Namespace) -> int:
    pairs = [(m, d) for m in args.model for d in args.dataset]
    if len(pairs) != len(args.out):
        raise CtxscaleError(
            f"{len(args.model)} --model x {len(args.dataset)} --dataset values need "
            f"{len(pairs)} --out values (model by model), got {len(args.out)}"
        )
    from ctxscale.inference.cli import run_in_vllm_env

    config = load_config(args.config)
    run_in_vllm_env(model_by_name(config, m).backend for m in args.model)
    run = SharedModelInfer()  # one process: each model loaded once for all its datasets
    for (model, dataset), out in zip(pairs, args.out, strict=True):
        shards = infer_dataset(
            args.config, model, dataset, out, args.prompts, args.generations, run
        )
        print(f"infer-dataset: {len(shards)} shards of {model} on {dataset} -> {out}")
        sys.stdout.flush()
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "infer-dataset",
        help="run `ctxscale infer` for every shot count of one (model, dataset), resumably",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--config", required=True, help="experiment config (YAML)")
    p.add_argument("--model", required=True, nargs="+", help="checkpoint name(s)")
    p.add_argument("--dataset", required=True, nargs="+", help="dataset name(s)")
    p.add_argument(
        "--out",
        required=True,
        nargs="+",
        help="list of the shards written (TSV), per (model, dataset), model by model",
    )
    p.add_argument("--prompts", default="results/prompts", help="prompt root directory")
    p.add_argument("--generations", default="results/generations", help="shard root directory")
    p.set_defaults(func=_run)
