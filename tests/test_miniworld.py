"""The miniature world: deterministic training, exact transformers checkpoints, rope
settings of the extensions, and the behaviour the law needs (worse past n_ctx)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ctxscale.config import validate_config
from ctxscale.data import tasks
from ctxscale.mini import corpus, export, train, world
from ctxscale.mini import tasks as mini_tasks
from ctxscale.mini.model import MiniConfig, MiniLM

TINY = {
    "datasets": [],
    "families": [],
    "n_shots": [0],
    "miniworld": {
        "activate": True,
        "model": {"hidden_size": 32, "num_attention_heads": 1, "intermediate_size": 64},
        "train": {"n_ctx": 32, "batch_size": 16, "warmup": 20, "lr": 0.003, "mix": {"repeat": 1.0}},
        "extend": {"steps": 60, "batch_tokens": 512, "lr": 0.001},
        "families": [
            {
                "name": "tiny",
                "role": "fit",
                "steps": [10, 300],
                "extend": [{"method": "yarn", "factors": [4], "from_steps": 300}],
            },
            {
                "name": "tiny-pi",
                "role": "technique",
                "base_family": "tiny",
                "extend": [{"method": "linear", "factors": [2], "from_steps": 10}],
            },
        ],
    },
}


@pytest.fixture(scope="module")
def mw():
    torch.set_num_threads(1)
    return validate_config(TINY)["miniworld"]


@pytest.fixture(scope="module")
def trained(mw, tmp_path_factory):
    """The tiny family trained once in a scratch directory (paths are relative)."""
    root = tmp_path_factory.mktemp("mini")
    cwd = Path.cwd()
    import os

    os.chdir(root)
    try:
        train.train_family(mw, "tiny", int(mw["seed"]), log=lambda _: None)
        train.extend(mw, "tiny-s300-yarn4x", int(mw["seed"]), log=lambda _: None)
        train.extend(mw, "tiny-s10-pi2x", int(mw["seed"]), log=lambda _: None)
    finally:
        os.chdir(cwd)
    return root


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_non_embedding_count_matches_the_model():
    for shape in (
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 256,
        },
        {
            "hidden_size": 96,
            "num_hidden_layers": 3,
            "num_attention_heads": 3,
            "intermediate_size": 128,
        },
    ):
        model = MiniLM(MiniConfig(vocab_size=len(corpus.vocab().tokens), **shape))
        assert world.non_embedding_params(shape) == model.num_params(non_embedding=True)


def test_checkpoints_count_every_training_token(mw):
    cks = {c.name: c for c in world.checkpoints(mw)}
    assert list(cks) == ["tiny-s10", "tiny-s300", "tiny-s300-yarn4x", "tiny-s10-pi2x"]
    L, batch = 32, 16
    assert (300 + 30) * batch * L == cks["tiny-s300"].D  # decay branch of 10%
    assert cks["tiny-s300-yarn4x"].D == cks["tiny-s300"].D + 60 * 512
    assert cks["tiny-s300-yarn4x"].n_ctx == 4 * L and cks["tiny-s10-pi2x"].n_ctx == 2 * L
    assert cks["tiny-s10-pi2x"].role == "technique" and cks["tiny-s10-pi2x"].base == "tiny-s10"


# slow: a second training run of the whole family; scripts/check.sh runs it (the full suite),
# and its end-to-end run, twice from clean, compares the manifests as well.
@pytest.mark.slow
def test_training_is_deterministic(mw, trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = trained / world.MODELS_DIR
    train.train_family(mw, "tiny", int(mw["seed"]), log=lambda _: None)
    for name in ("tiny-s10", "tiny-s300"):
        assert _digests(Path(world.MODELS_DIR) / name) == _digests(first / name)


def test_checkpoint_describes_itself(mw, trained):
    info = json.loads((trained / world.MODELS_DIR / "tiny-s300" / export.INFO).read_text())
    ck = world.by_name(mw, "tiny-s300")
    assert (info["N"], info["D"], info["n_ctx"]) == (ck.N, ck.D, 32)


def test_extensions_set_transformers_rope_parameters(trained):
    models = trained / world.MODELS_DIR
    yarn = json.loads((models / "tiny-s300-yarn4x" / "config.json").read_text())
    assert yarn["rope_parameters"] == {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32,
        "rope_theta": 500.0,
    }
    assert yarn["max_position_embeddings"] == 128
    pi = json.loads((models / "tiny-s10-pi2x" / "config.json").read_text())
    assert pi["rope_parameters"] == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}
    base = json.loads((models / "tiny-s300" / "config.json").read_text())
    assert base["rope_parameters"] == {"rope_type": "default", "rope_theta": 500.0}


@pytest.mark.parametrize("name", ["tiny-s300", "tiny-s300-yarn4x", "tiny-s10-pi2x"])
def test_transformers_loads_the_checkpoint_with_the_same_logits(trained, name):
    from transformers import AutoModelForCausalLM

    path = trained / world.MODELS_DIR / name
    ours, _ = export.load(path)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    idx = torch.randint(
        4, len(corpus.vocab().tokens), (2, 200), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        diff = (hf(idx).logits - ours(idx)).abs().max().item()
    assert diff < 1e-4


def _copy_accuracy(model: MiniLM, length: int) -> float:
    rng = np.random.default_rng([7, length])
    x, y, m = (torch.from_numpy(a) for a in corpus.batch(rng, 64, length, {"repeat": 1.0}))
    with torch.no_grad():
        pred = model(x).argmax(-1)
    # the last quarter of the sequence: the positions a prompt of this length ends with
    tail = m.clone()
    tail[:, : 3 * length // 4] = False
    return float((pred[tail] == y[tail]).float().mean())


def test_trained_models_fall_past_their_context(trained):
    """The behaviour the penalty factor describes: copying works within n_ctx and fails
    well past it; the YaRN extension moves the limit out."""
    models = trained / world.MODELS_DIR
    base, _ = export.load(models / "tiny-s300")
    assert _copy_accuracy(base, 32) > 0.9
    assert _copy_accuracy(base, 32) - _copy_accuracy(base, 128) > 0.3
    yarn, _ = export.load(models / "tiny-s300-yarn4x")
    assert _copy_accuracy(yarn, 128) - _copy_accuracy(base, 128) > 0.3
    assert _copy_accuracy(yarn, 128) - _copy_accuracy(yarn, 1024) > 0.5


def test_prompts_are_nested_and_deterministic():
    spec = tasks.get_spec("mini_trans")
    docs = mini_tasks.prompts_documents(spec, [0, 2, 8], 5, 31337)
    again = mini_tasks.prompts_documents(spec, [0, 2, 8], 5, 31337)
    assert docs == again
    assert docs[8]["prefix"] == "" and docs[8]["demonstrations"] == "per_instance"
    for i in range(5):
        two = docs[2]["instances"][i]["suffix"]
        eight = docs[8]["instances"][i]["suffix"]
        query = docs[0]["instances"][i]["suffix"]
        assert eight.startswith(two.removesuffix(query)) and eight.endswith(query)
        ref = docs[8]["instances"][i]["reference"]
        assert len(ref.split()) == corpus.PHRASE
        words = eight.split()
        for j, w in enumerate(words[:-1]):  # every earlier showing of the key gives the answer
            if w == query:
                assert " ".join(words[j + 1 : j + 1 + corpus.PHRASE]) == ref


def test_shot_counts_follow_each_models_context(mw):
    assert world.prompt_tokens("mini_recall", 10) == 22
    short = world.shots_for(mw, "mini_recall", 32)
    long = world.shots_for(mw, "mini_recall", 128)
    assert set(short) <= set(long)


def test_evaluation_groups_are_each_familys_ladder_and_extensions(mw):
    assert world.infer_groups(mw) == {
        "tiny_ladder": ["tiny-s10", "tiny-s300"],
        "tiny_tiny_s300_extensions": ["tiny-s300-yarn4x"],
        "tiny_pi_tiny_s10_extensions": ["tiny-s10-pi2x"],
    }
    # the same extension groups are fine-tuned one job each; ladders are trained, not extended
    assert world.extension_groups(mw) == {
        "tiny_tiny_s300_extensions": ["tiny-s300-yarn4x"],
        "tiny_pi_tiny_s10_extensions": ["tiny-s10-pi2x"],
    }


def test_bad_miniworld_configs_fail_at_start():
    from ctxscale.errors import CtxscaleError

    bad_base = {"name": "x", "role": "technique", "base_family": "nope", "extend": []}
    bad_step = {
        "name": "y",
        "role": "fit",
        "steps": [10],
        "extend": [{"method": "yarn", "factors": [2], "from_steps": 20}],
    }
    no_ladder = {"name": "z", "role": "fit"}
    for fam, match in (
        (bad_base, "base_family 'nope'"),
        (bad_step, "from_steps 20"),
        (no_ladder, "needs steps"),
    ):
        cfg = {**TINY, "miniworld": {**TINY["miniworld"], "families": [fam]}}
        with pytest.raises(CtxscaleError, match=match):
            validate_config(cfg)


def test_the_config_backend_runs_every_model_and_vllm_gets_room_for_long_prompts():
    from ctxscale.models import models_from_config

    real = {
        "name": "r",
        "backend": "transformers",
        "checkpoints": [{"name": "r1", "path": "x", "N": 1e8, "D": 1e12, "n_ctx": 2048}],
    }
    config = validate_config({**TINY, "families": [real], "datasets": ["gsm8k"]})
    models = {m.name: m for m in models_from_config(config)}
    assert {m.backend for m in models.values()} == {"transformers"}
    # the transformers run keeps its settings (and so its shard headers) as they were
    assert "max_model_len" not in models["tiny-s300"].settings
    config = validate_config({**TINY, "families": [real], "datasets": ["gsm8k"], "backend": "vllm"})
    models = {m.name: m for m in models_from_config(config)}
    assert {m.backend for m in models.values()} == {"vllm"}
    mw = config["miniworld"]
    for m in models.values():
        if m.settings.get("miniworld"):
            longest = max(world.prompt_tokens(d, max(k)) for d, k in m.plan if k)
            assert longest <= world.prompt_limit(mw, m.n_ctx) < m.settings["max_model_len"]
    assert "max_model_len" not in models["r1"].settings  # a real model: its n_ctx
