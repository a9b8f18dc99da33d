"""`ctxscale infer-dataset`: every shot count of a (model, dataset); resumable, no stale reuse."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import Backend, Generation
from ctxscale.inference.dataset import infer_dataset, instances_reason, stale_reason

CONFIG = {
    "datasets": ["gsm8k"],
    "n_shots": [0, 2],
    "inference": {"dtype": "float32", "batch_size": 4},
    "families": [
        {
            "name": "f",
            "backend": "transformers",
            "checkpoints": [{"name": "m", "path": "x", "N": 1e8, "D": 1e12, "n_ctx": 2048}],
        }
    ],
}


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("c.yaml").write_text(yaml.safe_dump(CONFIG))
    for k in (0, 2):
        path = Path(f"results/prompts/gsm8k/{k}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"dataset": "gsm8k", "task": "arithmetic", "n_shots": k, "seed": 31337}
        doc.update({"stop": ["\n\n"], "max_new_tokens": 5, "metric": "exact_match"})
        doc["instances"] = [{"id": "a", "suffix": "q", "reference": "1"}]
        path.write_text(json.dumps(doc))
    return tmp_path


class FakeInfer:
    """Stands in for `ctxscale infer`: writes a shard with the given dtype, records calls."""

    def __init__(self, dtype="float32", fail_on=None, weights=None):
        self.calls, self.dtype, self.fail_on, self.weights = [], dtype, fail_on, weights

    def __call__(self, config, spec, prompts_path, out):
        prompts = json.loads(Path(prompts_path).read_text())
        self.calls.append(str(out))
        if self.fail_on and out.name == self.fail_on:
            out.with_name(out.name + ".partial").write_text("{}\n")
            raise KeyboardInterrupt
        head = {"model": "m", "n_ctx": 2048, "backend": "transformers", "dtype": self.dtype}
        if self.weights:
            head["weights"] = self.weights
        head.update({k: prompts[k] for k in ("dataset", "n_shots", "seed", "stop")})
        rec = {"id": "a", "n_pmt": 3, "output": "1", "n_gen": 1, "score": 1.0, "status": "ok"}
        out.write_text(json.dumps({"settings": head}) + "\n" + json.dumps(rec) + "\n")
        return 0


def test_runs_every_shot_count_and_lists_the_shards(work):
    fake = FakeInfer()
    shards = infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=fake)
    assert shards == ["results/generations/m/gsm8k/0.jsonl", "results/generations/m/gsm8k/2.jsonl"]
    lines = Path("list.tsv").read_text().splitlines()
    assert lines[0] == "path\tbytes\tsha256" and len(lines) == 3


def test_killed_job_keeps_finished_shards(work):
    with pytest.raises(KeyboardInterrupt):
        infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer(fail_on="2.jsonl"))
    assert Path("results/generations/m/gsm8k/0.jsonl").exists()
    assert Path("results/generations/m/gsm8k/2.jsonl.partial").exists()
    again = FakeInfer()
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=again)
    assert again.calls == ["results/generations/m/gsm8k/2.jsonl"]  # only the unfinished one


def test_stale_shards_are_regenerated(work, capsys):
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer(dtype="bfloat16"))
    again = FakeInfer()
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=again)
    assert len(again.calls) == 2
    assert "dtype is 'bfloat16', config says 'float32'" in capsys.readouterr().out


def test_shards_made_by_other_weights_under_the_same_name_are_regenerated(
    work, monkeypatch, capsys
):
    """A miniature checkpoint retrained with other settings keeps its name: the weights'
    digest in the settings line tells its shards apart, and a shard without one is stale."""
    digest = {"now": "sha256:aaa"}
    monkeypatch.setattr("ctxscale.inference.dataset.weights_id", lambda spec: digest["now"])
    first = FakeInfer(weights="sha256:aaa")
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=first)
    same = FakeInfer(weights="sha256:aaa")
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=same)
    assert len(first.calls) == 2 and same.calls == []
    digest["now"] = "sha256:bbb"
    retrained = FakeInfer(weights="sha256:bbb")
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=retrained)
    assert len(retrained.calls) == 2
    assert "weights is 'sha256:aaa', config says 'sha256:bbb'" in capsys.readouterr().out
    Path("results/generations/m/gsm8k/0.jsonl").unlink()
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer())  # writes no weights
    unnamed = FakeInfer(weights="sha256:bbb")
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=unnamed)
    assert unnamed.calls == ["results/generations/m/gsm8k/0.jsonl"]
    assert "does not record the weights it was made with" in capsys.readouterr().out


def test_a_family_with_its_own_tokenizer_runs_on_its_own_prompts_files(work):
    """Its shards come from the prompts files filtered with its tokenizer
    (artifacts.prompts_for), never from the shared ones."""
    config = {**CONFIG, "families": [{**CONFIG["families"][0], "tokenizer": "org/tok"}]}
    Path("c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CtxscaleError, match=r"prompts file results/prompts/by_tokenizer/org--tok/"):
        infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer())
    own = Path("results/prompts/by_tokenizer/org--tok")
    own.mkdir(parents=True)
    Path("results/prompts/gsm8k").rename(own / "gsm8k")
    fake = FakeInfer()
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=fake)
    assert len(fake.calls) == 2


def test_shards_of_other_instances_are_regenerated(work, capsys):
    """Same settings and count, other instances (say, another tokenizer's selection): the
    shard is stale; a partial whose records begin the prompts file's instances is kept."""
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer())
    for k in (0, 2):
        path = Path(f"results/prompts/gsm8k/{k}.json")
        doc = json.loads(path.read_text())
        doc["instances"] = [{"id": "b" if k == 0 else "a", "suffix": "q", "reference": "1"}]
        path.write_text(json.dumps(doc))
    again = FakeInfer()
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=again)
    assert again.calls == ["results/generations/m/gsm8k/0.jsonl"]
    assert "its records are not the prompts file's instances" in capsys.readouterr().out
    shard = Path("results/generations/m/gsm8k/2.jsonl")
    partial = shard.with_name("2.jsonl.partial")
    head = shard.read_text().splitlines()[0]
    ids = ["a", "b"]
    for records, kept in (([{"id": "a"}], True), ([{"id": "b"}], False), ([], True)):
        partial.write_text("\n".join([head, *map(json.dumps, records)]) + "\n{torn")
        assert (instances_reason(partial, ids, complete=False) is None) is kept
    assert instances_reason(shard, ids, complete=True) is not None  # one record of two


def test_stale_reason_rules():
    want = {"model": "m", "dtype": "auto", "stop": ("\n\n",), "batch_size": 8}
    assert stale_reason({"model": "m", "dtype": "float32", "stop": ["\n\n"]}, want) is None
    assert stale_reason({"model": "n"}, want) == "model is 'n', config says 'm'"
    assert stale_reason(None, want) == "no settings line"


def test_failed_inference_and_missing_prompts_are_errors(work):
    with pytest.raises(CtxscaleError, match=r"inference failed for .*0\.jsonl \(exit status 2\)"):
        infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=lambda *args: 2)
    Path("results/prompts/gsm8k/2.json").unlink()
    with pytest.raises(CtxscaleError, match=r"prompts file results/prompts/gsm8k/2\.json"):
        infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=FakeInfer())
    with pytest.raises(CtxscaleError, match="dataset 'piqa' is not among model 'm''s datasets"):
        infer_dataset("c.yaml", "m", "piqa", "list.tsv", run=FakeInfer())


def test_cap_prompts_lowers_max_new_tokens_only(work):
    from ctxscale.cli import main

    path = Path("capped.json")
    src = ["results/prompts/gsm8k/0.json", "--out", str(path)]
    assert main(["cap-prompts", "--max-new-tokens", "3", *src]) == 0
    doc = json.loads(path.read_text())
    assert doc["max_new_tokens"] == 3 and doc["instances"][0]["id"] == "a"
    before = path.read_bytes()
    again = [str(path), "--out", "again.json"]
    assert main(["cap-prompts", "--max-new-tokens", "10", *again]) == 0  # never raises
    assert Path("again.json").read_bytes() == before
    assert main(["cap-prompts", "--max-new-tokens", "0", *again]) == 2


class EchoBackend(Backend):
    """A loaded "model" that answers each prompt with its own length in characters."""

    name = "transformers"

    def settings(self):
        return {"dtype": "float32", "device": "cpu"}

    def generate(self, prefix, suffixes, stop, max_new_tokens, start=0):
        for suffix in suffixes[start:]:
            prompt = prefix + suffix
            yield Generation(n_pmt=len(prompt), output=str(len(prompt)), n_gen=1)


def test_the_model_is_loaded_once_per_job_and_its_shards_are_written(work, monkeypatch):
    import ctxscale.inference.cli as icli
    from ctxscale.inference.dataset import SharedModelInfer

    Path("x").mkdir()  # the checkpoint's path
    for k in (0, 2):
        path = Path(f"results/prompts/gsm8k/{k}.json")
        doc = json.loads(path.read_text())
        doc["prefix"] = "Q: " * (k + 1)  # "Q: " or "Q: Q: Q: "
        doc["instances"] = [
            {"id": "a", "suffix": "1+1", "reference": "6" if k == 0 else "12"},
            {"id": "b", "suffix": "22", "reference": "5"},
        ]
        path.write_text(json.dumps(doc))
    loads = []
    monkeypatch.setattr(icli, "make_backend", lambda *a, **k: loads.append(a) or EchoBackend())
    # the writer records the weights' digest and the stale check expects it: both read it
    # from ctxscale.models.weights_id (here one digest, as for a miniature checkpoint)
    monkeypatch.setattr(icli, "weights_id", lambda spec: "sha256:w")
    monkeypatch.setattr("ctxscale.inference.dataset.weights_id", lambda spec: "sha256:w")
    shards = infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=SharedModelInfer())
    assert len(loads) == 1
    infer_dataset("c.yaml", "m", "gsm8k", "list.tsv", run=SharedModelInfer())
    assert len(loads) == 1  # the same weights: every shard kept
    # prompt lengths: shot 0 "Q: 1+1" = 6, "Q: 22" = 5; shot 2 "Q: Q: Q: 1+1" = 12, ... = 11
    want = {
        0: [("a", 6, "6", 1.0), ("b", 5, "5", 1.0)],
        2: [("a", 12, "12", 1.0), ("b", 11, "11", 0.0)],
    }
    listed = [ln.split("\t") for ln in Path("list.tsv").read_text().splitlines()[1:]]
    assert [row[0] for row in listed] == shards
    for (k, records), shard, row in zip(want.items(), shards, listed, strict=True):
        data = Path(shard).read_bytes()
        assert row[1:] == [str(len(data)), hashlib.sha256(data).hexdigest()]
        head, *lines = [json.loads(ln) for ln in data.decode().splitlines()]
        settings = head["settings"]
        assert (settings["model"], settings["dataset"], settings["n_shots"]) == ("m", "gsm8k", k)
        assert (settings["family"], settings["n_ctx"], settings["backend"]) == (
            "f",
            2048,
            "transformers",
        )
        assert settings["weights"] == "sha256:w"
        assert (settings["metric"], settings["max_new_tokens"]) == ("exact_match", 5)
        assert settings["n_instances"] == 2 and settings["dtype"] == "float32"
        got = [(r["id"], r["n_pmt"], r["output"], r["score"]) for r in lines]
        assert got == records
        assert {r["status"] for r in lines} == {"ok"}
    assert not list(Path("results/generations").rglob("*.partial"))


def test_a_vllm_job_hops_into_the_vllm_environment(tmp_path, monkeypatch):
    import importlib.util
    import sys

    import ctxscale.inference.cli as icli

    python = tmp_path / "python"
    python.write_text("")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no vLLM here
    monkeypatch.setattr(sys, "argv", ["ctxscale", "infer-dataset", "--model", "m"])
    calls = []
    monkeypatch.setattr(icli.os, "execv", lambda *a: calls.append(a))
    icli.run_in_vllm_env(["transformers"])
    monkeypatch.delenv(icli.ENV_VLLM_PYTHON, raising=False)
    icli.run_in_vllm_env(["vllm"])  # not set: the backend's own check speaks later
    assert calls == []
    monkeypatch.setenv(icli.ENV_VLLM_PYTHON, str(python))
    icli.run_in_vllm_env(["transformers", "vllm"])
    assert calls == [
        (str(python), [str(python), "-m", "ctxscale", "infer-dataset", "--model", "m"])
    ]
    monkeypatch.setenv(icli.ENV_VLLM_PYTHON, str(tmp_path / "missing"))
    with pytest.raises(CtxscaleError, match="CTXSCALE_VLLM_PYTHON=.*missing: no such file"):
        icli.run_in_vllm_env(["vllm"])


def test_a_job_frees_one_models_engine_before_loading_the_next(work, monkeypatch):
    import ctxscale.inference.cli as icli
    from ctxscale.inference.dataset import SharedModelInfer

    config = dict(CONFIG)
    config["families"] = [
        {
            **CONFIG["families"][0],
            "checkpoints": [
                {"name": n, "path": "x", "N": 1e8, "D": 1e12, "n_ctx": 2048} for n in ("m", "n")
            ],
        }
    ]
    Path("c.yaml").write_text(yaml.safe_dump(config))
    Path("x").mkdir()
    for k in (0, 2):  # prompts files as `ctxscale prepare` writes them
        path = Path(f"results/prompts/gsm8k/{k}.json")
        path.write_text(json.dumps({**json.loads(path.read_text()), "prefix": "Q: "}))
    events = []

    class Closing(EchoBackend):
        def close(self):
            events.append("close")

    def load(*a, **k):
        events.append("load")
        return Closing()

    monkeypatch.setattr(icli, "make_backend", load)
    run = SharedModelInfer()
    infer_dataset("c.yaml", "m", "gsm8k", "m.tsv", run=run)
    infer_dataset("c.yaml", "n", "gsm8k", "n.tsv", run=run)
    assert events == ["load", "close", "load"]
