"""YaRN past n_ctx under vLLM: the refusal, and the rotary-table patch on a tiny module.

vLLM is not installed here. ``TinyYaRN`` restates vLLM's ``RotaryEmbedding`` /
``YaRNScalingRotaryEmbedding`` (the attributes and methods the patch relies on:
``max_position_embeddings`` = the original max positions, ``scaling_factor``, ``mscale``,
``_compute_inv_freq(scaling_factor)``, ``_compute_cos_sin_cache()`` called from
``__init__``, a ``cos_sin_cache`` buffer read with ``index_select``), at toy sizes.
"""

import math
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

from ctxscale.errors import CtxscaleError
from ctxscale.inference import vllm_rope
from ctxscale.inference.vllm_backend import rope_scaling_of, yarn_rope_env, yarn_table_len
from ctxscale.inference.vllm_rope import ENV_MAX_POSITIONS, patch_yarn_class
from ctxscale.models import ModelSpec

ROOT = Path(__file__).resolve().parents[1]


def _correction_dim(rotations, dim, base, max_pos):
    return (dim * math.log(max_pos / (rotations * 2 * math.pi))) / (2 * math.log(base))


def _correction_range(low_rot, high_rot, dim, base, max_pos):
    low = math.floor(_correction_dim(low_rot, dim, base, max_pos))
    high = math.ceil(_correction_dim(high_rot, dim, base, max_pos))
    return max(low, 0), min(high, dim - 1)


def _ramp(low, high, dim):
    if low == high:
        high += 0.001
    return torch.clamp((torch.arange(dim, dtype=torch.float) - low) / (high - low), 0, 1)


class TinyRotary(torch.nn.Module):
    """vLLM's RotaryEmbedding: the cache is built in __init__ and read by position."""

    def __init__(self, head_size, rotary_dim, max_position_embeddings, base, is_neox, dtype):
        super().__init__()
        self.head_size, self.rotary_dim = head_size, rotary_dim
        self.max_position_embeddings, self.base = max_position_embeddings, base
        self.is_neox_style, self.dtype = is_neox, dtype
        self.register_buffer("cos_sin_cache", self._compute_cos_sin_cache().to(dtype), False)

    def forward_native(self, positions):
        return self.cos_sin_cache.index_select(0, positions.flatten())


class TinyYaRN(TinyRotary):
    """vLLM's YaRNScalingRotaryEmbedding: table of original max positions x factor."""

    def __init__(self, head_size, rotary_dim, max_position_embeddings, base, is_neox,
                 scaling_factor, dtype, *, beta_fast=32, beta_slow=1):  # fmt: skip
        self.scaling_factor, self.beta_fast, self.beta_slow = scaling_factor, beta_fast, beta_slow
        self.mscale = 0.1 * math.log(scaling_factor) + 1.0 if scaling_factor > 1 else 1.0
        super().__init__(head_size, rotary_dim, max_position_embeddings, base, is_neox, dtype)

    def _compute_inv_freq(self, scaling_factor):
        pos_freqs = self.base ** (
            torch.arange(0, self.rotary_dim, 2, dtype=torch.float) / self.rotary_dim
        )
        extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (scaling_factor * pos_freqs)
        low, high = _correction_range(
            self.beta_fast, self.beta_slow, self.rotary_dim, self.base,
            self.max_position_embeddings,
        )  # fmt: skip
        mask = 1 - _ramp(low, high, self.rotary_dim // 2)
        return interpolation * (1 - mask) + extrapolation * mask

    def _compute_cos_sin_cache(self):
        inv_freq = self._compute_inv_freq(self.scaling_factor)
        t = torch.arange(self.max_position_embeddings * self.scaling_factor, dtype=torch.float32)
        freqs = torch.einsum("i,j -> ij", t, inv_freq)
        return torch.cat((freqs.cos() * self.mscale, freqs.sin() * self.mscale), dim=-1)


def tiny(cls):
    """Original max 16 positions, YaRN factor 4: vLLM's table has 64 rows (= n_ctx)."""
    return cls(8, 8, 16, 10000.0, True, 4.0, torch.float32)


@pytest.fixture
def yarn_cls():
    class Yarn(TinyYaRN):  # a fresh class per test: patches never leak between tests
        pass

    return Yarn


def test_unpatched_table_stops_at_n_ctx(yarn_cls):
    rotary = tiny(yarn_cls)
    assert rotary.cos_sin_cache.shape == (64, 8)
    rotary.forward_native(torch.tensor([63]))
    with pytest.raises((IndexError, RuntimeError)):
        rotary.forward_native(torch.tensor([64]))


def test_patch_extends_the_yarn_table_with_yarns_own_frequencies(yarn_cls):
    before = tiny(yarn_cls).cos_sin_cache
    patch_yarn_class(yarn_cls, 256)
    rotary = tiny(yarn_cls)
    after = rotary.cos_sin_cache
    assert after.shape == (256, 8)
    assert torch.equal(after[:64], before)  # positions vLLM had are unchanged
    t = torch.arange(256, dtype=torch.float32)
    freqs = torch.outer(t, rotary._compute_inv_freq(4.0))
    want = torch.cat((freqs.cos(), freqs.sin()), dim=-1) * rotary.mscale
    torch.testing.assert_close(after, want)
    assert rotary.forward_native(torch.tensor([200])).shape == (1, 8)
    patch_yarn_class(yarn_cls, 128)  # idempotent: the largest request stays
    assert tiny(yarn_cls).cos_sin_cache.shape == (256, 8)


def test_plugin_patches_vllms_class_only_when_asked(yarn_cls, monkeypatch):
    fake = types.ModuleType("vllm.model_executor.layers.rotary_embedding")
    fake.YaRNScalingRotaryEmbedding = yarn_cls
    for name in ("vllm", "vllm.model_executor", "vllm.model_executor.layers"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.delenv(ENV_MAX_POSITIONS, raising=False)
    vllm_rope.register()
    assert tiny(yarn_cls).cos_sin_cache.shape == (64, 8)
    monkeypatch.setenv(ENV_MAX_POSITIONS, "131072")
    vllm_rope.register()
    assert yarn_cls._ctxscale_max_positions == 131072


def test_plugin_is_declared_for_vllm():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"][vllm_rope.PLUGIN_GROUP][vllm_rope.PLUGIN_NAME]
    module, _, func = target.partition(":")
    assert module == vllm_rope.__name__ and callable(getattr(vllm_rope, func))


def _spec(n_ctx):
    return ModelSpec("yarn-8k", "llama-2-7b-yarn", "fit", 6.5e9, 2e12, n_ctx, "vllm", "x/y")


YARN_8K = {"type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096}
PAPER_OPTS = {"max_model_len": 131072}


def test_yarn_past_n_ctx_without_the_plugin_is_refused():
    with pytest.raises(CtxscaleError, match=r"YaRN rotary table covers 8192 positions"):
        yarn_rope_env(_spec(8192), PAPER_OPTS, YARN_8K, plugin=False)
    with pytest.raises(CtxscaleError, match="extend_rope is false"):
        yarn_rope_env(_spec(8192), {**PAPER_OPTS, "extend_rope": False}, YARN_8K, plugin=True)


def test_yarn_past_n_ctx_with_the_plugin_extends_the_table():
    env = yarn_rope_env(_spec(8192), PAPER_OPTS, YARN_8K, plugin=True)
    assert env == {ENV_MAX_POSITIONS: "131072"}


def test_within_the_table_or_without_yarn_nothing_changes():
    assert yarn_rope_env(_spec(8192), {"max_model_len": 8192}, YARN_8K, plugin=False) == {}
    assert yarn_rope_env(_spec(4096), PAPER_OPTS, {}, plugin=False) == {}  # base: hf_overrides
    linear = {"rope_type": "linear", "factor": 2.0}
    assert yarn_rope_env(_spec(8192), PAPER_OPTS, linear, plugin=False) == {}


def test_rope_scaling_is_read_from_settings_then_checkpoint():
    assert rope_scaling_of({"rope_scaling": YARN_8K}, {}) == YARN_8K
    assert rope_scaling_of({"rope_parameters": {"rope_type": "default"}}, {}) == {
        "rope_type": "default"
    }
    override = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}
    assert (
        yarn_table_len(rope_scaling_of({"rope_scaling": YARN_8K}, {"rope_parameters": override}))
        == 16384
    )
    with pytest.raises(CtxscaleError, match="needs numeric 'factor'"):
        yarn_table_len({"rope_type": "yarn"})
