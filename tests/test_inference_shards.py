"""Shards: fixed format, byte-identical reruns, resume after a torn write or a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _inference_tiny import build_tiny_model

from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import Backend, Generation, prompts_from_dict
from ctxscale.inference.shards import lock_path, write_shard

MODEL = {"name": "tiny", "family": "tiny-fam", "n_ctx": 64}


def local_score(metric: str, output: str, reference: object) -> float:
    """A scorer independent of ctxscale.data.metrics: exact match after stripping."""
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


class PausingBackend(EchoBackend):
    """EchoBackend that stops after ``pause_at`` answers until ``go`` is set."""

    def __init__(self, pause_at: int) -> None:
        super().__init__()
        self.pause_at, self.paused, self.go = pause_at, threading.Event(), threading.Event()

    def generate(self, prefix, suffixes, stop, max_new_tokens, start=0):
        for n, gen in enumerate(super().generate(prefix, suffixes, stop, max_new_tokens, start)):
            if n == self.pause_at:
                self.paused.set()
                assert self.go.wait(30)
            yield gen


def shard_ids(path: Path) -> list[str]:
    return [json.loads(x)["id"] for x in path.read_text().splitlines()[1:]]


def test_second_writer_fails_fast_and_first_finishes_every_id_once(tmp_path):
    """A rerun while a killed workflow's job still writes the shard: no duplicates, no crash."""
    prompts = prompts_from_dict(make_prompts(16))
    out = tmp_path / "s.jsonl"
    first = PausingBackend(pause_at=5)
    errors: list[BaseException] = []

    def run_first() -> None:
        try:
            write_shard(prompts, first, MODEL, out, local_score, False)
        except BaseException as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    thread = threading.Thread(target=run_first)
    thread.start()
    assert first.paused.wait(30)
    second = EchoBackend()
    t0 = time.monotonic()
    with pytest.raises(
        CtxscaleError, match=rf"being written by another process \(pid {os.getpid()}\)"
    ):
        write_shard(prompts, second, MODEL, out, local_score, False)
    assert time.monotonic() - t0 < 5 and second.asked == []
    first.go.set()
    thread.join(30)
    assert errors == []
    assert shard_ids(out) == [f"q{i}" for i in range(16)]  # 16 records for 16 ids
    assert not lock_path(out).exists() and not (tmp_path / "s.jsonl.partial").exists()


def test_lock_of_a_killed_writer_is_released(tmp_path):
    """Another process holds the shard: refused; once it is SIGKILLed, the shard resumes."""
    prompts = prompts_from_dict(make_prompts(4))
    out = tmp_path / "k.jsonl"
    holder = (
        "import sys, time; from pathlib import Path; "
        "from ctxscale.inference.shards import shard_lock\n"
        "with shard_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(out)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(CtxscaleError, match=rf"\(pid {proc.pid}\); wait for it"):
            write_shard(prompts, EchoBackend(), MODEL, out, local_score, False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert lock_path(out).exists()  # left behind by the kill, no longer held
    write_shard(prompts, EchoBackend(), MODEL, out, local_score, False)
    assert shard_ids(out) == ["q0", "q1", "q2", "q3"] and not lock_path(out).exists()


class MeddlingBackend(EchoBackend):
    """EchoBackend during whose run an unlocked writer appends a duplicate record."""

    def __init__(self, partial: Path) -> None:
        super().__init__()
        self.partial = partial

    def generate(self, prefix, suffixes, stop, max_new_tokens, start=0):
        for n, gen in enumerate(super().generate(prefix, suffixes, stop, max_new_tokens, start)):
            if n == 2:
                first = self.partial.read_text().splitlines()[1]
                with self.partial.open("a") as fh:
                    fh.write(first + "\n")
            yield gen


def test_resume_keeps_each_id_once_and_never_publishes_a_duplicate(tmp_path):
    prompts = prompts_from_dict(make_prompts(8))
    out = tmp_path / "d.jsonl"
    with pytest.raises(KeyboardInterrupt):
        write_shard(prompts, EchoBackend(fail_after=3), MODEL, out, local_score, False)
    again = EchoBackend()
    write_shard(prompts, again, MODEL, out, local_score, False)
    assert shard_ids(out) == [f"q{i}" for i in range(8)]
    assert again.asked == [i.suffix for i in prompts.instances[3:]]
    bad = tmp_path / "bad.jsonl"
    with pytest.raises(CtxscaleError, match="does not match the prompts file"):
        write_shard(
            prompts, MeddlingBackend(tmp_path / "bad.jsonl.partial"), MODEL, bad, local_score, False
        )
    assert not bad.exists()  # complete or absent


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


def test_progress_into_a_log_file_is_a_few_lines_not_one_per_instance(tmp_path, capsys):
    """A workflow job's stderr is a log file: the bar is drawn at its start and end (and every
    10 s), so 200 quick instances do not write 200 redraws."""
    prompts = prompts_from_dict(make_prompts(200))
    write_shard(prompts, EchoBackend(), MODEL, tmp_path / "a.jsonl", local_score, True)
    err = capsys.readouterr().err
    assert "200/200" in err and "tok/s" in err
    assert err.count("\r") <= 4
