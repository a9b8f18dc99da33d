"""The Snakemake workflow's DAG: job counts per rule, single targets, family swap, config errors.

Dry runs only (no inference, no GPU): each test runs `snakemake -n` in a scratch working
directory against the repository's Snakefile.
"""

import re
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "workflow/presets/paper.yaml"


def snakemake(workdir, *args, timeout=120):
    """Run snakemake against the repo's Snakefile in ``workdir`` (config.yaml copied there),
    without the SLURM plugin's probe (scripts/run_snakemake.py)."""
    return run_snakemake(workdir, *args, timeout=timeout)


def job_counts(workdir, *args):
    """{rule: count} from a dry run's job stats table."""
    proc = snakemake(workdir, "-n", *args, "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    text = proc.stdout + proc.stderr
    table = text.split("Job stats:", 1)[1]
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
        if m.group(1) != "total"
    }


DEFAULT_COUNTS = {
    "all": 1,
    "config_copy": 1,
    "fetch_model": 2,  # the two GGUF models (the real-model check)
    "prompts": 2,  # one per dataset (every shot count)
    "infer": 4,  # one per (model, dataset): 2 models x 2 DeepMind Mathematics modules
    "mini_prompts": 3,  # the miniature world's three datasets
    "mini_train_mini": 1,  # one run per trained family: its whole compute ladder
    "mini_train_mini_wide": 1,
    # the 9 extensions in 3 jobs: YaRN 2/4/8x of two ladder steps, PI 2/4/8x of one
    "mini_extend_mini_mini_s3000_extensions": 1,
    "mini_extend_mini_mini_s1500_extensions": 1,
    "mini_extend_mini_pi_mini_s3000_extensions": 1,
    # the miniature models in 5 jobs: each family's ladder, each checkpoint's extensions
    "infer_mini_mini_ladder": 1,
    "infer_mini_mini_mini_s3000_extensions": 1,
    "infer_mini_mini_mini_s1500_extensions": 1,
    "infer_mini_mini_pi_mini_s3000_extensions": 1,
    "infer_mini_mini_wide_ladder": 1,
    "scores": 1,
    "fit": 8,  # main, no_penalty, penalty/loss/floor/coupling variants, extrapolation, agnostic
    "predict": 2,  # the miniature OOD family and the PI family
    "figure": 11,  # figures 1-7, ood_compute, yarn_vs_pi, residuals, params
    "table": 4,
    "report": 1,
    "manifest": 1,
}


def test_default_dag_has_every_stage(tmp_path):
    assert job_counts(tmp_path) == DEFAULT_COUNTS


def paper_datasets():
    """The paper preset's datasets after group expansion (dm_math -> its modules)."""
    from ctxscale.config import load_configs

    return load_configs([ROOT / "config.yaml", PAPER])["datasets"]


def paper_counts():
    n_datasets = len(paper_datasets())
    return {
        "all": 1,
        "config_copy": 1,
        "prompts": n_datasets,
        # Qwen-2.5's and Gemma-2's own length-filter tokenizers: their own prompts files
        "prompts_tokenizer": 2 * n_datasets,
        # 12 Llama-2 7B/13B + 5 PI 7B + Qwen + 3 Gemma-2 + Llama-2-70B = 22 checkpoints
        "infer": 22 * n_datasets,
        "scores": 1,
        "fit": 8,
        "predict": 2,  # ood, technique
        "figure": 11,
        "table": 4,
        "report": 1,
        "manifest": 1,
    }


@pytest.mark.slow
def test_paper_dag_shape(tmp_path):
    """Every job of the paper preset's DAG, by rule (its time: benchmarks/bench_dag.py)."""
    assert job_counts(tmp_path, "--configfile", str(PAPER)) == paper_counts()


def test_paper_preset_has_every_dataset_of_the_paper():
    names = paper_datasets()
    for name in ("gsm8k", "math", "aqua_rat", "piqa", "winogrande", "wmt14_hi_en"):
        assert name in names
    assert len(names) >= 17
    assert sum(n.startswith("dm_math__") for n in names) > 40


NEW_FAMILY = {
    "name": "my-family",
    "role": "ood",
    "backend": "transformers",
    "checkpoints": [
        {"name": "my-model-a", "path": "cache/my-a", "N": 5.0e8, "D": 1.0e12, "n_ctx": 4096},
        {"name": "my-model-b", "path": "cache/my-b", "N": 1.5e9, "D": 1.0e12, "n_ctx": 4096},
    ],
}


@pytest.mark.slow
def test_adding_a_family_adds_its_jobs_and_the_ood_check(tmp_path):
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"families": [*base["families"], NEW_FAMILY]}))
    counts = job_counts(tmp_path, "--configfile", str(extra))
    n_datasets = len(base["datasets"])
    assert counts["infer"] == DEFAULT_COUNTS["infer"] + 2 * n_datasets
    assert counts["fetch_model"] == DEFAULT_COUNTS["fetch_model"]  # local paths: no fetch
    # results/predictions/ood.csv (now with both ood families) and technique.csv
    assert counts["predict"] == DEFAULT_COUNTS["predict"]
    assert counts["figure"] == DEFAULT_COUNTS["figure"]  # ood_compute already drawn
    proc = snakemake(tmp_path, "figures/ood_compute.pdf", "-n", "-p", "--configfile", str(extra))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert f"results/generations/my-model-b/{base['datasets'][-1]}/manifest.tsv" in out
    assert "--where role=ood" in out


def test_malformed_config_fails_at_start_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit:\n  holdout_npmt: -5\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(bad))
    assert proc.returncode != 0
    assert "config: fit.holdout_npmt: -5 is less than or equal to the minimum of 0" in (
        proc.stdout + proc.stderr
    )
    assert "Job stats" not in proc.stdout


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr
