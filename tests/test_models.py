"""Family blocks of the config flatten into checkpoints with N, D, n_ctx and C = 6 N D."""

import pytest

from ctxscale.errors import CtxscaleError
from ctxscale.models import model_by_name, models_from_config

CONFIG = {
    "families": [
        {
            "name": "llama-2-7b-yarn",
            "role": "fit",
            "backend": "vllm",
            "tensor_parallel_size": 2,
            "checkpoints": [
                {"name": "a", "hub_id": "x/a", "N": 6476271616, "D": 2.0e12, "n_ctx": 4096},
                {"name": "b", "hub_id": "x/b", "N": 6476271616, "D": 2.00021e12, "n_ctx": 8192},
            ],
        }
    ]
}


def test_family_settings_reach_every_checkpoint():
    specs = models_from_config(CONFIG)
    assert [s.name for s in specs] == ["a", "b"]
    assert all(s.backend == "vllm" and s.settings["tensor_parallel_size"] == 2 for s in specs)
    assert specs[0].C == pytest.approx(6 * 6476271616 * 2.0e12)  # noqa: SIM300
    assert specs[1].n_ctx == 8192


def test_unknown_model_lists_known_names():
    with pytest.raises(CtxscaleError, match="known models: a, b"):
        model_by_name(CONFIG, "c")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"N": None}, "missing field 'N'"),
        ({"n_ctx": -1}, "n_ctx must be positive"),
        ({"hub_id": None}, "needs one of"),
        ({"name": "a"}, "used twice"),
    ],
)
def test_bad_checkpoint_is_named(patch, message):
    fam = dict(CONFIG["families"][0])
    fam["checkpoints"] = [fam["checkpoints"][0], {**fam["checkpoints"][1], **patch}]
    with pytest.raises(CtxscaleError, match=message):
        models_from_config({"families": [fam]})


def test_a_family_tokenizer_other_than_data_tokenizer_gives_its_own_prompts_files():
    """Every model maps to its prompts file through artifacts.prompts_for: the shared file
    for data.tokenizer's families (a family restating it included), the tokenizer's own
    folder for another tokenizer; the tokenizer is no inference setting."""
    from ctxscale import artifacts

    fam = CONFIG["families"][0]
    ckpt = fam["checkpoints"][0]
    llama = "meta-llama/Llama-2-7b-hf"
    config = {
        "data": {"tokenizer": llama},
        "datasets": ["gsm8k"],
        "n_shots": [0, 3],
        "families": [
            {**fam, "name": "shared", "checkpoints": [ckpt]},
            {**fam, "name": "restated", "tokenizer": llama, "checkpoints": [{**ckpt, "name": "r"}]},
            {
                **fam,
                "name": "qwen",
                "tokenizer": "Qwen/Qwen2.5-0.5B",
                "checkpoints": [{**ckpt, "name": "q"}],
            },
        ],
    }
    a, r, q = models_from_config(config)
    assert (a.tokenizer, r.tokenizer, q.tokenizer) == (None, None, "Qwen/Qwen2.5-0.5B")
    assert "tokenizer" not in q.settings
    assert artifacts.prompts_for(a, "gsm8k", 3) == "results/prompts/gsm8k/3.json"
    assert artifacts.prompts_for(r, "gsm8k", 3) == artifacts.prompt_path("gsm8k", 3)
    own = "results/prompts/by_tokenizer/Qwen--Qwen2.5-0.5B/gsm8k/3.json"
    assert artifacts.prompts_for(q, "gsm8k", 3) == own
    assert (
        artifacts.prompts_for(q, "gsm8k", 3, root="p")
        == "p/by_tokenizer/Qwen--Qwen2.5-0.5B/gsm8k/3.json"
    )
    assert artifacts.own_tokenizers(config) == {"Qwen--Qwen2.5-0.5B": "Qwen/Qwen2.5-0.5B"}
    files = artifacts.prompts(config)
    assert own in files and "results/prompts/gsm8k/3.json" in files and len(files) == 4


def test_weights_id_names_what_made_a_checkpoint(tmp_path):
    """The GGUF's declared sha256; a miniature checkpoint's model.safetensors, read now (so
    retraining under the same name changes it); a pinned hub revision; else nothing."""
    import hashlib

    from ctxscale.models import ModelSpec, weights_id

    base = {"family": "f", "role": "fit", "N": 1.0, "D": 1.0, "n_ctx": 64, "backend": "x"}
    gguf = ModelSpec(name="g", gguf={"sha256": "ab" * 32}, **base)
    assert weights_id(gguf) == "sha256:" + "ab" * 32
    mini = ModelSpec(name="m", path=str(tmp_path), settings={"miniworld": True}, **base)
    assert weights_id(mini) is None  # not trained yet
    (tmp_path / "model.safetensors").write_bytes(b"first")
    assert weights_id(mini) == "sha256:" + hashlib.sha256(b"first").hexdigest()
    (tmp_path / "model.safetensors").write_bytes(b"second")
    assert weights_id(mini) == "sha256:" + hashlib.sha256(b"second").hexdigest()
    assert weights_id(ModelSpec(name="h", hub_id="org/m", revision="abc", **base)) == "org/m@abc"
    assert weights_id(ModelSpec(name="h", hub_id="org/m", **base)) is None
    assert weights_id(ModelSpec(name="p", path=str(tmp_path), **base)) is None
