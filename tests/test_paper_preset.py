"""The paper preset as Snakemake resolves it: config.yaml + workflow/presets/paper.yaml.

Snakemake merges ``--configfile`` files key by key (``snakemake.utils.update_config``), so
a default-scale setting that the preset does not restate leaks into the paper scale. These
tests take the config a real Snakemake dry run resolves (the copy the workflow writes for
its rules; conftest's ``snakemake_config``) and check what the paper scale runs: every
dataset's own max new tokens, the models' tokenizer for the 256-token filter, the paper's
settings as a whole.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEMAKE, run_snakemake

from ctxscale.cli import main
from ctxscale.config import dump_config, load_configs, merge_configs, validate_config
from ctxscale.data.prompts_cap import effective_max_new_tokens
from ctxscale.data.tasks import get_spec, registry
from ctxscale.errors import CtxscaleError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config.yaml"
PAPER = ROOT / "workflow/presets/paper.yaml"
LLAMA2_TOKENIZER = "meta-llama/Llama-2-7b-hf"
# Each family's length-filter tokenizer, as the original filters with each evaluated model's
# own (eval.py: AutoTokenizer.from_pretrained(cfg.model) -> utils.validate_instance).
FAMILY_TOKENIZERS = {
    "llama-2-7b-yarn": LLAMA2_TOKENIZER,
    "llama-2-13b-yarn": LLAMA2_TOKENIZER,
    "llama-2-7b-pi": LLAMA2_TOKENIZER,
    "qwen-2.5": "Qwen/Qwen2.5-0.5B",
    "gemma-2": "google/gemma-2-2b",
    "llama-2-70b": LLAMA2_TOKENIZER,
}
OWN_PROMPTS = {
    "qwen-2.5": "results/prompts/by_tokenizer/Qwen--Qwen2.5-0.5B",
    "gemma-2": "results/prompts/by_tokenizer/google--gemma-2-2b",
}
# The original's max new tokens (PAPER.md): 400 arithmetic, 256 WMT, 5 letters, 1 CSQA.
PAPER_MAX_NEW_TOKENS = {
    "gsm8k": 400,
    "math": 400,
    "dm_math__arithmetic__add_or_sub": 400,
    "aqua_rat": 5,
    "arc_easy": 5,
    "hellaswag": 5,
    "commonsense_qa": 1,
    "wmt14_de_en": 256,
    "wmt14_hi_en": 256,
}
# config.yaml leaves that the paper preset may inherit unchanged (none today): anything else
# the preset does not restate is a default-scale setting leaking into the paper scale.
SHARED_WITH_DEFAULT: set[tuple[str, ...]] = set()


@pytest.fixture(scope="module")
def paper(snakemake_config) -> dict:
    return snakemake_config("paper.yaml")


def leaves(d: dict, path: tuple[str, ...] = ()):
    for key, value in d.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key)


def restated(d: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return False
        d = d[key]
    return True


def test_ctxscale_resolves_the_preset_as_snakemake_does(paper):
    """``ctxscale config``'s merge (merge_configs, then validation) gives Snakemake's config."""
    layers = [yaml.safe_load(f.read_text()) for f in (DEFAULT, PAPER)]
    assert yaml.safe_load(dump_config(validate_config(merge_configs(layers)))) == paper
    assert yaml.safe_load(dump_config(load_configs([DEFAULT, PAPER]))) == paper


def test_every_dataset_keeps_its_own_max_new_tokens_at_paper_scale(paper):
    cap = paper["data"]["max_new_tokens"]
    assert cap is None
    for name in paper["datasets"]:
        want = get_spec(name).max_new_tokens
        assert effective_max_new_tokens(want, cap) == want, name
    for name, want in PAPER_MAX_NEW_TOKENS.items():
        assert effective_max_new_tokens(get_spec(name).max_new_tokens, cap) == want, name


def test_no_default_scale_setting_leaks_into_the_paper_preset():
    base = yaml.safe_load(DEFAULT.read_text())
    preset = yaml.safe_load(PAPER.read_text())
    leaked = [p for p in leaves(base) if not restated(preset, p) and p not in SHARED_WITH_DEFAULT]
    assert not leaked, (
        "config.yaml settings that workflow/presets/paper.yaml does not restate (they leak "
        f"into the paper scale): {['.'.join(p) for p in leaked]}"
    )


def test_resolved_paper_config_is_the_papers_setup(paper):
    assert paper["scale"] == "paper" and paper["seed"] == 31337
    assert paper["n_shots"] == [0, 1, 3, 7, 15, 31, 63, 127, 255, 511]
    assert set(paper["datasets"]) == set(registry()) - {
        n for n in registry() if n.startswith("mini_")
    }
    data = paper["data"]
    assert data["source"] == "hub" and data["dm_difficulty"] == [0.0, 1.0]
    assert data["max_instances"] == 250 and data["max_instance_tokens"] == 256
    assert data["max_new_tokens"] is None
    assert data["tokenizer"] == LLAMA2_TOKENIZER
    assert paper["scores"]["aggregation"] == "dataset_groups"
    inference = paper["inference"]
    assert inference["dtype"] == "bfloat16" and inference["max_model_len"] == 131072
    assert inference["enable_prefix_caching"] is True
    assert paper["fit"]["holdout_npmt"] == 10000 and paper["fit"]["seed"] == 31337
    fitted = [c for f in paper["families"] if f["role"] == "fit" for c in f["checkpoints"]]
    assert len(fitted) == 12


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_new_tokens": 24, "tokenizer": LLAMA2_TOKENIZER}, "data.max_new_tokens: 24 caps"),
        ({"tokenizer": None}, "data.tokenizer: scale paper needs"),
    ],
)
def test_paper_scale_refuses_default_scale_settings(paper, data, message):
    bad = {**paper, "data": {**paper["data"], **data}}
    with pytest.raises(CtxscaleError, match=message):
        validate_config(bad)


def test_bytes_div_4_is_an_explicit_choice_at_paper_scale(paper):
    ok = {**paper, "data": {**paper["data"], "tokenizer": "bytes/4"}}
    assert validate_config(ok)["data"]["tokenizer"] == "bytes/4"


def test_each_family_filters_with_its_own_tokenizer(paper):
    """Llama-2's tokenizer for the Llama-2 families (data.tokenizer, the shared prompts
    files); Qwen-2.5 and Gemma-2 their own hub tokenizers and their own prompts files."""
    from ctxscale import artifacts
    from ctxscale.config import family_tokenizers
    from ctxscale.models import models_from_config

    assert family_tokenizers(paper) == FAMILY_TOKENIZERS
    for spec in models_from_config(paper):
        where = OWN_PROMPTS.get(spec.family, "results/prompts")
        assert artifacts.prompts_for(spec, "gsm8k", 7) == f"{where}/gsm8k/7.json", spec.name
        own = FAMILY_TOKENIZERS[spec.family]
        assert spec.tokenizer == (None if own == LLAMA2_TOKENIZER else own), spec.name
    for family in ("qwen-2.5", "gemma-2"):  # the checkpoints' own hub ids
        (fam,) = [f for f in paper["families"] if f["name"] == family]
        assert FAMILY_TOKENIZERS[family] in {c["hub_id"] for c in fam["checkpoints"]}


def test_config_resolved_prints_what_the_paper_scale_runs(capsys):
    assert main(["config", str(DEFAULT), str(PAPER), "--resolved"]) == 0
    out = capsys.readouterr().out
    assert f"measured with the tokenizer {LLAMA2_TOKENIZER}" in out
    for family, tok in FAMILY_TOKENIZERS.items():
        whose = f"its own; prompts {OWN_PROMPTS[family]}" if family in OWN_PROMPTS else "data."
        assert f"# length filter of family {family}: the tokenizer {tok} ({whose}" in out
    assert "aggregation: dataset_groups" in out
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in out.splitlines() if "\t" in ln}
    assert rows["gsm8k"][1:4] == ["arithmetic", "gsm8k", "400"]
    assert rows["wmt14_hi_en"][3] == "256"
    assert rows["dm_math__arithmetic__div"][2:4] == ["dm_math", "400"]


def test_config_resolved_at_default_scale_names_the_estimate(capsys):
    assert main(["config", str(DEFAULT), "--resolved"]) == 0
    out = capsys.readouterr().out
    assert "ceil(UTF-8 bytes / 4)" in out and "capped at 24" in out


@pytest.mark.slow
def test_snakemake_dry_run_resolves_the_paper_preset(tmp_path):
    """The resolved copy a real dry run writes, and its prompts commands: no cap, Llama-2."""
    (tmp_path / "config.yaml").write_text(DEFAULT.read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [*SNAKEMAKE, "-n", "-p", "-s", str(ROOT / "Snakefile")]
    cmd += ["-d", str(tmp_path), "results/prompts/gsm8k/0.json", "--configfile", str(PAPER)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (written,) = (tmp_path / ".snakemake/ctxscale").glob("config-*.yaml")
    resolved = yaml.safe_load(written.read_text())
    assert resolved["data"]["max_new_tokens"] is None
    assert resolved["data"]["tokenizer"] == LLAMA2_TOKENIZER
    text = proc.stdout + proc.stderr
    assert f"--tokenizer {LLAMA2_TOKENIZER}" in text
    assert "cap-prompts" not in text


def dry_run_jobs(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, fields) of each job a `snakemake -n -p` run lists: its input, output and
    wildcards lines and its shell command."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:\n)", text)[1:]:
        rule = block.split(":", 1)[0].removeprefix("rule ")
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        fields["shell"] = re.search(r"^Shell command: (.*)$", block, re.M).group(1)
        jobs.append((rule, fields))
    return jobs


# slow: a paper-scale dry run, like test_workflow.py::test_paper_dag_shape; scripts/check.sh
# runs it (the full suite).
@pytest.mark.slow
def test_paper_dag_prepares_prompts_per_tokenizer(tmp_path):
    """Qwen-2.5 and Gemma-2 (both sizes: one tokenizer, one job) read prompts prepared with
    their own tokenizer; the Llama-2 families (fitted, PI, 70B) read the shared files."""
    from ctxscale import artifacts

    dataset = "wmt14_hi_en"  # Hindi: far more tokens per byte than English
    models = {
        "llama-2-7b-yarn-8k": "llama-2-7b-yarn",
        "llama-2-7b-pi-8k": "llama-2-7b-pi",
        "llama-2-70b-base-4k": "llama-2-70b",
        "qwen-2.5-0.5b": "qwen-2.5",
        "gemma-2-9b": "gemma-2",
        "gemma-2-27b": "gemma-2",
    }
    targets = [artifacts.dataset_manifest(m, dataset) for m in models]
    proc = run_snakemake(tmp_path, "-n", "-p", *targets, "--configfile", str(PAPER))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    prepared = {}
    for rule, job in jobs:
        if rule in ("prompts", "prompts_tokenizer"):
            out_dir = re.search(r"--out-dir (\S+)", job["shell"]).group(1)
            prepared[out_dir] = re.search(r"--tokenizer (\S+)", job["shell"]).group(1)
    assert prepared == {
        f"results/prompts/{dataset}": LLAMA2_TOKENIZER,
        f"{OWN_PROMPTS['qwen-2.5']}/{dataset}": "Qwen/Qwen2.5-0.5B",
        f"{OWN_PROMPTS['gemma-2']}/{dataset}": "google/gemma-2-2b",
    }
    inputs = {
        re.search(r"model=([^,]+)", job["wildcards"]).group(1): job["input"].split(", ")
        for rule, job in jobs
        if rule == "infer"
    }
    assert set(inputs) == set(models)
    for model, family in models.items():
        where = OWN_PROMPTS.get(family, "results/prompts")
        want = [f"{where}/{dataset}/{k}.json" for k in (0, 1, 3, 7, 15, 31, 63, 127, 255, 511)]
        assert sorted(inputs[model]) == sorted(want), model


class DigitSplitTokenizer:
    """Stands in for the Llama-2 tokenizer at the loading boundary: one token per digit
    (as Llama-2 splits numbers) and one per run of other non-space characters."""

    def __init__(self, name: str) -> None:
        self.name_or_path = name

    def encode(self, text: str) -> list[int]:
        return list(range(len(re.findall(r"\d|[^\d\s]+", text))))

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.encode(text)}


def _prepare(tmp_path, capsys, *tokenizer_args):
    out = tmp_path / "p".join(tokenizer_args or ("none",)).replace("/", "_")
    argv = ["prepare", "--dataset", "dm_math__arithmetic__add_or_sub", "--n-shots", "0"]
    argv += ["--max-instances", "40", "--dm-train-size", "10", "--dm-test-size", "40"]
    argv += ["--max-example-tokens", "16", "--out-dir", str(out), *tokenizer_args]
    assert main(argv) == 0
    return json.loads((out / "0.json").read_text()), capsys.readouterr().err


def test_length_filter_uses_the_named_tokenizer_and_says_so(tmp_path, capsys, monkeypatch):
    import transformers

    loaded = []

    def from_pretrained(name, *args, **kwargs):
        loaded.append(name)
        return DigitSplitTokenizer(name)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    llama, log = _prepare(tmp_path, capsys, "--tokenizer", LLAMA2_TOKENIZER)
    assert loaded == [LLAMA2_TOKENIZER] and llama["tokenizer"] == LLAMA2_TOKENIZER
    assert f"measured with {LLAMA2_TOKENIZER}" in log
    approx, log = _prepare(tmp_path, capsys, "--tokenizer", "bytes/4")
    assert approx["tokenizer"] == "approx_bytes_div_4" and loaded == [LLAMA2_TOKENIZER]
    assert "measured with approx_bytes_div_4" in log and "no --tokenizer" not in log
    # digits cost a token each: fewer examples fit 16 tokens than under bytes / 4
    assert len(llama["instances"]) < len(approx["instances"])
    _, log = _prepare(tmp_path, capsys)
    assert "no --tokenizer given" in log


def word_tokenizer(path: Path, split_digits: bool) -> str:
    """A local tokenizer directory (no download): one token per whitespace-separated word,
    or, with ``split_digits``, also one per digit (as Llama-2 splits numbers)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    parts = [pre_tokenizers.WhitespaceSplit()]
    if split_digits:
        parts.append(pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(parts)
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return str(path)


def test_two_local_tokenizers_keep_different_instances(tmp_path, capsys):
    """The same dataset prepared with two tokenizers that count numbers differently keeps
    different instances, and each prompts file and log line names its tokenizer."""
    words = word_tokenizer(tmp_path / "words", split_digits=False)
    digits = word_tokenizer(tmp_path / "digits", split_digits=True)
    by_words, log_words = _prepare(tmp_path, capsys, "--tokenizer", words)
    by_digits, log_digits = _prepare(tmp_path, capsys, "--tokenizer", digits)
    assert (by_words["tokenizer"], by_digits["tokenizer"]) == (words, digits)
    assert f"measured with {words}" in log_words and f"measured with {digits}" in log_digits
    kept_words = {i["id"] for i in by_words["instances"]}
    kept_digits = {i["id"] for i in by_digits["instances"]}
    assert kept_digits and kept_digits < kept_words  # long numbers cost a token per digit


@pytest.mark.slow
def test_workflow_prepares_each_family_with_its_own_tokenizer(tmp_path):
    """A real run of the prompts jobs: a family without a tokenizer gets data.tokenizer's
    selection (the shared prompts file), a family with its own tokenizer its own file,
    prepared with that tokenizer, at the path artifacts.prompts_for gives its model."""
    from ctxscale import artifacts
    from ctxscale.models import models_from_config

    words = word_tokenizer(tmp_path / "tok" / "words", split_digits=False)
    digits = word_tokenizer(tmp_path / "tok" / "digits", split_digits=True)
    ckpt = {"path": "unused", "N": 1e8, "D": 1e12, "n_ctx": 2048}
    overlay = {
        "datasets": ["dm_math__arithmetic__add_or_sub"],
        "n_shots": [0],
        "miniworld": {"activate": False},
        "data": {"tokenizer": words, "max_instances": 40, "max_instance_tokens": 16},
        "families": [
            {"name": "w", "backend": "transformers", "checkpoints": [{**ckpt, "name": "w1"}]},
            {
                "name": "d",
                "backend": "transformers",
                "tokenizer": digits,
                "checkpoints": [{**ckpt, "name": "d1"}],
            },
        ],
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    w1, d1 = models_from_config(load_configs([DEFAULT, tmp_path / "overlay.yaml"]))
    shared = artifacts.prompts_for(w1, "dm_math__arithmetic__add_or_sub", 0)
    own = artifacts.prompts_for(d1, "dm_math__arithmetic__add_or_sub", 0)
    assert shared == "results/prompts/dm_math__arithmetic__add_or_sub/0.json"
    assert own.startswith("results/prompts/by_tokenizer/") and own.endswith(
        "--digits/dm_math__arithmetic__add_or_sub/0.json"
    )
    work = tmp_path / "work"
    work.mkdir()
    proc = run_snakemake(
        work, "--cores", "1", shared, own, "--configfile", str(tmp_path / "overlay.yaml")
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    docs = {p: json.loads((work / p).read_text()) for p in (shared, own)}
    assert docs[shared]["tokenizer"] == words and docs[own]["tokenizer"] == digits
    ids = {p: {i["id"] for i in d["instances"]} for p, d in docs.items()}
    assert ids[own] and ids[shared] and ids[own] != ids[shared]
