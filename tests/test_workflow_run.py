"""The workflow run for real on a tiny random-weight model: killed during inference and rerun,
it completes and keeps every finished shard byte for byte (nothing lost, nothing redone).
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEMAKE

ROOT = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_workdir(tmp_path: Path) -> Path:
    """A working directory whose config.yaml runs two tiny random-weight checkpoints."""
    from _inference_tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny")
    ckpt = {"path": str(model), "D": 1.0e12, "n_ctx": 64}
    config = {
        "datasets": ["dm_math__arithmetic__add_or_sub"],
        "n_shots": [0, 1, 3],
        "data": {"source": "generate", "max_instances": 3, "dm_train_size": 20},
        "families": [
            {
                "name": "tiny",
                "backend": "transformers",
                "checkpoints": [
                    {"name": "tiny-a", "N": 1.0e5, **ckpt},
                    {"name": "tiny-b", "N": 3.0e5, **ckpt},
                ],
            }
        ],
        "inference": {"threads": 1, "batch_size": 2},
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def snakemake_cmd(work: Path, *targets: str) -> list[str]:
    cmd = [*SNAKEMAKE, *targets, "-s", str(ROOT / "Snakefile")]
    return [*cmd, "-d", str(work), "--cores", "1"]


ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.mark.slow
def test_killed_during_inference_rerun_loses_nothing(tmp_path):
    work = tiny_workdir(tmp_path)
    cmd = snakemake_cmd(work, "results/points.csv")
    gens = work / "results" / "generations"

    # Ctrl-C as at a terminal: a shell without job control starts background commands with
    # SIGINT ignored, and children inherit that; reset it before Snakemake starts
    sigint = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    sigint += "os.execv(sys.argv[1], sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", sigint, *cmd],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(gens.glob("*/*/*.jsonl")) and any(gens.glob("*/*/*.partial")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: snakemake and its running job
    proc.wait(timeout=120)
    finished = {p: sha(p) for p in gens.glob("*/*/*.jsonl")}
    assert finished and not (work / "results/points.csv").exists()

    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert {p: sha(p) for p in finished} == finished  # finished shards untouched
    assert len(list(gens.glob("*/*/*.jsonl"))) == 2 * 3 and not list(gens.glob("*/*/*.partial"))
    points = (work / "results/points.csv").read_text().splitlines()
    assert len(points) == 1 + 2 * 3


@pytest.mark.slow
def test_a_deleted_shard_is_redone_alone_when_the_scores_are_rerun(tmp_path):
    """Shards are declared outputs (flagged `update`) and inputs of the scores: with one
    deleted, `--forcerun scores` reruns its (model, dataset) job, which keeps the other
    shards and regenerates that one byte for byte, and the scores come out the same."""
    work = tiny_workdir(tmp_path)
    cmd = snakemake_cmd(work, "results/points.csv")
    first = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    shards = sorted((work / "results/generations").glob("*/*/*.jsonl"))
    before = {p: sha(p) for p in shards}
    scores = sha(work / "results/scores.csv")
    victim = work / "results/generations/tiny-b" / DS / "1.jsonl"
    victim.unlink()

    rerun = subprocess.run(
        [*cmd, "--forcerun", "scores"], env=ENV, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert sha(victim) == before[victim]  # regenerated, the same bytes
    assert {p: sha(p) for p in before} == before
    log = (work / "logs/infer/tiny-b" / f"{DS}.log").read_text()
    assert [line.split()[1] for line in log.splitlines() if line.startswith("wrote ")] == [
        f"results/generations/tiny-b/{DS}/1.jsonl"  # the only shard generated again
    ]
    assert sha(work / "results/scores.csv") == scores


@pytest.mark.slow
def test_identical_configfile_copy_plans_no_jobs(tmp_path):
    """`--configfile` with a copy of config.yaml: the config file's name reruns nothing."""
    work = tiny_workdir(tmp_path)
    cmd = snakemake_cmd(work, "results/points.csv", "results/config.yaml")
    run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    shutil.copy(work / "config.yaml", work / "my.yaml")
    dry = subprocess.run(
        [*cmd, "-n", "--configfile", str(work / "my.yaml")], env=ENV, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


DS = "dm_math__arithmetic__add_or_sub"


def prompts_workdir(tmp_path: Path, **data: object) -> Path:
    """One dataset, three shot counts, a model that is never loaded (prompts only)."""
    ckpt = {"name": "unused", "path": "unused", "N": 1.0e5, "D": 1.0e12, "n_ctx": 64}
    config = {
        "datasets": [DS],
        "n_shots": [0, 1, 3],
        "data": {"source": "generate", "max_instances": 3, "dm_train_size": 20, **data},
        "families": [{"name": "f", "backend": "transformers", "checkpoints": [ckpt]}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


@pytest.mark.slow
def test_hard_kill_mid_job_then_the_plain_command_resumes(tmp_path):
    """Killed after a job wrote outputs but before it ended: `--unlock`, then the README's
    command redoes that job (the default workflow profile) instead of refusing."""
    work = prompts_workdir(tmp_path)
    cmd = snakemake_cmd(work, f"results/prompts/{DS}/0.json")
    proc = subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    out = work / "results/prompts" / DS
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not any(out.glob("*.json")):
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([*cmd, "--unlock"], env=ENV, capture_output=True, check=True)
    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    text = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, text[-3000:]
    assert "workflow specific profile" in text and "IncompleteFilesException" not in text


@pytest.mark.slow
def test_a_failed_job_shows_the_end_of_its_log(tmp_path):
    work = prompts_workdir(tmp_path, source="local", local_dir="nowhere")
    run = subprocess.run(
        snakemake_cmd(work, f"results/prompts/{DS}/0.json"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    tail = run.stderr.split(f"Last lines of logs/prompts/{DS}.log:\n", 1)[1]
    assert f"    ctxscale prepare: error: no local data for {DS} split test" in tail
