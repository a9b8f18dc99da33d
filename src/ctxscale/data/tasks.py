"""The paper's datasets: registry, instance selection, demonstrations, and the prompts files.

The registry is data (``ctxscale/data/datasets.yaml``); this module reads it, turns raw
records into (input, reference) pairs, selects evaluation instances and demonstrations, and
writes ``results/prompts/{dataset}/{n_shots}.json`` (the tasks -> inference contract).

Selection (the original's rules; our sampling code):

* an example (evaluation or demonstration) is kept only if
  ``prefix + input + suffix + reference + separator`` has at most 256 tokens;
* evaluation instances: walk a seeded uniform permutation of the evaluation split
  (``numpy.random.default_rng([seed, 0])``), keep the first 250 that pass the filter and do
  not repeat an input already kept; the file lists them in that order. The same instances
  serve every n_shots (the original redrew them per n_shots, see docs/tasks.md);
* demonstrations: walk another seeded permutation (``default_rng([seed, 1])``) of the
  demonstration split, skipping examples over the limit, inputs equal to an evaluation
  input and repeated inputs. The demonstrations for k shots are the first k of that walk,
  so every smaller k is a prefix of every larger one, and one (dataset, n_shots, seed) has
  one shared prompt prefix. Too few demonstrations for a requested k is an error, never a
  silent duplicate.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ctxscale.catalog import TASKS
from ctxscale.config import BYTES_DIV_4, default, load_config, load_configs
from ctxscale.data import metrics, prompts, sources
from ctxscale.data.prompts_cap import capped
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_write

N_SHOTS_GRID = (0, 1, 3, 7, 15, 31, 63, 127, 255, 511)
# The config schema's defaults (ctxscale.config.default): seed, data.max_instances,
# data.max_instance_tokens, data.dm_difficulty.
SEED: int = default("seed")
MAX_EVAL_INSTANCES: int = default("data.max_instances")
MAX_EXAMPLE_TOKENS: int = default("data.max_instance_tokens")
DM_DIFFICULTY: tuple[float, float] = tuple(default("data.dm_difficulty"))
# Rows generated per DeepMind Mathematics module with --source generate: fixed sizes so the
# selected instances do not depend on the n_shots grid of one call.
DM_TRAIN_SIZE = 600
DM_TEST_SIZE = 300
DM_PREFIX = "dm_math__"
_REFERENCE_MAPS = ("none", "index0", "index1", "letter_or_index1")


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry: where the data is and how the original prompts and scores it."""

    name: str
    task: str
    hub_id: str
    hub_config: str | list[str] | None
    hub_revision: str | None
    eval_split: str
    demo_split: str
    input: str
    reference_field: str
    reference_map: str
    instruction: str
    prefix: str
    suffix: str
    separator: str
    stop: tuple[str, ...]
    max_new_tokens: int
    metric: str
    corrected_metric: str | None = None
    choices: dict | None = None
    eval_rows: int | None = None
    demo_rows: int | None = None
    generator: str | None = None
    module: str | None = None
    note: str = ""
    fields: tuple[str, ...] = field(default=())

    @property
    def stop_strings(self) -> list[str]:
        """Stop strings as the original passes them: the list plus the prefix, if any."""
        return list(self.stop) + ([self.prefix] if self.prefix else [])


@dataclass(frozen=True)
class Example:
    """One formatted example: a stable id (split:row), the input text and the reference."""

    id: str
    input: str
    reference: str


# ---------------------------------------------------------------- registry


def _template_fields(template: str) -> list[str]:
    out = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name:
            out.append(name.split("[")[0].split(".")[0])
    return out


def _make_spec(name: str, entry: dict, defaults: dict, module: str | None = None) -> DatasetSpec:
    merged = {**defaults, **entry}
    hub = merged.get("hub") or {}
    config = hub.get("config")
    if module is not None and isinstance(config, str):
        config = config.format(module=module)
    reference = merged["reference"]
    ref_map = reference.get("map", "none")
    if ref_map not in _REFERENCE_MAPS:
        raise CtxscaleError(f"registry: {name}: unknown reference map {ref_map!r}")
    if merged["task"] not in TASKS:
        raise CtxscaleError(f"registry: {name}: unknown task {merged['task']!r}")
    metrics.check_metric(merged["metric"])
    if merged.get("corrected_metric") is not None:
        metrics.check_metric(merged["corrected_metric"])
    choices = merged.get("choices")
    needed = _template_fields(merged["input"]) + [reference["field"]]
    if choices:
        needed.append(choices["texts"])
        if choices.get("labels") not in (None, "letters"):
            needed.append(choices["labels"])
    return DatasetSpec(
        name=name,
        task=merged["task"],
        hub_id=hub.get("id", ""),
        hub_config=config,
        hub_revision=hub.get("revision"),
        eval_split=merged["eval_split"],
        demo_split=merged["demo_split"],
        input=merged["input"],
        reference_field=reference["field"],
        reference_map=ref_map,
        instruction=merged.get("instruction", ""),
        prefix=merged["prefix"],
        suffix=merged["suffix"],
        separator=merged["separator"],
        stop=tuple(merged["stop"]),
        max_new_tokens=int(merged["max_new_tokens"]),
        metric=merged["metric"],
        corrected_metric=merged.get("corrected_metric"),
        choices=choices,
        eval_rows=merged.get("eval_rows"),
        demo_rows=merged.get("demo_rows"),
        generator=merged.get("generator"),
        module=module,
        note=" ".join(str(merged.get("note", "")).split()),
        fields=tuple(dict.fromkeys(needed)),
    )


@lru_cache(maxsize=4)
def _load_registry_text(text: str) -> dict[str, DatasetSpec]:
    data = yaml.safe_load(text)
    defaults = data.get("defaults", {})
    specs: dict[str, DatasetSpec] = {}
    for name, entry in data["datasets"].items():
        entry = dict(entry)
        modules = entry.pop("modules", None)
        if modules:
            for module in modules:
                full = f"{DM_PREFIX}{module}"
                specs[full] = _make_spec(full, entry, defaults, module=module)
        else:
            specs[name] = _make_spec(name, entry, defaults)
    return specs


def _registry_text(path: str | Path | None) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    return resources.files("ctxscale").joinpath("data/datasets.yaml").read_text(encoding="utf-8")


def registry(path: str | Path | None = None) -> dict[str, DatasetSpec]:
    """Every dataset of the registry by name (DM modules expanded to ``dm_math__<module>``)."""
    return _load_registry_text(_registry_text(path))


def dataset_names(path: str | Path | None = None) -> list[str]:
    """Registry names in registry order."""
    return list(registry(path))


def get_spec(name: str, path: str | Path | None = None) -> DatasetSpec:
    """The entry for ``name``; an unknown name is an error listing the known ones."""
    specs = registry(path)
    if name not in specs:
        plain = [n for n in specs if not n.startswith(DM_PREFIX)]
        n_dm = len(specs) - len(plain)
        raise CtxscaleError(
            f"unknown dataset {name!r}; known datasets: {', '.join(plain)}, and "
            f"{DM_PREFIX}<module> for {n_dm} DeepMind Mathematics modules "
            "(see `ctxscale tasks list`)"
        )
    return specs[name]


# ---------------------------------------------------------------- formatting


def _get_path(record: dict, dotted: str) -> Any:
    node: Any = record
    for key in dotted.split("."):
        node = node[key]
    return node


def _letter(i: int) -> str:
    return string.ascii_uppercase[i]


def format_record(spec: DatasetSpec, record: dict) -> tuple[str, str]:
    """(input text, reference) of one raw record, laid out as the original lays it out."""
    try:
        text = spec.input.format_map(record)
        if spec.choices:
            texts = _get_path(record, spec.choices["texts"])
            labels_key = spec.choices.get("labels")
            if labels_key is None:
                labels = [""] * len(texts)
            elif labels_key == "letters":
                labels = [_letter(i) for i in range(len(texts))]
            else:
                labels = list(_get_path(record, labels_key))
            text += "".join(
                spec.choices["line"].format(label=lab, text=txt)
                for lab, txt in zip(labels, texts, strict=True)
            )
        raw = _get_path(record, spec.reference_field)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CtxscaleError(
            f"{spec.name}: record does not fit the registry layout: {exc!r}"
        ) from exc
    ref = str(raw)
    if spec.reference_map == "index0":
        ref = _letter(int(raw))
    elif spec.reference_map == "index1":
        ref = _letter(int(raw) - 1)
    elif spec.reference_map == "letter_or_index1":
        ref = ref if ref in string.ascii_uppercase else _letter(int(raw) - 1)
    return text, ref


def example_text(spec: DatasetSpec, ex: Example) -> str:
    """The text the 256-token filter measures: a full demonstration of the example."""
    return prompts.demonstration(spec.prefix, spec.suffix, spec.separator, ex.input, ex.reference)


# ---------------------------------------------------------------- data loading


@dataclass
class DataOptions:
    """Where to read data from, and the generator's settings."""

    source: str = "hub"
    local_dir: str | None = None
    cache_dir: str | None = None
    hub_path: str | None = None
    seed: int = SEED
    dm_difficulty: tuple[float, float] = DM_DIFFICULTY
    dm_train_size: int = DM_TRAIN_SIZE
    dm_test_size: int = DM_TEST_SIZE


@lru_cache(maxsize=64)
def _generated(module: str, n_train: int, n_test: int, seed: int, lo: float, hi: float) -> dict:
    from ctxscale.data import dm_math

    return dm_math.generate_splits([module], n_train, n_test, seed, (lo, hi))[module]


def load_split(spec: DatasetSpec, role: str, opts: DataOptions) -> Sequence[dict]:
    """Raw records of the evaluation (``role="eval"``) or demonstration split."""
    split = spec.eval_split if role == "eval" else spec.demo_split
    if opts.source == "generate":
        if spec.generator != "dm_math" or spec.module is None:
            raise CtxscaleError(
                f"{spec.name}: --source generate only exists for DeepMind Mathematics "
                f"({DM_PREFIX}<module>); use --source hub or local"
            )
        rows = _generated(
            spec.module,
            opts.dm_train_size,
            opts.dm_test_size,
            opts.seed,
            float(opts.dm_difficulty[0]),
            float(opts.dm_difficulty[1]),
        )
        return sources.Records(rows["test" if role == "eval" else "train"], f"generate:{split}")
    if opts.source == "local":
        if not opts.local_dir:
            raise CtxscaleError("--source local needs --local-dir")
        return sources.load_local(opts.local_dir, spec.name, split, spec.fields)
    if opts.source == "hub":
        path = None
        if opts.hub_path:
            path = str(Path(opts.hub_path) / spec.hub_id)
        return sources.load_hub(
            spec.hub_id, spec.hub_config, split, opts.cache_dir, spec.hub_revision, path
        )
    raise CtxscaleError(
        f"unknown source {opts.source!r}; known sources: {', '.join(sources.SOURCES)}"
    )


# ---------------------------------------------------------------- selection


def seeded_walk(n: int, seed: int, stream: int) -> Iterator[int]:
    """Indices 0..n-1 in a uniform random order, drawn lazily (sparse Fisher-Yates).

    Deterministic in (n, seed, stream); taking the first k never needs O(n) memory, so a
    40M-row training split costs only the rows actually looked at.
    """
    rng = np.random.default_rng([seed, stream])
    moved: dict[int, int] = {}
    for i in range(n):
        j = int(rng.integers(i, n))
        at_i, at_j = moved.get(i, i), moved.get(j, j)
        moved[j] = at_i
        moved.pop(i, None)
        yield at_j


def _walk_examples(
    spec: DatasetSpec,
    rows: Sequence[dict],
    split: str,
    stream: int,
    count_tokens: prompts.TokenCounter,
    seen: set[str],
    seed: int,
    max_tokens: int,
) -> Iterator[Example]:
    """Examples of ``rows`` in seeded-walk order (stream ``stream``), lazily: each input
    once and not in ``seen`` (which grows), within ``max_tokens``."""
    for idx in seeded_walk(len(rows), seed, stream):
        text, ref = format_record(spec, rows[idx])
        ex = Example(f"{split}:{idx}", text, ref)
        if text in seen or count_tokens(example_text(spec, ex)) > max_tokens:
            continue
        seen.add(text)
        yield ex


def select_eval(
    spec: DatasetSpec,
    rows: Sequence[dict],
    count_tokens: prompts.TokenCounter,
    seed: int = SEED,
    max_instances: int = MAX_EVAL_INSTANCES,
    max_tokens: int = MAX_EXAMPLE_TOKENS,
) -> list[Example]:
    """Up to ``max_instances`` evaluation examples within ``max_tokens``, in seeded order."""
    walk = _walk_examples(spec, rows, spec.eval_split, 0, count_tokens, set(), seed, max_tokens)
    return list(islice(walk, max(max_instances, 0)))


def select_demos(
    spec: DatasetSpec,
    rows: Sequence[dict],
    count_tokens: prompts.TokenCounter,
    n: int,
    exclude_inputs: set[str],
    seed: int = SEED,
    max_tokens: int = MAX_EXAMPLE_TOKENS,
) -> list[Example]:
    """The first ``n`` demonstrations of the seeded walk (an error when there are fewer)."""
    seen = set(exclude_inputs)
    walk = _walk_examples(spec, rows, spec.demo_split, 1, count_tokens, seen, seed, max_tokens)
    chosen = list(islice(walk, max(n, 0)))
    if len(chosen) < n:
        raise CtxscaleError(
            f"{spec.name}: {n} demonstrations requested but split {spec.demo_split!r} has only "
            f"{len(chosen)} within {max_tokens} tokens and distinct from the evaluation "
            f"inputs; use n_shots <= {len(chosen)} for this dataset"
        )
    return chosen


# ---------------------------------------------------------------- prompts files


def prompts_document(
    spec: DatasetSpec,
    eval_examples: Sequence[Example],
    demos: Sequence[Example],
    n_shots: int,
    seed: int,
    provenance: dict | None = None,
) -> dict:
    """The prompts file of one (dataset, n_shots): shared prefix, per-instance suffixes."""
    shots = list(demos[:n_shots])
    if len(shots) < n_shots:
        raise CtxscaleError(
            f"{spec.name}: {n_shots} shots asked, {len(shots)} demonstrations given"
        )
    prefix = prompts.build_prefix(
        spec.instruction,
        spec.prefix,
        spec.suffix,
        spec.separator,
        [(d.input, d.reference) for d in shots],
    )
    doc = document_header(spec, n_shots, seed)
    doc["prefix"] = prefix
    doc["demo_ids"] = [d.id for d in shots]
    doc["instances"] = [
        {
            "id": ex.id,
            "suffix": prompts.question(spec.prefix, spec.suffix, ex.input),
            "reference": ex.reference,
        }
        for ex in eval_examples
    ]
    doc.update(provenance or {})
    return doc


def document_header(spec: DatasetSpec, n_shots: int, seed: int) -> dict:
    """What every prompts file says about its dataset and generation settings."""
    return {
        "dataset": spec.name,
        "task": spec.task,
        "n_shots": n_shots,
        "seed": seed,
        "stop": spec.stop_strings,
        "max_new_tokens": spec.max_new_tokens,
        "metric": spec.metric,
    }


def write_prompts(docs: Iterable[tuple[int, dict]], out_dir: str | Path) -> list[Path]:
    """Write ``{out_dir}/{n_shots}.json`` for each (n_shots, document); returns the paths."""
    paths = []
    for k, doc in docs:
        path = Path(out_dir) / f"{k}.json"
        write_json(doc, path)
        paths.append(path)
    return paths


def write_json(doc: dict, path: Path) -> None:
    """Deterministic JSON (sorted keys, UTF-8, trailing newline), written atomically."""
    atomic_write(path, json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=1) + "\n")


def load_tokenizer(name_or_dir: str | None) -> Any | None:
    """A transformers tokenizer from a local directory or hub id (offline if cached), or None
    for the tokenizer-free estimate (``bytes/4``, or nothing given)."""
    if not name_or_dir or name_or_dir == BYTES_DIV_4:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_dir)
    except Exception as exc:
        raise CtxscaleError(f"cannot load tokenizer {name_or_dir!r}: {type(exc).__name__}") from exc


def check_n_shots(values: Sequence[int]) -> list[int]:
    """Sorted distinct non-negative shot counts (values off the paper's grid are allowed)."""
    out = sorted({int(v) for v in values})
    if not out or out[0] < 0:
        raise CtxscaleError(f"n_shots must be non-negative integers, got {list(values)}")
    return out


def prepare(
    dataset: str,
    n_shots: Sequence[int],
    out_dir: str | Path,
    opts: DataOptions,
    tokenizer: Any | None = None,
    max_instances: int = MAX_EVAL_INSTANCES,
    max_tokens: int = MAX_EXAMPLE_TOKENS,
    max_new_tokens: int | None = None,
) -> list[Path]:
    """Write ``{out_dir}/{n_shots}.json`` for every requested n_shots; returns the paths.

    ``max_new_tokens`` caps the dataset's new tokens (config ``data.max_new_tokens``).
    """
    spec = get_spec(dataset)
    grid = check_n_shots(n_shots)
    if spec.generator == "miniworld":
        docs = _miniworld_documents(spec, grid, opts.seed, max_instances)
    else:
        docs = _documents(spec, grid, opts, tokenizer, max_instances, max_tokens)
    where = f"{spec.name} prompts"
    return write_prompts(((k, capped(d, max_new_tokens, where)) for k, d in docs), out_dir)


def _documents(
    spec: DatasetSpec,
    grid: list[int],
    opts: DataOptions,
    tokenizer: Any | None,
    max_instances: int,
    max_tokens: int,
) -> Iterator[tuple[int, dict]]:
    """The prompts document of each shot count of a dataset read from its source."""
    count, tok_name = prompts.token_counter(tokenizer)
    eval_rows = load_split(spec, "eval", opts)
    eval_examples = select_eval(spec, eval_rows, count, opts.seed, max_instances, max_tokens)
    if not eval_examples:
        raise CtxscaleError(f"{spec.name}: no evaluation instance within {max_tokens} tokens")
    demos: list[Example] = []
    if grid[-1] > 0:
        demo_rows = load_split(spec, "demo", opts)
        demos = select_demos(
            spec,
            demo_rows,
            count,
            grid[-1],
            {e.input for e in eval_examples},
            opts.seed,
            max_tokens,
        )
    provenance = {
        "source": opts.source,
        "tokenizer": tok_name,
        "max_example_tokens": max_tokens,
        "max_instances": max_instances,
    }
    if opts.source == "generate":
        provenance["dm_difficulty"] = [float(x) for x in opts.dm_difficulty]
    for k in grid:
        yield k, prompts_document(spec, eval_examples, demos, k, opts.seed, provenance)


def _miniworld_documents(
    spec: DatasetSpec, grid: list[int], seed: int, max_instances: int
) -> Iterator[tuple[int, dict]]:
    """Prompts documents of a miniature-world dataset (instances generated, see ctxscale.mini)."""
    from ctxscale.mini import tasks as mini_tasks

    return iter(mini_tasks.prompts_documents(spec, grid, max_instances, seed).items())


# ---------------------------------------------------------------- counting


#: The workflow's config files of each scale (``ctxscale tasks count --scale``), merged in
#: order as ``snakemake --configfile`` merges them over config.yaml.
SCALE_CONFIGS: dict[str, tuple[str, ...]] = {
    "default": ("config.yaml",),
    "paper": ("config.yaml", "workflow/presets/paper.yaml"),
}


def add_scale_args(parser: argparse.ArgumentParser) -> argparse._MutuallyExclusiveGroup:
    """``--scale NAME`` or ``--config FILE...``: which config files a command reads."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--scale",
        default=default("scale"),
        help="the workflow's config files of a scale: "
        + "; ".join(f"{k} = {' + '.join(v)}" for k, v in SCALE_CONFIGS.items())
        + " (default: %(default)s)",
    )
    which.add_argument(
        "--config", nargs="+", metavar="FILE", help="these config files (merged in order)"
    )
    return which


def scale_configs(scale: str) -> list[Path]:
    """The config files of a scale, in the current directory or else the source checkout
    this package runs from (the repository's root)."""
    if scale not in SCALE_CONFIGS:
        raise CtxscaleError(f"unknown scale {scale!r}; known scales: {', '.join(SCALE_CONFIGS)}")
    names = SCALE_CONFIGS[scale]
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if all((root / name).is_file() for name in names):
            return [root / name for name in names]
    raise CtxscaleError(
        f"scale {scale}: {' + '.join(names)} not found here nor beside the package; run from "
        "the repository's root or give --config FILE..."
    )


def count_instances(config: dict[str, Any]) -> list[dict]:
    """Evaluation instances per dataset of a resolved config (upper bounds before the token
    filter): its datasets, capped at data.max_instances, and the miniature world's, at
    miniworld.instances each, when it is on."""
    data = config["data"]
    mini = config["miniworld"]
    names = list(config["datasets"])
    if mini["activate"]:
        names += [n for n in mini["datasets"] if n not in names]
    rows = []
    for name in names:
        spec = get_spec(name)
        if spec.generator == "miniworld":
            cap = available = int(mini["instances"])  # generated, as many as asked for
        else:
            cap = int(data["max_instances"])
            available = spec.eval_rows or 0
            if (data["source"] or ("generate" if spec.generator else "hub")) == "generate":
                available = int(data["dm_test_size"] or DM_TEST_SIZE)
        rows.append(
            {
                "dataset": name,
                "task": spec.task,
                "eval_rows": available,
                "instances": min(cap, available),
            }
        )
    return rows


# ---------------------------------------------------------------- CLI


def config_options(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The ``prepare`` settings a resolved config gives ``dataset`` (``--config``): the
    miniature world's seed and instance count for its datasets, else ``seed`` and the
    ``data`` block; a setting it leaves unset keeps the command's default."""
    if get_spec(dataset).generator == "miniworld":
        mw = config["miniworld"]
        return {"seed": int(mw["seed"]), "max_instances": int(mw["instances"])}
    data = config["data"]
    out: dict[str, Any] = {
        "seed": int(config["seed"]),
        "max_instances": int(data["max_instances"]),
        "max_example_tokens": int(data["max_instance_tokens"]),
        "dm_difficulty": tuple(float(x) for x in data["dm_difficulty"]),
    }
    keys = ("source", "cache_dir", "local_dir", "hub_path", "tokenizer")
    keys += ("dm_train_size", "dm_test_size", "max_new_tokens")
    out.update({key: data[key] for key in keys if data.get(key)})
    return out


#: The value of each data setting that neither a flag nor ``--config`` gives.
_FALLBACKS: dict[str, Any] = {
    "seed": SEED,
    "max_instances": MAX_EVAL_INSTANCES,
    "max_example_tokens": MAX_EXAMPLE_TOKENS,
    "dm_difficulty": DM_DIFFICULTY,
    "dm_train_size": DM_TRAIN_SIZE,
    "dm_test_size": DM_TEST_SIZE,
}


def _resolve(args: argparse.Namespace, spec: DatasetSpec) -> None:
    """Fill in each data setting not given as a flag: the ``--config``'s, else the default."""
    given = config_options(load_config(args.config), spec.name) if args.config else {}
    for key, value in {**_FALLBACKS, **given}.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)


def _data_args(p: argparse.ArgumentParser) -> None:
    # Every setting defaults to None: a flag given wins over --config, which wins over the
    # default (_FALLBACKS: the config schema's, or the generator's sizes).
    p.add_argument(
        "--config",
        help="experiment config (YAML): its seed and data block (a miniature dataset: "
        "miniworld.seed and .instances) set what no flag here sets, as in the workflow",
    )
    p.add_argument(
        "--source",
        choices=sources.SOURCES,
        help="data source (default: generate for DeepMind Mathematics modules, hub otherwise)",
    )
    p.add_argument("--local-dir", help="local override: DIR/{dataset}/{split}.jsonl|.parquet")
    p.add_argument("--cache-dir", help="datasets cache directory for --source hub")
    p.add_argument("--hub-path", help="read hub datasets from DIR/{hub id} (a local mirror)")
    p.add_argument(
        "--tokenizer",
        help=f"tokenizer directory or id for the {MAX_EXAMPLE_TOKENS}-token filter, or bytes/4 "
        "for the tokenizer-free estimate ceil(UTF-8 bytes / 4) (also the default, with a "
        "warning)",
    )
    p.add_argument("--seed", type=int, help=f"seed of the instance draws (default: {SEED})")
    p.add_argument(
        "--max-instances",
        type=int,
        help=f"evaluation instances per prompts file (default: {MAX_EVAL_INSTANCES})",
    )
    p.add_argument(
        "--max-example-tokens",
        type=int,
        help="drop examples longer than this many tokens, as the original "
        f"(default: {MAX_EXAMPLE_TOKENS})",
    )
    lo, hi = DM_DIFFICULTY
    p.add_argument(
        "--dm-difficulty",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="fraction of each module's training entropy range to generate at "
        f"(default {lo:g} {hi:g}; 0 1 = the full train range)",
    )
    p.add_argument(
        "--dm-train-size",
        type=int,
        help=f"generated DeepMind Mathematics demonstrations per module (default: {DM_TRAIN_SIZE})",
    )
    p.add_argument(
        "--dm-test-size",
        type=int,
        help=f"generated DeepMind Mathematics test problems per module (default: {DM_TEST_SIZE})",
    )


def _options(args: argparse.Namespace, spec: DatasetSpec) -> DataOptions:
    source = args.source or ("generate" if spec.generator else "hub")
    return DataOptions(
        source=source,
        local_dir=args.local_dir,
        cache_dir=args.cache_dir,
        hub_path=args.hub_path,
        seed=args.seed,
        dm_difficulty=tuple(args.dm_difficulty),
        dm_train_size=args.dm_train_size,
        dm_test_size=args.dm_test_size,
    )


def _cmd_list(args: argparse.Namespace) -> int:
    specs = registry()
    cols = ("name", "task", "hub", "config", "eval", "demo", "metric", "max_new")
    print("\t".join(cols))
    for spec in specs.values():
        if args.no_modules and spec.module:
            continue
        config = ",".join(spec.hub_config) if isinstance(spec.hub_config, list) else spec.hub_config
        print(
            "\t".join(
                str(x)
                for x in (
                    spec.name,
                    spec.task,
                    spec.hub_id,
                    config or "-",
                    spec.eval_split,
                    spec.demo_split,
                    spec.metric,
                    spec.max_new_tokens,
                )
            )
        )
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    spec = get_spec(args.dataset)
    _resolve(args, spec)
    opts = _options(args, spec)
    count, tok_name = prompts.token_counter(load_tokenizer(args.tokenizer))
    evals = select_eval(
        spec,
        load_split(spec, "eval", opts),
        count,
        opts.seed,
        args.max_instances,
        args.max_example_tokens,
    )
    if not evals:
        raise CtxscaleError(f"{spec.name}: no evaluation instance within the token limit")
    demos: list[Example] = []
    if args.n_shots > 0:
        demos = select_demos(
            spec,
            load_split(spec, "demo", opts),
            count,
            args.n_shots,
            {e.input for e in evals},
            opts.seed,
            args.max_example_tokens,
        )
    doc = prompts_document(spec, evals, demos, args.n_shots, opts.seed)
    first = doc["instances"][0]
    print(doc["prefix"] + first["suffix"])
    print("-" * 72)
    print(
        f"dataset={spec.name} task={spec.task} n_shots={args.n_shots} source={opts.source} "
        f"instances={len(doc['instances'])} reference={first['reference']!r} "
        f"metric={spec.metric} stop={doc['stop']!r} max_new_tokens={spec.max_new_tokens} "
        f"n_pmt={count(doc['prefix'] + first['suffix'])} ({tok_name})"
    )
    if spec.note:
        print(f"note: {spec.note}")
    return 0


def _cmd_count(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.config] if args.config else scale_configs(args.scale)
    config = load_configs(files)
    rows = count_instances(config)
    shown = [os.path.relpath(f) if f.is_absolute() else str(f) for f in files]
    print(
        f"# from {' + '.join(shown)} (scale {config['scale']}): its datasets, each capped at "
        "data.max_instances (a miniature dataset: miniworld.instances); evaluation split "
        "sizes from the registry's dataset cards (generated modules: data.dm_test_size)"
    )
    print("dataset\ttask\teval_rows\tinstances")
    for r in rows:
        print(f"{r['dataset']}\t{r['task']}\t{r['eval_rows']}\t{r['instances']}")
    total = sum(r["instances"] for r in rows)
    for task in TASKS:
        sub = [r for r in rows if r["task"] == task]
        if sub:
            print(f"# {task}: {len(sub)} datasets, {sum(r['instances'] for r in sub)} instances")
    limit = config["data"]["max_instance_tokens"]
    print(
        f"# total: {len(rows)} datasets (one per DeepMind Mathematics module), {total} "
        f"evaluation instances = sum of min(cap, evaluation split size); the {limit}-token "
        "filter can only lower it"
    )
    real = [r for r in rows if get_spec(r["dataset"]).generator != "miniworld"]
    if real:
        max_demos = max(config["n_shots"])
        n_real = sum(r["instances"] for r in real)
        left_out = " (miniature datasets left out)" if len(real) < len(rows) else ""
        print(
            f"# with up to {max_demos} distinct demonstrations per dataset{left_out}: "
            f"{n_real + max_demos * len(real)} distinct examples; the paper reports 65,500 "
            "without saying how it counts (see docs/tasks.md)"
        )
    return 0


def length_filter_note(tokenizer_arg: str | None, tok_name: str, max_tokens: int) -> str:
    """The log line that says how the instance-length filter measured (never silent)."""
    line = f"length filter: examples over {max_tokens} tokens dropped, measured with {tok_name}"
    if not tokenizer_arg:
        line += f" (no --tokenizer given: the estimate by default; --tokenizer {BYTES_DIV_4} "
        line += "chooses it explicitly)"
    return line


def _cmd_prepare(args: argparse.Namespace) -> int:
    spec = get_spec(args.dataset)
    _resolve(args, spec)
    tokenizer = load_tokenizer(args.tokenizer)
    _, tok_name = prompts.token_counter(tokenizer)
    print(length_filter_note(args.tokenizer, tok_name, args.max_example_tokens), file=sys.stderr)
    out = args.out_dir or os.path.join("results", "prompts", spec.name)
    paths = prepare(
        spec.name,
        args.n_shots,
        out,
        _options(args, spec),
        tokenizer,
        args.max_instances,
        args.max_example_tokens,
        args.max_new_tokens,
    )
    print(f"wrote {len(paths)} prompts files to {out}", file=sys.stderr)
    return 0


def add_cli(subparsers: Any) -> None:
    """``ctxscale tasks list|show|count`` and ``ctxscale prepare``."""
    tasks_p = subparsers.add_parser("tasks", help="the paper's datasets: list, show, count")
    tsub = tasks_p.add_subparsers(dest="tasks_command", metavar="ACTION")
    tasks_p.set_defaults(func=_cmd_list, no_modules=False)  # `ctxscale tasks` alone lists
    p = tsub.add_parser("list", help="list the registry's datasets")
    p.add_argument("--no-modules", action="store_true", help="hide DeepMind Mathematics modules")
    p.set_defaults(func=_cmd_list)
    p = tsub.add_parser("show", help="render one prompt of a dataset")
    p.add_argument("dataset", help="dataset name (see `ctxscale tasks list`)")
    p.add_argument(
        "--n-shots", type=int, default=3, help="demonstrations in the prompt (default: 3)"
    )
    _data_args(p)
    p.set_defaults(func=_cmd_show)
    p = tsub.add_parser(
        "count",
        help="evaluation instances per dataset and task of a scale's config",
        description="Evaluation instances per dataset and task that a config runs (its "
        "datasets and data.max_instances), from the workflow's config files of a scale "
        "or from the config files given.",
    )
    add_scale_args(p)
    p.set_defaults(func=_cmd_count)

    p = subparsers.add_parser("prepare", help="write results/prompts/{dataset}/{n_shots}.json")
    p.add_argument("--dataset", required=True, help="dataset name (see `ctxscale tasks list`)")
    p.add_argument(
        "--n-shots",
        type=int,
        nargs="+",
        default=list(N_SHOTS_GRID),
        help="shot counts, one prompts file each (default: the paper's grid 0..511)",
    )
    p.add_argument("--out-dir", help="default: results/prompts/{dataset}")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="cap the dataset's max new tokens at this value (config data.max_new_tokens)",
    )
    _data_args(p)
    p.set_defaults(func=_cmd_prepare)
