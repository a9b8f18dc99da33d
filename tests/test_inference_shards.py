"""Shards: fixed format, byte-identical reruns, resume after a torn write or a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _inference_tiny import build_tiny_model

from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import Backend, Generation, prompts_from_dict
from ctxscale.inference.shards import write_shard

MODEL = {"name": "tiny", "family": "tiny-fam", "n_ctx": 64}


def local_score(metric: str, output: str, reference: object) -> float:
    """A scorer independent of ctxscale.metrics: exact match after stripping."""
    assert metric == "exact_match"
    return float(output.strip() == str(reference))


def make_prompts(n: int = 10) -> dict:
    return {
        "dataset": "toy",
        "task": "arithmetic",
        "n_shots": 1,
        "seed": 31337,
        "prefix": "Question: 1 + 1?\nAnswer: 2\n\n",
        "stop": ["\n\n"],
        "max_new_tokens": 6,
        "metric": "exact_match",
        "instances": [
            {"id": f"q{i}", "suffix": f"Question: {i} + 1?\nAnswer:", "reference": str(i + 1)}
            for i in range(n)
        ],
    }


class EchoBackend(Backend):
    """Deterministic fake: answers i+1 for 'Question: i + 1?'; counts what it was asked."""

    name = "echo"

    def __init__(self, fail_after: int | None = None) -> None:
        self.asked: list[str] = []
        self.fail_after = fail_after

    def settings(self):
        return {"device": "cpu", "dtype": "float32"}

    def generate(self, prefix, suffixes, stop, max_new_tokens, start=0):
        for s in suffixes[start:]:
            if self.fail_after is not None and len(self.asked) == self.fail_after:
                raise KeyboardInterrupt  # an interruption mid-shard
            self.asked.append(s)
            i = int(s.split()[1])
            yield Generation(n_pmt=len(prefix) + len(s), output=f" {i + 1}", n_gen=2)


def test_shard_format_and_bytes(tmp_path):
    prompts = prompts_from_dict(make_prompts(3))
    out = write_shard(prompts, EchoBackend(), MODEL, tmp_path / "a.jsonl", local_score, False)
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])["settings"]
    assert header["model"] == "tiny" and header["backend"] == "echo" and header["n_shots"] == 1
    assert header["stop"] == ["\n\n"] and header["n_instances"] == 3
    recs = [json.loads(x) for x in lines[1:]]
    assert [list(r) for r in recs] == [["id", "n_pmt", "output", "n_gen", "score", "status"]] * 3
    assert [r["score"] for r in recs] == [1.0, 1.0, 1.0]
    assert not (tmp_path / "a.jsonl.partial").exists()
    again = write_shard(prompts, EchoBackend(), MODEL, tmp_path / "b.jsonl", local_score, False)
    assert again.read_bytes() == out.read_bytes()


def test_resume_after_interruption_and_torn_line(tmp_path):
    prompts = prompts_from_dict(make_prompts(10))
    ref = write_shard(prompts, EchoBackend(), MODEL, tmp_path / "ref.jsonl", local_score, False)
    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_shard(prompts, EchoBackend(fail_after=6), MODEL, out, local_score, False)
    partial = tmp_path / "out.jsonl.partial"
    assert not out.exists() and len(partial.read_text().splitlines()) == 1 + 6
    with partial.open("a") as fh:
        fh.write('{"id": "q6", "n_pm')  # a record torn by a kill
    again = EchoBackend()
    write_shard(prompts, again, MODEL, out, local_score, False)
    assert out.read_bytes() == ref.read_bytes()
    assert again.asked == [i.suffix for i in prompts.instances[6:]]  # nothing twice


def test_partial_from_other_settings_is_refused(tmp_path):
    prompts = prompts_from_dict(make_prompts(4))
    partial = tmp_path / "o.jsonl.partial"
    partial.write_text(json.dumps({"settings": {"model": "other"}}) + "\n")
    with pytest.raises(CtxscaleError, match="other settings"):
        write_shard(prompts, EchoBackend(), MODEL, tmp_path / "o.jsonl", local_score, False)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path):
    """`ctxscale infer` killed with SIGKILL mid-run, restarted: same bytes as one clean run."""
    import yaml

    from ctxscale.cli import main

    model = build_tiny_model(tmp_path / "tiny")
    config = {
        "seed": 31337,
        "inference": {"batch_size": 4, "threads": 1},
        "families": [
            {
                "name": "tiny-fam",
                "role": "ood",
                "backend": "transformers",
                "checkpoints": [
                    {"name": "tiny", "path": str(model), "N": 1e5, "D": 1e9, "n_ctx": 64}
                ],
            }
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "prompts.json").write_text(json.dumps(make_prompts(48)))
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"

    def args(target: Path) -> list[str]:
        return [
            "infer",
            "--config",
            str(tmp_path / "config.yaml"),
            "--model",
            "tiny",
            "--prompts",
            str(tmp_path / "prompts.json"),
            "--out",
            str(target),
            "--no-progress",
        ]

    assert main(args(ref)) == 0  # the uninterrupted run, in this process (one thread too)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "ctxscale", *args(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = tmp_path / "out.jsonl.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.read_text().count("\n") >= 1 + 6:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = partial.read_text().count("\n") - 1
    assert not out.exists() and 6 <= n_done < 48
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    assert out.read_bytes() == ref.read_bytes()
    assert not partial.exists()
