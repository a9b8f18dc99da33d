"""Conda environments match pyproject's pins; executor profiles ask for sane resources."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins(specs):
    out = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", spec.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PY_PINS = pins(PROJECT["dependencies"] + PROJECT["optional-dependencies"]["gpu"])


def env_pins(name):
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "python=3.11" in env["dependencies"]
    unpinned = [s for s in pip if "==" not in s and not s.startswith("-e")]
    assert not unpinned, f"envs/{name}.yaml: unpinned {unpinned}"
    return pins(pip)


@pytest.mark.parametrize("name", ["analysis", "inference"])
def test_env_pins_equal_pyproject(name):
    got = env_pins(name)
    for pkg, version in got.items():
        assert PY_PINS.get(pkg) == version, f"envs/{name}.yaml pins {pkg}=={version}"


def test_inference_env_has_vllm_and_analysis_env_has_everything_else():
    assert "vllm" in env_pins("inference") and "torch" not in env_pins("inference")
    base = pins(PROJECT["dependencies"])
    assert env_pins("analysis") == base


def test_every_rule_declares_a_conda_env_that_exists():
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        n_rules = len(re.findall(r"^rule \w+:", text, re.M))
        envs = re.findall(r'^    conda:\n        "([^"]+)"', text, re.M)
        assert len(envs) == n_rules, smk.name
        for env in envs:
            assert (smk.parent / env).resolve().is_file(), f"{smk.name}: {env}"


def profile(name):
    return yaml.safe_load((ROOT / "workflow/profiles" / name / "config.yaml").read_text())


def test_slurm_profile_resources():
    prof = profile("slurm")
    assert prof["executor"] == "slurm"
    default = prof["default-resources"]
    assert default["slurm_partition"] and default["slurm_account"]
    assert int(default["mem_mb"]) > 0 and int(default["runtime"]) > 0
    infer = prof["set-resources"]["infer"]
    assert infer["slurm_partition"] != default["slurm_partition"]  # GPU partition
    assert "gpu" not in infer and "gres" not in infer  # per model, from the rule
    assert prof["rerun-incomplete"] is True


def test_local_profile():
    prof = profile("local")
    assert prof["cores"] == "all" and prof["rerun-incomplete"] is True


# slow: a paper-scale dry run, like test_workflow.py::test_paper_dag_shape; scripts/check.sh
# runs it (the full suite).
@pytest.mark.slow
def test_gpus_per_inference_job_follow_tensor_parallel_size(tmp_path):
    """The paper DAG asks tensor_parallel_size GPUs per vLLM job (and memory with them)."""
    from test_workflow import snakemake

    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({"datasets": ["gsm8k"], "n_shots": [0]}))
    paper = str(ROOT / "workflow/presets/paper.yaml")
    proc = snakemake(tmp_path, "-n", "--configfile", paper, str(small))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = {}
    for block in (proc.stdout + proc.stderr).split("rule infer:")[1:]:
        model = re.search(r"wildcards: model=([^,\s]+)", block).group(1)
        res = re.search(r"resources: (.*)", block).group(1)
        jobs[model] = dict(kv.split("=", 1) for kv in res.split(", "))
    assert len(jobs) == 22
    assert jobs["llama-2-7b-yarn-8k"]["gpu"] == "2" and jobs["gemma-2-2b"]["gpu"] == "1"
    assert jobs["llama-2-70b-base-4k"]["gpu"] == "4" and jobs["gemma-2-27b"]["gpu"] == "2"
    assert int(jobs["llama-2-70b-base-4k"]["mem_mb"]) >= 4 * 64000
    assert int(jobs["gemma-2-2b"]["runtime"]) == 720


def test_default_workflow_profile_resumes_after_a_kill():
    """Snakemake reads profiles/default beside the Snakefile without being told: it redoes
    interrupted jobs and keeps their outputs meanwhile (the finished shards among them)."""
    prof = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    expected = {"rerun-incomplete": True, "keep-incomplete": True}
    assert (ROOT / "Snakefile").is_file() and prof == expected
