"""transformers backend on a tiny random Llama: prefix reuse + batching change nothing."""

from __future__ import annotations

import pytest
from _inference_tiny import build_tiny_model

from ctxscale.inference.base import STATUS_OK, STATUS_OVER_MAX_LEN
from ctxscale.inference.fetch import ModelSource

PREFIX = "Question: What is 3 + 4?\nAnswer: 7\n\nQuestion: Calculate 12 - 5.\nAnswer: 7\n\n"
SUFFIXES = [
    "Question: What is 2 * 9?\nAnswer:",
    "Question: x?\nAnswer:",
    "",
    "Q",
    "Question: Calculate 12 - 5 and then a much longer question.\nAnswer:",
]


@pytest.fixture(scope="module", params=[False, True], ids=["no_bos", "bos"])
def backend(request, tmp_path_factory):
    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), bos=request.param)
    return TransformersBackend(ModelSource(str(path)), batch_size=3, threads=1)


def reference(backend, prefix, suffix, max_new_tokens):
    """Plain transformers generate() on the whole prompt: no cache tricks, no batching."""
    import torch

    (prompt,) = backend.encode(prefix, [suffix])
    ids = torch.tensor([prompt])
    out = backend.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=backend.tokenizer.pad_token_id,
    )
    new = out[0, ids.shape[1] :].tolist()
    return backend.tokenizer.decode(new, skip_special_tokens=True), len(new)


def test_joint_tokenisation_bos_once_and_shared_prefix(backend):
    from ctxscale.inference.base import shared_prefix_len

    prompts = backend.encode(PREFIX, SUFFIXES)
    tok = backend.tokenizer
    bos = tok.bos_token_id
    for suffix, ids in zip(SUFFIXES, prompts, strict=True):
        text_ids = tok(PREFIX + suffix, add_special_tokens=False)["input_ids"]
        assert ids[len(ids) - len(text_ids) :] == text_ids  # one text, as the original
        adds_bos = tok("a")["input_ids"][0] == bos
        assert ids.count(bos) == int(adds_bos) and (ids[0] == bos) == adds_bos
    n = shared_prefix_len(prompts)
    assert 0 < n < min(len(p) for p in prompts)
    assert len({tuple(p[:n]) for p in prompts}) == 1


def test_batched_prefix_reuse_equals_plain_generate(backend):
    gens = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=12))
    assert [g.status for g in gens] == [STATUS_OK] * len(SUFFIXES)
    for suffix, gen in zip(SUFFIXES, gens, strict=True):
        text, n_gen = reference(backend, PREFIX, suffix, 12)
        assert (gen.output, gen.n_gen) == (text, n_gen)
        (prompt,) = backend.encode(PREFIX, [suffix])
        assert gen.n_pmt == len(prompt)


def test_batch_size_does_not_change_outputs(backend):
    batched = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=10))
    old = backend.batch_size
    try:
        backend.batch_size = 1
        single = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=10))
    finally:
        backend.batch_size = old
    assert batched == single


def test_start_gives_the_tail_of_a_full_run(backend):
    full = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=7))
    for start in (1, 3, 4):
        tail = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=7, start=start))
        assert tail == full[start:]


def test_stop_string_cuts_output_and_ends_generation(backend):
    (free,) = backend.generate(PREFIX, SUFFIXES[:1], stop=[], max_new_tokens=16)
    stop = free.output[4:6]  # a string the model is known to produce
    assert stop
    (cut,) = backend.generate(PREFIX, SUFFIXES[:1], stop=[stop], max_new_tokens=16)
    assert cut.output == free.output[: free.output.find(stop)]
    assert stop not in cut.output
    assert cut.n_gen < free.n_gen


def test_empty_prefix_runs(backend):
    gens = list(backend.generate("", ["Question: a", "Q"], stop=[], max_new_tokens=5))
    for suffix, gen in zip(["Question: a", "Q"], gens, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, "", suffix, 5)


def test_prompts_past_trained_length_run_and_max_model_len_is_explicit(backend):
    long_suffix = "Question: What is the value of 2 * 9?\n" * 6  # > 64 trained positions
    (prompt,) = backend.encode(PREFIX, [long_suffix])
    assert len(prompt) > backend.model.config.max_position_embeddings
    (gen,) = backend.generate(PREFIX, [long_suffix], stop=[], max_new_tokens=4)
    assert gen.status == STATUS_OK and gen.n_gen == 4
    backend.max_model_len = len(prompt)
    try:
        gens = list(backend.generate(PREFIX, [SUFFIXES[0], long_suffix], [], 4))
    finally:
        backend.max_model_len = None
    assert [g.status for g in gens] == [STATUS_OK, STATUS_OVER_MAX_LEN]
    assert (gens[1].output, gens[1].n_gen) == ("", 0)
    assert gens[0].output == reference(backend, PREFIX, SUFFIXES[0], 4)[0]


def test_sliding_window_model_matches_generate(tmp_path):
    """Gemma-3 layout (sliding + full layers): batched, padded rows still see their window."""
    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path / "gemma", arch="gemma3", bos=True)
    backend = TransformersBackend(ModelSource(str(path)), batch_size=3, threads=1)
    assert backend.sliding_window == 8
    for prefix in (PREFIX, "A", ""):  # prompts longer and shorter than the window of 8
        gens = list(backend.generate(prefix, SUFFIXES, stop=[], max_new_tokens=6))
        for suffix, gen in zip(SUFFIXES, gens, strict=True):
            assert (gen.output, gen.n_gen) == reference(backend, prefix, suffix, 6)


def test_equal_length_prompts_with_a_short_shared_prefix_run_whole(backend):
    """The miniature world's shape: same length, only BOS shared; they run without the prefix
    cache (SDPA's causal kernel, no mask) and still equal plain generate."""
    from ctxscale.inference.hf import _prefix_worth_caching

    suffixes = [f"{w} " * 12 for w in ("a", "b", "x", "z")]
    prompts = backend.encode("", suffixes)
    assert len({len(p) for p in prompts}) == 1
    assert _prefix_worth_caching(prompts, [True] * 4) == 0
    # a shared prefix worth keeping is kept, and unequal lengths keep theirs
    assert _prefix_worth_caching(backend.encode(PREFIX, SUFFIXES), [True] * 5) > 0
    gens = list(backend.generate("", suffixes, stop=[], max_new_tokens=6))
    for suffix, gen in zip(suffixes, gens, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, "", suffix, 6)
