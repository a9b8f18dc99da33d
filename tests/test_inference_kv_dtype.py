"""transformers backend: keys and values stored in a reduced precision (``inference.kv_dtype``)."""

from __future__ import annotations

import pytest
from _inference_tiny import build_tiny_model

from ctxscale.errors import CtxscaleError
from ctxscale.inference.fetch import ModelSource

PREFIX = "Question: What is 3 + 4?\nAnswer: 7\n\nQuestion: Calculate 12 - 5.\nAnswer: 7\n\n" * 2
SUFFIXES = ["Question: What is 2 * 9?\nAnswer:", "Q", "Question: x?\nAnswer:"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    base = TransformersBackend(ModelSource(str(path)), batch_size=3, threads=1)
    return path, base


def _backend(tiny, kv_dtype):
    from ctxscale.inference.hf import TransformersBackend

    path, base = tiny
    return TransformersBackend(
        ModelSource(str(path)),
        batch_size=3,
        threads=1,
        kv_dtype=kv_dtype,
        model=base.model,
        tokenizer=base.tokenizer,
    )


def _run(backend, monkeypatch, max_new_tokens=4):
    """(generations, the shared prefix, each batch cache's key buffers, first-step logits)."""
    from ctxscale.inference import hf

    buffers, logits, prefixes = [], [], []
    allocate = hf.PreallocatedLayer._allocate

    def record(self, keys, values):
        allocate(self, keys, values)
        buffers.append(self._k)

    forward = backend._forward

    def first_logits(*args):
        out = forward(*args)
        logits.append(out)
        return out

    encode = backend._encode_prefix
    with monkeypatch.context() as m:
        m.setattr(hf.PreallocatedLayer, "_allocate", record)
        m.setattr(backend, "_forward", first_logits)
        m.setattr(
            backend, "_encode_prefix", lambda ids: prefixes.append(encode(ids)) or prefixes[-1]
        )
        gens = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=max_new_tokens))
    (shared,) = prefixes
    layers = backend.model.config.num_hidden_layers
    return gens, shared, buffers[layers:], logits[0]


def _nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize(
    ("kv_dtype", "ratio", "tol"), [("bfloat16", 2, 0.005), ("float8_e4m3fn", 4, 0.05)]
)
def test_reduced_precision_cache_is_stored_smaller_and_stays_close(
    tiny, monkeypatch, kv_dtype, ratio, tol
):
    import torch

    full = _run(_backend(tiny, None), monkeypatch)
    low_backend = _backend(tiny, kv_dtype)
    low = _run(low_backend, monkeypatch)
    want = getattr(torch, kv_dtype)
    for (_, shared, batch, _), dtype in ((full, torch.float32), (low, want)):
        assert {t.dtype for t in shared.keys + shared.values + batch} == {dtype}
    assert _nbytes(full[1].keys + full[1].values) == ratio * _nbytes(low[1].keys + low[1].values)
    assert _nbytes(full[2]) == ratio * _nbytes(low[2])
    # the first step's logits (the rows' own tokens over the stored prefix) stay close
    # (measured 5e-4 and 5e-3 of the largest logit: a tenth of the tolerance)
    diff = (low[3] - full[3]).abs().max()
    assert 0 < diff <= tol * full[3].abs().max()
    assert [g.n_gen for g in low[0]] == [4] * len(SUFFIXES)
    assert low_backend.settings()["kv_dtype"] == kv_dtype


def test_kv_dtype_of_the_model_changes_nothing_and_the_default_header_lacks_it(tiny, monkeypatch):
    import torch

    full = _run(_backend(tiny, None), monkeypatch)
    same = _run(_backend(tiny, "float32"), monkeypatch)
    assert same[0] == full[0]
    assert torch.equal(same[3], full[3])
    assert "kv_dtype" not in tiny[1].settings()


def test_prompts_run_whole_read_the_cache_cast_back(tiny, monkeypatch):
    """Without the shared-prefix attention the model's own attention reads the stored keys,
    cast back to the compute dtype by the cache layer."""
    import torch

    from ctxscale.inference import hf

    backend = _backend(tiny, "bfloat16")
    monkeypatch.setattr(backend, "shares_prefix", False)
    buffers = []
    allocate = hf.PreallocatedLayer._allocate

    def record(self, keys, values):
        allocate(self, keys, values)
        buffers.append(self._k)

    monkeypatch.setattr(hf.PreallocatedLayer, "_allocate", record)
    gens = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=3))
    assert [g.n_gen for g in gens] == [3] * len(SUFFIXES)
    assert buffers and {b.dtype for b in buffers} == {torch.bfloat16}


@pytest.mark.parametrize("name", ["float7", "int8", "bool", "Tensor"])
def test_a_dtype_torch_lacks_is_refused_in_one_line(tiny, name):
    with pytest.raises(CtxscaleError, match="kv_dtype") as err:
        _backend(tiny, name)
    assert "\n" not in str(err.value)


def test_kv_dtype_is_read_from_the_settings(tiny):
    import types

    from ctxscale.inference.hf import TransformersBackend

    src = ModelSource(str(tiny[0]))
    spec = types.SimpleNamespace(name="tiny")
    b = TransformersBackend.from_config(src, spec, {"kv_dtype": "bfloat16", "threads": 1}, 0)
    assert b.settings()["kv_dtype"] == "bfloat16"
    b = TransformersBackend.from_config(src, spec, {"threads": 1}, 0)
    assert b.kv_dtype is None and "kv_dtype" not in b.settings()
