"""``ctxscale plan``: what a config's inference costs, per model, in H100 GPU-hours.

For every checkpoint the config evaluates and every prompts file it runs on (dataset x
n_shots), the plan counts the prompts, the prompt tokens (the sum of n_pmt), the tokens
prefilled when the shared prefix is computed once per file (prefix + every suffix), and
the generated tokens (every instance to its ``max_new_tokens``: an upper bound, since stop
strings end most generations earlier). Where a prompts file of this config exists its
tokens are counted with the measure its length filter used (``tokenizer`` in the file:
a tokenizer, ``bytes/4``, or the miniature world's words); where none does, n_pmt is
estimated as ``n_shots x shot + question`` from the stated per-dataset lengths in
``ctxscale/data/shot_tokens.yaml`` and the instance count is ``tasks count``'s upper bound.

Seconds come from rates measured once on one H100 with a 7B Llama-2-shaped model
(``ctxscale/data/gpu_rates.yaml``, which holds their provenance), scaled to a model of N
non-embedding parameters by N / N_7B:

* prefill: ``t(T) = a T + b T^2`` fitted to the measured one-pass times; a file costs
  ``t(P)`` for its prefix of P tokens plus ``s (a + b (2P + s))`` for each suffix of s
  tokens (the suffix attends to the prefix); FLOPs ~ N, so x N / N_7B;
* decode: ``ceil(n / batch) x max_new_tokens`` steps at the measured ms per step (eager:
  the transformers backend today; compiled: a static cache), memory-bound ~ N bytes, so
  x N / N_7B; the batch is ``inference.batch_size`` or what memory allows, at least 1;
* memory: weights (2 bytes a parameter) plus the KV cache of one prefix and ``batch``
  rows of suffix + new tokens must fit under what fitted on the card (7B weights + 124,000
  tokens of KV), times the model's ``tensor_parallel_size`` cards for the batch. A file
  whose prefix + longest suffix + new tokens does not fit one card at batch 1 is listed:
  it needs two GPUs (tensor parallel), an fp8 KV cache or a larger card.

The hours are GPU-hours: the work, which tensor parallelism spreads over its cards
(ideal scaling assumed). Not modelled: attention over a long prefix during decode (its
KV is read every step), decode at batches over 64 (measured up to 64), vLLM's cap
``n_pmt + max_tokens <= max_model_len``, and BOS (one token a prompt).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ctxscale.artifacts import PROMPTS, prompts_for
from ctxscale.config import BYTES_DIV_4, load_configs
from ctxscale.errors import CtxscaleError
from ctxscale.models import ModelSpec, models_from_config

#: the decode rates of gpu_rates.yaml the plan reports, in column order
DECODE_MODES = ("eager", "compiled")
#: the prompts file's ``tokenizer`` value for the tokenizer-free estimate, and the
#: miniature world's (one token per word of its vocabulary)
APPROX, MINIWORLD = "approx_bytes_div_4", "miniworld"


# ---------------------------------------------------------------- data files


def _data(name: str) -> dict[str, Any]:
    text = resources.files("ctxscale").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@dataclass(frozen=True)
class Arch:
    """A model's memory facts: total parameters and bf16 KV-cache bytes per token."""

    name: str
    params: float
    kv_bytes_per_token: float
    stated: bool  # True: from the architecture table; False: scaled from the 7B reference


@dataclass(frozen=True)
class Rates:
    """The measured rates (gpu_rates.yaml) and the prefill fit t(T) = a T + b T^2."""

    reference_N: float
    a: float
    b: float
    decode_ms: dict[str, float]
    kv_bytes_per_token: float
    batch1_max_tokens: int
    architectures: tuple[dict[str, Any], ...]
    provenance: dict[str, str]

    @property
    def reference(self) -> Arch:
        return self.arch(self.reference_N)

    @property
    def budget_bytes(self) -> float:
        """Weights + KV that fitted at batch 1: the 7B weights and its largest prompt's KV."""
        ref = self.reference
        return 2.0 * ref.params + ref.kv_bytes_per_token * self.batch1_max_tokens

    def arch(self, N: float) -> Arch:
        """The architecture with non-embedding parameters N, else one scaled from 7B."""
        for a in self.architectures:
            if float(a["N"]) == float(N):
                kv = 2 * a["layers"] * a["kv_heads"] * a["head_dim"] * 2
                return Arch(str(a["name"]), float(a["params"]), float(kv), True)
        ratio = N / self.reference_N
        return Arch("scaled", float(N), self.kv_bytes_per_token * ratio ** (2 / 3), False)


def fit_prefill(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(a, b) of t(T) = a T + b T^2 by least squares in relative error over (T, seconds)."""
    T = np.array([p[0] for p in points], dtype=float)
    t = np.array([p[1] for p in points], dtype=float)
    (a, b), *_ = np.linalg.lstsq(np.c_[T / t, T**2 / t], np.ones_like(T), rcond=None)
    return float(a), float(b)


@cache
def load_rates() -> Rates:
    """The package's measured rates (``ctxscale/data/gpu_rates.yaml``)."""
    raw = _data("gpu_rates.yaml")
    a, b = fit_prefill([(p["tokens"], p["seconds"]) for p in raw["prefill"]])
    return Rates(
        reference_N=float(raw["reference_N"]),
        a=a,
        b=b,
        decode_ms={k: float(v["ms_per_step"]) for k, v in raw["decode"].items()},
        kv_bytes_per_token=float(raw["memory"]["kv_bytes_per_token"]),
        batch1_max_tokens=int(raw["memory"]["batch1_max_tokens"]),
        architectures=tuple(raw["architectures"]),
        provenance={k: " ".join(str(v).split()) for k, v in raw["provenance"].items()},
    )


@cache
def shot_tokens() -> dict[str, dict[str, Any]]:
    """Stated prompt lengths per dataset (``ctxscale/data/shot_tokens.yaml``)."""
    return dict(_data("shot_tokens.yaml")["datasets"])


def stated_lengths(dataset: str) -> tuple[int, int]:
    """(question tokens, tokens per shot) of a dataset, or of its group (``dm_math``)."""
    table = shot_tokens()
    entry = table.get(dataset) or table.get(dataset.split("__", 1)[0])
    if entry is None:
        raise CtxscaleError(
            f"plan: no stated prompt length for dataset {dataset!r} (ctxscale/data/"
            "shot_tokens.yaml); write its prompts files (ctxscale prepare) so they are counted"
        )
    return int(entry["question"]), int(entry["shot"])


# ---------------------------------------------------------------- prompts files


@dataclass(frozen=True)
class FileCount:
    """Token counts of one prompts file: n instances, a shared prefix of P tokens, suffixes."""

    dataset: str
    n_shots: int
    n: int
    P: int
    sum_s: int
    sum_s2: int
    max_s: int
    max_new: int
    counted: str | None  # the measure the tokens were counted with; None: estimated

    @property
    def n_pmt_sum(self) -> int:
        """Sum of n_pmt over the file's prompts (prefix + suffix each, BOS left out)."""
        return self.n * self.P + self.sum_s

    @property
    def prefill_tokens(self) -> int:
        """Tokens computed with the prefix shared: the prefix once plus every suffix."""
        return self.P + self.sum_s


def _words(text: str) -> int:
    return len(text.split())


@cache
def token_counter(measure: str) -> Callable[[str], int]:
    """The counting function of a prompts file's ``tokenizer`` value."""
    from ctxscale.data import prompts
    from ctxscale.data.tasks import load_tokenizer

    if measure == MINIWORLD:
        return _words
    if measure in (APPROX, BYTES_DIV_4):
        return prompts.approx_token_count
    try:
        tok = load_tokenizer(measure)
    except Exception as exc:  # a hub id not cached, a gated model, a bad path
        raise CtxscaleError(f"plan: cannot load tokenizer {measure!r} to count ({exc})") from None
    return prompts.token_counter(tok)[0]


def count_file(path: str) -> FileCount:
    """Counts of an existing prompts file, with the measure its length filter used."""
    return _count_file(_stamp(path))


@cache
def _count_file(stamp: tuple[str, int, int]) -> FileCount:
    from ctxscale.inference.base import load_prompts

    path = stamp[0]
    pf = load_prompts(path)
    measure = str(_header(path).get("tokenizer") or APPROX)
    count = token_counter(measure)
    P = count(pf.prefix)
    s = [max(count(pf.prefix + inst.suffix) - P, 0) for inst in pf.instances]
    return FileCount(
        dataset=pf.dataset,
        n_shots=pf.n_shots,
        n=len(s),
        P=P,
        sum_s=sum(s),
        sum_s2=sum(x * x for x in s),
        max_s=max(s, default=0),
        max_new=pf.max_new_tokens,
        counted="bytes/4" if measure == APPROX else measure,
    )


def estimate_file(dataset: str, n_shots: int, n: int, max_new: int) -> FileCount:
    """Counts of a prompts file not written yet: n_shots x shot + question tokens each."""
    question, shot = stated_lengths(dataset)
    return FileCount(
        dataset=dataset,
        n_shots=n_shots,
        n=n,
        P=n_shots * shot,
        sum_s=n * question,
        sum_s2=n * question * question,
        max_s=question,
        max_new=max_new,
        counted=None,
    )


def _stamp(path: str) -> tuple[str, int, int]:
    """A file's path, mtime and size: the key of the caches below (a rewritten file is
    read again)."""
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


def _header(path: str) -> dict[str, Any]:
    """A prompts file's settings: every key but its prefix and instances."""
    return _read_header(_stamp(path))


@cache
def _read_header(stamp: tuple[str, int, int]) -> dict[str, Any]:
    doc = json.loads(Path(stamp[0]).read_text(encoding="utf-8"))
    return {k: v for k, v in doc.items() if k not in ("prefix", "instances")}


def written_for(doc_path: str, config: dict[str, Any], model: ModelSpec, dataset: str) -> bool:
    """Whether an existing prompts file was written with this config's settings (seed,
    instance cap, difficulty, length-filter tokenizer), not left by another config."""
    from ctxscale.data.tasks import config_options, get_spec

    doc = _header(doc_path)
    want = config_options(config, dataset)
    if get_spec(dataset).generator == "miniworld":
        want["tokenizer"] = MINIWORLD
    else:
        tok = model.tokenizer or config["data"]["tokenizer"]
        want["tokenizer"] = APPROX if tok in (None, BYTES_DIV_4) else tok
    for key in ("seed", "max_instances", "dm_difficulty", "tokenizer"):
        if key in doc and key in want:
            mine = list(want[key]) if isinstance(want[key], tuple) else want[key]
            if doc[key] != mine:
                return False
    return True


# ---------------------------------------------------------------- costs


@dataclass(frozen=True)
class FileCost:
    """Seconds of one prompts file for one model, and whether it fits one card."""

    prefill_s: float
    decode_s: dict[str, float]
    batch: int
    need_tokens: int  # prefix + longest suffix + new tokens: the KV of one row at batch 1
    fits: bool


def capacity_tokens(arch: Arch, rates: Rates, cards: int = 1) -> float:
    """Tokens of KV cache that fit beside the model's weights on ``cards`` H100s
    (negative: the weights do not)."""
    return (cards * rates.budget_bytes - 2.0 * arch.params) / arch.kv_bytes_per_token


def file_cost(fc: FileCount, N: float, batch_size: int, rates: Rates, cards: int = 1) -> FileCost:
    """Prefill and decode GPU-seconds of a file, scaled from 7B by N; the batch is what
    the memory of ``cards`` H100s holds (the work, hence GPU-seconds, does not depend on
    the number of cards); ``fits`` is whether batch 1 fits on one card."""
    arch = rates.arch(N)
    scale = N / rates.reference_N
    prefill = rates.a * (fc.P + fc.sum_s) + rates.b * (fc.P**2 + 2 * fc.P * fc.sum_s + fc.sum_s2)
    room = capacity_tokens(arch, rates)
    need = fc.P + fc.max_s + fc.max_new
    held = capacity_tokens(arch, rates, cards)
    rows = math.floor((held - fc.P) / max(fc.max_s + fc.max_new, 1))
    batch = max(1, min(batch_size, fc.n, rows))
    steps = math.ceil(fc.n / batch) * fc.max_new if fc.n else 0
    decode = {m: steps * rates.decode_ms[m] / 1000 * scale for m in DECODE_MODES}
    return FileCost(prefill * scale, decode, batch, need, need <= room)


@dataclass
class ModelPlan:
    """One row of the plan: a checkpoint (or a family's sum of them)."""

    model: str
    family: str
    N: float
    files: int = 0
    prompts: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    generated_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(DECODE_MODES, 0.0))
    counted: dict[str, int] = field(default_factory=dict)  # measure -> files counted
    #: (dataset, n_shots, tokens needed at batch 1, tokens that fit) of files over one card
    over: list[tuple[str, int, int, int]] = field(default_factory=list)

    def add(self, fc: FileCount, cost: FileCost, room: float) -> None:
        self.files += 1
        self.prompts += fc.n
        self.prompt_tokens += fc.n_pmt_sum
        self.prefill_tokens += fc.prefill_tokens
        self.generated_tokens += fc.n * fc.max_new
        self.prefill_s += cost.prefill_s
        for m in DECODE_MODES:
            self.decode_s[m] += cost.decode_s[m]
        key = fc.counted or "estimated"
        self.counted[key] = self.counted.get(key, 0) + 1
        if not cost.fits:
            self.over.append((fc.dataset, fc.n_shots, cost.need_tokens, max(int(room), 0)))

    def merge(self, other: ModelPlan) -> None:
        for name in ("files", "prompts", "prompt_tokens", "prefill_tokens", "generated_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.prefill_s += other.prefill_s
        for m in DECODE_MODES:
            self.decode_s[m] += other.decode_s[m]
        for k, v in other.counted.items():
            self.counted[k] = self.counted.get(k, 0) + v
        self.over += other.over

    def hours(self, mode: str) -> float:
        return (self.prefill_s + self.decode_s[mode]) / 3600

    @property
    def lengths(self) -> str:
        """How the tokens were obtained: counted (with which measure) or estimated; with
        the number of files of each where they are mixed."""
        names = {k: "estimated" if k == "estimated" else f"counted ({k})" for k in self.counted}
        if len(names) <= 1:
            return next(iter(names.values()), "-")
        parts = [f"{names[k]} {v}" for k, v in sorted(self.counted.items())]
        return "; ".join(parts) + f" of {self.files}"


def plan(
    config: dict[str, Any],
    prompts_root: str = PROMPTS,
    use_files: bool = True,
    require_files: bool = False,
    rates: Rates | None = None,
) -> list[ModelPlan]:
    """One row per checkpoint of a resolved config, in config order."""
    from ctxscale.data.prompts_cap import effective_max_new_tokens
    from ctxscale.data.tasks import count_instances, get_spec
    from ctxscale.inference.cli import inference_settings

    rates = rates or load_rates()
    instances = {r["dataset"]: int(r["instances"]) for r in count_instances(config)}
    cap = config["data"]["max_new_tokens"]
    rows = []
    for model in models_from_config(config):
        row = ModelPlan(model.name, model.family, model.N)
        settings = inference_settings(config, model)
        batch_size = int(settings["batch_size"])
        cards = int(settings.get("tensor_parallel_size") or 1)
        room = capacity_tokens(rates.arch(model.N), rates)
        for dataset, shots in model.plan:
            max_new = effective_max_new_tokens(get_spec(dataset).max_new_tokens, cap)
            for k in shots:
                path = prompts_for(model, dataset, k, prompts_root)
                exists = use_files and os.path.isfile(path)
                if exists and not written_for(path, config, model, dataset):
                    if require_files:
                        raise CtxscaleError(
                            f"plan: {path} was written for another config (seed, "
                            "max_instances, dm_difficulty or tokenizer differ); rewrite it"
                        )
                    exists = False
                if require_files and not exists:
                    raise CtxscaleError(
                        f"plan: no prompts file {path} (--require-prompts); write it with "
                        "ctxscale prepare or the workflow, or leave out --require-prompts"
                    )
                fc = (
                    count_file(path)
                    if exists
                    else estimate_file(dataset, k, instances[dataset], max_new)
                )
                row.add(fc, file_cost(fc, model.N, batch_size, rates, cards), room)
        rows.append(row)
    return rows


def by_family(rows: Sequence[ModelPlan]) -> list[ModelPlan]:
    """The rows summed per family, in order of first appearance (model = family name)."""
    out: dict[str, ModelPlan] = {}
    for r in rows:
        if r.family not in out:
            out[r.family] = ModelPlan(r.family, r.family, r.N)
        elif out[r.family].N != r.N:
            out[r.family].N = float("nan")  # sizes differ: no one N
        out[r.family].merge(r)
    return list(out.values())


def total(rows: Sequence[ModelPlan]) -> ModelPlan:
    """The sum of the rows."""
    t = ModelPlan("total", "", float("nan"))
    for r in rows:
        t.merge(r)
    return t


# ---------------------------------------------------------------- output

COLUMNS = (
    "model",
    "family",
    "N",
    "files",
    "prompts",
    "prompt_tokens",
    "prefill_tokens",
    "generated_tokens",
    "prefill_h",
    *(f"decode_h_{m}" for m in DECODE_MODES),
    *(f"h100_h_{m}" for m in DECODE_MODES),
    "files_over_1_h100",
    "lengths",
)


def row_values(r: ModelPlan) -> list[str]:
    """A row's fields as fixed-format text (integers plain, hours to 2 decimals)."""
    return [
        r.model,
        r.family,
        "" if math.isnan(r.N) else f"{r.N:.4g}",
        str(r.files),
        str(r.prompts),
        str(r.prompt_tokens),
        str(r.prefill_tokens),
        str(r.generated_tokens),
        f"{r.prefill_s / 3600:.2f}",
        *(f"{r.decode_s[m] / 3600:.2f}" for m in DECODE_MODES),
        *(f"{r.hours(m):.2f}" for m in DECODE_MODES),
        str(len(r.over)),
        r.lengths,
    ]


def write_csv(rows: Sequence[ModelPlan], path: str | Path) -> None:
    """The table as CSV: one row per model and a total row, fixed float formatting."""
    from ctxscale.fileio import atomic_write

    lines: list[list[str]] = [list(COLUMNS)]
    lines += [row_values(r) for r in [*rows, total(rows)]]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    atomic_write(Path(path), buf.getvalue())


def _thousands(text: str) -> str:
    return f"{int(text):,}" if text.isdigit() else text


def markdown_table(rows: Sequence[ModelPlan]) -> str:
    """The table in Markdown, integers with thousands separators, a bold total row."""
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in [*rows, total(rows)]:
        vals = [_thousands(v) for v in row_values(r)]
        if r.model == "total":
            vals[0] = "**total**"
        out.append("| " + " | ".join(vals) + " |")
    return "\n".join(out) + "\n"


def over_memory(rows: Sequence[ModelPlan]) -> list[str]:
    """Per model, the files that do not fit one H100 at batch 1: the smallest n_shots of
    each dataset that does not fit (a DeepMind Mathematics group shown once if uniform)."""
    from ctxscale.analysis.aggregate import dataset_group

    lines = []
    for r in rows:
        if not r.over:
            continue
        first: dict[str, int] = {}
        room = r.over[0][3]
        for dataset, k, _, _ in r.over:
            first[dataset] = min(k, first.get(dataset, k))
        by_k: dict[int, list[str]] = {}
        groups: dict[str, set[int]] = {}
        for d, k in first.items():
            groups.setdefault(dataset_group(d), set()).add(k)
        shown: set[str] = set()
        for d, k in first.items():
            g = dataset_group(d)
            if g != d and len(groups[g]) == 1:
                if g not in shown:
                    n = sum(1 for x in first if dataset_group(x) == g)
                    by_k.setdefault(k, []).append(f"{g} ({n} modules)")
                    shown.add(g)
            else:
                by_k.setdefault(k, []).append(d)
        where = "; ".join(f"n_shots >= {k}: {', '.join(v)}" for k, v in sorted(by_k.items()))
        if len(r.over) == r.files:
            where = "every file"
        if room <= 0:
            head = "its bf16 weights alone exceed one H100"
        else:
            head = f"more than {room:,} tokens of KV at batch 1"
        lines.append(f"- {r.model}: {len(r.over):,} of {r.files:,} files, {head}; {where}")
    return lines


def scaled_families(rows: Sequence[ModelPlan], rates: Rates) -> list[str]:
    """Families (in order) of checkpoints whose shape is not in gpu_rates.yaml."""
    out: list[str] = []
    for r in rows:
        if not rates.arch(r.N).stated and r.family not in out:
            out.append(r.family)
    return out


def report(
    rows: Sequence[ModelPlan], sources: Sequence[str], note: str, scaled: Sequence[str] = ()
) -> str:
    """The whole stdout text: the table, what is measured and what estimated, the rates."""
    rates = load_rates()
    prov = rates.provenance
    text = [f"# ctxscale plan: {' + '.join(sources)}", "", markdown_table(rows)]
    text.append(
        "N: non-embedding parameters. prompt_tokens: sum of n_pmt (BOS left out). "
        "prefill_tokens: the shared prefix once per file plus every suffix. "
        "generated_tokens: every prompt to its max new tokens (an upper bound: stop strings "
        "end most earlier). Hours: H100 GPU-hours, prefill + decode, eager = the "
        "transformers backend's measured 60 ms a decode step, compiled = a static cache's "
        "10 ms; the decode batch is inference.batch_size or what the model's "
        "tensor_parallel_size cards hold. "
        f"lengths: {note}"
    )
    text.append("")
    text.append(
        f"Rates measured on {prov['card']}, {prov['date']} ({prov['software']}), "
        f"{prov['model']}; scripts: {prov['scripts']} Prefill t(T) = {rates.a:.3e} T + "
        f"{rates.b:.3e} T^2 s (fitted), decode ms per step as measured, both scaled by "
        "N / 6.476e9 (FLOPs and weight bytes ~ N). Memory: what fitted (7B weights + "
        f"{rates.batch1_max_tokens:,} tokens of bf16 KV); KV bytes per token from each "
        "model's shape (ctxscale/data/gpu_rates.yaml)"
        + (
            f"; shapes not listed there, scaled from 7B (weights 2 N bytes, KV ~ N^(2/3)): "
            f"{', '.join(scaled)}."
            if scaled
            else "."
        )
    )
    lines = over_memory(rows)
    if lines:
        text += [
            "",
            "Files that do not fit one H100 at batch 1 (bf16 KV of prefix + longest suffix "
            "+ new tokens): they need more than one GPU (tensor parallel), an fp8 KV cache "
            "or a larger card:",
            *lines,
        ]
    return "\n".join(text) + "\n"


# ---------------------------------------------------------------- CLI


def _run(args: argparse.Namespace) -> int:
    from ctxscale.data.tasks import scale_configs

    files = [Path(f) for f in args.config] if args.config else scale_configs(args.scale)
    config = load_configs(files)
    if args.require_prompts and not os.path.isdir(args.prompts_root):
        raise CtxscaleError(
            f"plan: no prompts folder {args.prompts_root} (--require-prompts); write the "
            "prompts files first or leave out --require-prompts"
        )
    rows = plan(config, args.prompts_root, not args.estimate, args.require_prompts)
    shown = rows if args.by == "checkpoint" else by_family(rows)
    if args.estimate:
        note = "every file estimated (--estimate) from ctxscale/data/shot_tokens.yaml"
    else:
        note = (
            f"prompts files of this config under {args.prompts_root} counted with their "
            "length filter's measure; the others estimated (instances: the registry's "
            "split sizes capped at data.max_instances; n_pmt = n_shots x shot + question, "
            "stated per dataset in ctxscale/data/shot_tokens.yaml)"
        )
    sources = [os.path.relpath(f) if f.is_absolute() else str(f) for f in files]
    print(report(shown, sources, note, scaled_families(rows, load_rates())), end="")
    if args.out:
        write_csv(shown, args.out)
    return 0


def add_cli(subparsers: Any) -> None:
    """``ctxscale plan``."""
    from ctxscale.data.tasks import add_scale_args

    p = subparsers.add_parser(
        "plan",
        help="prompts, tokens and estimated H100-hours per model of a config",
        description="Count the prompts, prompt tokens and generated tokens each model of a "
        "config runs, and estimate its H100 GPU-hours from rates measured on one H100 "
        "(ctxscale/data/gpu_rates.yaml). Prints a Markdown table.",
    )
    add_scale_args(p)
    p.add_argument(
        "--prompts-root",
        default=PROMPTS,
        metavar="DIR",
        help="where the prompts files are; those of this config are counted (default: %(default)s)",
    )
    files = p.add_mutually_exclusive_group()
    files.add_argument(
        "--estimate",
        action="store_true",
        help="ignore prompts files: estimate every file from the stated per-dataset lengths",
    )
    files.add_argument(
        "--require-prompts",
        action="store_true",
        help="fail unless every prompts file exists (count, never estimate)",
    )
    p.add_argument(
        "--by",
        choices=("checkpoint", "family"),
        default="checkpoint",
        help="one row per checkpoint or per family (default: %(default)s)",
    )
    p.add_argument("--out", metavar="FILE.csv", help="also write the table as CSV here")
    p.set_defaults(func=_run)
