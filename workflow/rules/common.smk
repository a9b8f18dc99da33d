# Configuration, validation and the artifact list shared by every rule file.

import hashlib
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from ctxscale import artifacts, catalog  # noqa: E402
from ctxscale.config import config_digest, validate_config, write_config  # noqa: E402
from ctxscale.data import tasks  # noqa: E402
from ctxscale.errors import CtxscaleError  # noqa: E402
from ctxscale.joblogs import failure_report  # noqa: E402
from ctxscale.mini import world  # noqa: E402

# Our validator first: one line naming the field, defaults filled in, dataset groups
# (dm_math) expanded; then Snakemake's own validation against the same schema.
try:
    _resolved = validate_config(config)
except CtxscaleError as _exc:
    raise WorkflowError(str(_exc)) from None
config.clear()
config.update(_resolved)
validate(config, "../schemas/config.schema.yaml")

# The resolved config every `ctxscale --config` call reads. Its path depends only on the
# config files given (so a dry run of another preset never overwrites it); the file is
# rewritten only when its content changes. Rules read the path from $CTXSCALE_CONFIG, not
# from a param: Snakemake reruns a job whose params change, and a job must rerun for the
# content that changes its output (in its params), never for a config file's name.
_KEY = hashlib.sha256("\0".join(map(str, workflow.configfiles)).encode()).hexdigest()[:12]
CFG = str(write_config(_resolved, f".snakemake/ctxscale/config-{_KEY}.yaml"))

# Rules call the `ctxscale` installed beside the Python that runs Snakemake, so
# `.venv/bin/snakemake` works without an activated environment.
shell.prefix(
    f"set -euo pipefail; export PATH='{Path(sys.executable).parent}':$PATH; "
    f"export CTXSCALE_CONFIG='{CFG}'; "
)


# A failed job's reason is the end of its log: print it on the terminal.
onerror:
    if report := failure_report(log):
        print(report, file=sys.stderr)


MODELS = {m.name: m for m in artifacts.models(config)}
FIGURES = artifacts.figure_names(config)
PREDICTIONS = artifacts.prediction_names(config)
TARGETS = artifacts.targets(config)
MANIFEST = artifacts.MANIFEST
INFERENCE_OUTPUTS = artifacts.inference_outputs(config)
CACHE = str(config["inference"]["cache_dir"])
MINI_ON = world.active(config)
# {folder: tokenizer} of the families' own length-filter tokenizers (their prompts files)
OWN_TOKENIZERS = artifacts.own_tokenizers(config)


def one_of(names):
    """A wildcard constraint matching exactly these names (nothing when there are none)."""
    return "|".join(map(re.escape, names)) or "(?!)"


MINI_TRAINED = world.trained_families(config["miniworld"]) if MINI_ON else []
MINI_LADDERS = {
    f: [c.name for c in world.family_checkpoints(config["miniworld"], f)] for f in MINI_TRAINED
}
MINI_BASE = world.extension_bases(config["miniworld"]) if MINI_ON else {}
mini_checkpoint_files = world.checkpoint_files
MINI_MODELS = [m.name for m in MODELS.values() if m.settings.get("miniworld")]
MINI_INFER_GROUPS = world.infer_groups(config["miniworld"]) if MINI_ON else {}


def shard_files(models):
    """Every shard the plans of these models write (the inference jobs' `update` outputs)."""
    return [artifacts.shard_path(m, d, k) for m in models for d, ks in MODELS[m].plan for k in ks]


def mini_settings(what):
    """What changes a miniature run's weights (rerun trigger)."""
    return world.settings(config["miniworld"], what)

FIT_INPUTS = ["results/points.csv"]


wildcard_constraints:
    dataset=one_of(artifacts.prompt_grid(config)),
    n_shots=r"\d+",
    model=one_of(MODELS),
    fit="|".join(artifacts.FITS),
    prediction="|".join(artifacts.PREDICTIONS),
    figure="|".join(FIGURES),
    table="|".join(catalog.TABLES),


def model_settings(wildcards):
    """Everything about one checkpoint that changes its generations (rerun trigger)."""
    return settings_of(wildcards.model)


def settings_of(name):
    m = MODELS[name]
    return {
        "name": m.name,
        "backend": m.backend,
        "hub_id": m.hub_id,
        "path": m.path,
        "gguf": m.gguf,
        "revision": m.revision,
        "n_ctx": m.n_ctx,
        "settings": m.settings,
        "inference": config["inference"],
        "seed": config["seed"],
    }


def prepare_settings(dataset, tokenizer=None):
    """What `ctxscale prepare --config` reads for this dataset (rerun trigger): the seed and
    the data block (a miniature dataset: miniworld.seed, .instances); a family's own
    length-filter tokenizer replaces data.tokenizer."""
    settings = tasks.config_options(config, dataset)
    return {**settings, "tokenizer": tokenizer} if tokenizer else settings


def tokenizer_option(tokenizer):
    """`--tokenizer T` (or nothing, for the estimate): the flag names the selection a prompts
    job writes (data.tokenizer's shared files, or a family's own), so the two prompts rules
    read alike on the command line."""
    return f"--tokenizer {tokenizer}" if tokenizer else ""


def model_ready(wildcards):
    """A GGUF model needs `ctxscale fetch-model` first; hub/path models load as they are.
    (Miniature models are evaluated by the infer_mini rules, whose inputs are their
    checkpoints.)"""
    m = MODELS[wildcards.model]
    if not m.gguf:
        return []
    sha12 = str(m.gguf.get("sha256", ""))[:12]
    return [f"{CACHE}/models/{m.name}-{sha12}/ctxscale-model.json"]


def infer_prompts(wildcards):
    """The prompts files of every shot count this model runs on this dataset (those filtered
    with its family's tokenizer)."""
    m = MODELS[wildcards.model]
    return [artifacts.prompts_for(m, wildcards.dataset, k) for k in m.shots(wildcards.dataset)]


def gpus(wildcards):
    """GPUs for one inference job: tensor_parallel_size for GPU backends, else none."""
    m = MODELS[wildcards.model]
    if "gpus" in m.settings:
        return int(m.settings["gpus"])
    return int(m.settings.get("tensor_parallel_size", 1)) if m.backend == "vllm" else 0


def infer_mem_mb(wildcards):
    n = gpus(wildcards)
    res = config["resources"]
    return res["infer_mem_mb"] if n == 0 else max(res["infer_mem_mb"], n * res["gpu_mem_mb_per_gpu"])


def infer_runtime(wildcards):
    res = config["resources"]
    return res["gpu_runtime"] if gpus(wildcards) else res["infer_runtime"]


# Inputs of each figure and table (the catalog), named as `ctxscale figure/table` options.
def figure_inputs(wildcards):
    return catalog.FIGURES[wildcards.figure].paths()


def table_inputs(wildcards):
    return catalog.TABLES[wildcards.table].paths()


def report_inputs(wildcards):
    """Every catalogued input (the predictions this config makes) and every figure's PNG."""
    inputs = {
        k: v.path
        for k, v in catalog.INPUTS.items()
        if k not in artifacts.PREDICTIONS or k in PREDICTIONS
    }
    inputs["pngs"] = [f"figures/{f}.png" for f in FIGURES]
    return inputs


def cli_options(inputs):
    """`--key path` for each named single-file input (fit_main -> --fit-main)."""
    return " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in inputs.items() if isinstance(v, str)
    )
