"""`ctxscale infer`: bad input fails in one line before any model load; a tiny run works."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from _inference_tiny import build_tiny_model
from test_inference_shards import local_score, make_prompts

from ctxscale.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def write_config(tmp_path, model_path, backend="transformers", **inference):
    config = {
        "seed": 31337,
        "inference": {"batch_size": 4, "threads": 1, **inference},
        "families": [
            {
                "name": "tiny-fam",
                "role": "ood",
                "backend": backend,
                "checkpoints": [
                    {"name": "tiny", "path": str(model_path), "N": 1e5, "D": 1e9, "n_ctx": 64}
                ],
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(make_prompts(5)))
    return path, prompts


def run(capsys, *args):
    status = main(["infer", *args, "--no-progress"])
    return status, capsys.readouterr().err.strip()


def test_tiny_run_and_rerun(tmp_path, tiny, capsys):
    config, prompts = write_config(tmp_path, tiny)
    out = tmp_path / "g" / "tiny" / "toy" / "1.jsonl"
    args = [
        "--config",
        str(config),
        "--model",
        "tiny",
        "--prompts",
        str(prompts),
        "--out",
        str(out),
    ]
    assert run(capsys, *args)[0] == 0
    lines = out.read_text().splitlines()
    header = json.loads(lines[0])["settings"]
    assert header["batch_size"] == 4 and header["dtype"] == "float32" and header["n_ctx"] == 64
    assert len(lines) == 1 + 5
    first = out.read_bytes()
    assert run(capsys, *args, "--force")[0] == 0
    assert out.read_bytes() == first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "nope"}, "unknown model 'nope'; known models: tiny"),
        ({"backend_flag": "tgi"}, "unknown backend 'tgi'"),
        ({"backend": "vllm"}, "needs the vllm package"),
        ({"prompts": "missing.json"}, "prompts file .*missing.json does not exist"),
        ({"model_path": "missing.gguf"}, "model file .*missing.gguf does not exist"),
        ({"model_path": "config.yaml"}, "is not a GGUF file"),
    ],
)
def test_bad_input_is_one_line_before_work(tmp_path, tiny, capsys, monkeypatch, change, message):
    monkeypatch.setattr("ctxscale.inference.cli.get_scorer", lambda: local_score)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)  # no vLLM here
    model_path = tmp_path / change["model_path"] if "model_path" in change else tiny
    config, prompts = write_config(
        tmp_path, model_path, backend=change.get("backend", "transformers")
    )
    if "prompts" in change:
        prompts = tmp_path / change["prompts"]
    args = [
        "--config",
        str(config),
        "--model",
        change.get("model", "tiny"),
        "--prompts",
        str(prompts),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    if "backend_flag" in change:
        args += ["--backend", change["backend_flag"]]
    status, err = run(capsys, *args)
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("ctxscale infer: error: ")
    assert re.search(message, err)
    assert not (tmp_path / "o.jsonl.partial").exists()
