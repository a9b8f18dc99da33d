"""The config schema and loader: presets are valid, a malformed config names its field."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctxscale.cli import main
from ctxscale.config import (
    config_digest,
    length_filter,
    load_config,
    load_configs,
    resolved_summary,
    validate_config,
    write_config,
)
from ctxscale.errors import CtxscaleError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("presets", [(), ("paper.yaml",), ("ci.yaml",)])
def test_shipped_configs_are_valid(presets):
    """Each preset as ``ctxscale config`` resolves it (load_configs; that this is what
    Snakemake resolves is checked in test_paper_preset.py)."""
    files = [ROOT / "config.yaml"] + [ROOT / "workflow/presets" / p for p in presets]
    config = load_configs(files)
    assert config["seed"] == 31337
    assert config["fit"]["loss"] in ("squared", "absolute", "huber")


def test_defaults_are_filled():
    config = load_config(ROOT / "config.yaml")
    assert config["data"]["max_instance_tokens"] == 256
    assert config["resources"]["infer_mem_mb"] > 0


# sha256 of '{"a":1,"b":[1,2.5,"x"],"c":{"d":null}}' (canonical JSON: sorted keys, no
# spaces), first 12 hex digits. Rule config_copy reruns when this digest changes, so it
# must depend on the content only: not on key order, the process or its hash seed.
SMALL = {"b": [1, 2.5, "x"], "a": 1, "c": {"d": None}}
SMALL_DIGEST = "3c474a26d8dd"


def test_config_digest_is_the_sha256_of_the_canonical_json():
    import hashlib

    blob = b'{"a":1,"b":[1,2.5,"x"],"c":{"d":null}}'
    assert hashlib.sha256(blob).hexdigest()[:12] == SMALL_DIGEST
    assert config_digest(SMALL) == SMALL_DIGEST
    assert config_digest(dict(reversed(list(SMALL.items())))) == SMALL_DIGEST
    assert config_digest({**SMALL, "a": 2}) != SMALL_DIGEST
    assert config_digest({**SMALL, "b": [2.5, 1, "x"]}) != SMALL_DIGEST  # lists keep order
    config = load_config(ROOT / "config.yaml")
    assert config_digest(config) != config_digest({**config, "seed": config["seed"] + 1})


def test_schema_in_workflow_dir_is_the_package_schema():
    a = (ROOT / "workflow/schemas/config.schema.yaml").read_bytes()
    assert a == (ROOT / "src/ctxscale/config.schema.yaml").read_bytes()


GOOD = {
    "datasets": ["dm_math__arithmetic__mul"],
    "n_shots": [0, 1],
    "families": [
        {
            "name": "f",
            "backend": "transformers",
            "checkpoints": [{"name": "m", "path": "x", "N": 1e8, "D": 1e12, "n_ctx": 2048}],
        }
    ],
}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"seed": "x"}, r"^config: seed: 'x' is not of type 'integer'$"),
        ({"n_shots": [0, -1]}, r"^config: n_shots\[1\]: -1 is less than the minimum of 0$"),
        ({"n_shot": [0]}, r"^config: n_shot: unknown setting; known here: .*n_shots"),
        ({"fit": {"loss": "cubic"}}, r"^config: fit\.loss: 'cubic' is not one of"),
        ({"datasets": []}, r"^config: datasets: \[\] should be non-empty"),
        (
            {"families": [{**GOOD["families"][0], "checkpoints": [{"name": "m", "N": 1}]}]},
            r"^config: families\[0\]\.checkpoints\[0\]: 'D' is a required property",
        ),
        (
            {"families": [{**GOOD["families"][0], "role": "test"}]},
            r"^config: families\[0\]\.role: 'test' is not one of",
        ),
    ],
)
def test_malformed_config_names_the_field(patch, message):
    with pytest.raises(CtxscaleError, match=message):
        validate_config({**GOOD, **patch})


FAMILY = GOOD["families"][0]
CKPT = FAMILY["checkpoints"][0]
CKPT2 = {**CKPT, "name": "m2"}


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"fit": {"penalty": "logsigmoid"}}, r"^config: fit\.penalty: 'logsigmoid' is not one of"),
        (
            {"families": [{**FAMILY, "n_ctxx": 4096}]},
            r"^config: families\[0\]\.n_ctxx: unknown setting; known here: backend, .*checkpoints",
        ),
        (
            {"families": [{**FAMILY, "backendd": "vllm"}]},
            r"^config: families\[0\]\.backendd: unknown setting; known here: ",
        ),
        (
            {"families": [{**FAMILY, "checkpoints": [{**CKPT, "hubid": "a/b"}]}]},
            r"^config: families\[0\]\.checkpoints\[0\]\.hubid: unknown setting; .*hub_id",
        ),
        (
            {"families": [{**FAMILY, "backend": "vlm"}]},
            r"^config: families\[0\]\.backend: 'vlm' is not one of \['transformers', 'vllm'\]$",
        ),
        (
            {"inference": {"batchsize": 4}},
            r"^config: inference\.batchsize: unknown setting; known here: .*batch_size",
        ),
        (
            {"inference": {"device": "gpu"}},
            r"^config: inference\.device: 'gpu' does not match",
        ),
        (
            {"families": [{**FAMILY, "checkpoints": [{**CKPT, "gguf": {"package": []}}]}]},
            r"^config: families\[0\]\.checkpoints\[0\]\.gguf\.package: unknown setting",
        ),
        (
            {"families": [FAMILY, {**FAMILY, "checkpoints": [{**CKPT, "name": "m2"}]}]},
            r"^config: families\[1\]\.name: family 'f' is defined twice$",
        ),
        (
            {"data": {"dm_difficulty": [0.8, 0.2]}},
            r"^config: data\.dm_difficulty: \[0\.8, 0\.2\] is reversed; give \[low, high\]$",
        ),
        (  # the length filter's tokenizer is a family's, not a checkpoint's
            {"families": [{**FAMILY, "checkpoints": [{**CKPT, "tokenizer": "a/b"}]}]},
            r"^config: families\[0\]\.checkpoints\[0\]\.tokenizer: unknown setting",
        ),
        (
            {
                "families": [
                    {**FAMILY, "tokenizer": "a/b"},
                    {**FAMILY, "name": "g", "tokenizer": "a--b", "checkpoints": [CKPT2]},
                ]
            },
            r"^config: families\[1\]\.tokenizer: 'a--b' and 'a/b' would share the prompts "
            r"folder 'a--b'",
        ),
    ],
)
def test_typos_and_contradictions_fail_at_start(patch, message):
    with pytest.raises(CtxscaleError, match=message):
        validate_config({**GOOD, **patch})


def test_settings_on_family_checkpoint_and_inference_are_accepted():
    fam = {**FAMILY, "tensor_parallel_size": 2, "dtype": "bfloat16", "gpus": 1}
    fam["checkpoints"] = [{**CKPT, "max_model_len": 4096, "extend_rope": False}]
    inference = {"device": "cuda:1", "gpu_memory_utilization": 0.8, "vllm_chunk": 64}
    config = validate_config({**GOOD, "families": [fam], "inference": inference})
    assert config["inference"]["batch_size"] == 8 and config["families"][0]["role"] == "fit"


def test_a_family_names_its_own_length_filter_tokenizer():
    """Set on the family only (no default is filled in, so configs without it resolve as
    before); the resolved summary names each family's tokenizer and its prompts folder."""
    fam = {**FAMILY, "name": "g", "tokenizer": "Qwen/Qwen2.5-0.5B", "checkpoints": [CKPT2]}
    config = validate_config({**GOOD, "families": [FAMILY, fam]})
    assert "tokenizer" not in config["families"][0]
    assert config["families"][1]["tokenizer"] == "Qwen/Qwen2.5-0.5B"
    text = resolved_summary(config, ["c.yaml"])
    assert "# length filter of family f: ceil(UTF-8 bytes / 4), no tokenizer (data." in text
    assert (
        "# length filter of family g: the tokenizer Qwen/Qwen2.5-0.5B (its own; prompts "
        "results/prompts/by_tokenizer/Qwen--Qwen2.5-0.5B)" in text
    )
    assert length_filter(config).endswith(", except: the tokenizer Qwen/Qwen2.5-0.5B for g")


def test_schema_choices_are_the_registries():
    """The backend and penalty enums list exactly what the code registers."""
    from ctxscale.analysis.law import PENALTIES
    from ctxscale.config import schema
    from ctxscale.inference.base import BACKENDS

    assert schema()["$defs"]["backend"]["enum"] == list(BACKENDS)
    assert set(schema()["properties"]["fit"]["properties"]["penalty"]["enum"]) == set(PENALTIES)


def test_family_checks_run_after_the_schema():
    fam = {k: v for k, v in GOOD["families"][0].items() if k != "backend"}
    fam["checkpoints"] = [{"name": "m", "path": "x", "N": 1, "D": 1, "n_ctx": 1}]
    with pytest.raises(CtxscaleError, match="missing field 'backend'"):
        validate_config({**GOOD, "families": [fam]})


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "seed": -3}))
    assert main(["config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ctxscale config: error: {bad}: config: seed: -3 is less than the minimum of 0"]


def test_yaml_exponent_without_sign_is_caught(tmp_path):
    # PyYAML reads 2.0e12 as a string (YAML 1.1); the schema says so plainly.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(GOOD).replace("1000000000000.0", "2.0e12"))
    with pytest.raises(CtxscaleError, match=r"checkpoints\[0\]\.D: '2.0e12' is not of type"):
        load_config(bad)


def test_write_config_keeps_identical_file_untouched(tmp_path):
    path = write_config(validate_config(GOOD), tmp_path / "c.yaml")
    before = path.stat().st_mtime_ns
    write_config(validate_config(GOOD), path)
    assert path.stat().st_mtime_ns == before
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-m", "ctxscale", "config", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0 and out.stdout == path.read_text()
