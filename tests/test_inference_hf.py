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
    assert backend.encode(PREFIX, []) == []


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


def test_batch_memory_grows_with_suffixes_not_batch_times_prefix(backend, monkeypatch):
    """The prefix's keys/values exist once (batch 1); a batch's cache holds its rows' own
    tokens only, so a 3x longer prefix leaves every batch's cache the same size."""
    from ctxscale.inference import hf

    shapes: list[tuple[int, ...]] = []
    allocate = hf.PreallocatedLayer._allocate

    def record(self, keys, values):
        allocate(self, keys, values)
        shapes.append(tuple(self._k.shape))

    monkeypatch.setattr(hf.PreallocatedLayer, "_allocate", record)
    encoded: list[hf.SharedPrefix] = []
    encode = backend._encode_prefix
    monkeypatch.setattr(
        backend, "_encode_prefix", lambda ids: encoded.append(encode(ids)) or encoded[-1]
    )

    def run(prefix):
        shapes.clear()
        encoded.clear()
        gens = list(backend.generate(prefix, SUFFIXES, stop=[], max_new_tokens=5))
        assert len(encoded) == 1  # once per prompts file, whatever the number of batches
        return gens, list(shapes), encoded[0]

    layers = backend.model.config.num_hidden_layers
    (_, short, pre_short), (gens, long, pre_long) = run(PREFIX), run(PREFIX * 3)
    assert pre_long.n > 2 * pre_short.n
    for pre, seen in ((pre_short, short), (pre_long, long)):
        assert all(k.shape[0] == 1 and k.shape[2] == pre.n for k in pre.keys)
        assert seen[:layers] == [tuple(k.shape) for k in pre.keys]  # the prefill's buffers
        # two batches (3 + 2 rows), each sized by its own suffixes + generation
        prompts = backend.encode(PREFIX, SUFFIXES)
        own = [len(p) - pre_short.n for p in prompts]
        widths = [max(own[:3]) + 5, max(own[3:]) + 5]
        assert [s[::2] for s in seen[layers:]] == [(3, widths[0])] * layers + [
            (2, widths[1])
        ] * layers
    assert short[layers:] == long[layers:]  # batches do not grow with the prefix
    for suffix, gen in zip(SUFFIXES, gens, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, PREFIX * 3, suffix, 5)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_chunked_prefill_equals_unchunked(arch, tmp_path):
    import torch

    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path / arch, arch=arch, bos=True)
    backend = TransformersBackend(ModelSource(str(path)), batch_size=2, threads=1)
    prefix = PREFIX * 2
    (prompt,) = backend.encode(prefix, ["x"])
    whole = backend.prefill_chunk
    assert whole >= len(prompt)
    ids = prompt[: len(prompt) - 2]
    with torch.inference_mode():
        one = backend._encode_prefix(ids)
        backend.prefill_chunk = 5
        chunked = backend._encode_prefix(ids)
    for a, b in zip(one.keys + one.values, chunked.keys + chunked.values, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # fp32 sums, reordered
    gens = list(backend.generate(prefix, SUFFIXES, stop=[], max_new_tokens=6))
    backend.prefill_chunk = whole
    assert gens == list(backend.generate(prefix, SUFFIXES, stop=[], max_new_tokens=6))
    for suffix, gen in zip(SUFFIXES, gens, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, prefix, suffix, 6)


def test_sliding_window_model_resumes_and_runs_past_its_length(tmp_path):
    """Gemma-3 layout through the shared prefix: resume at start > 0 and prompts past the
    trained length (64) give what plain generate gives."""
    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path / "gemma", arch="gemma3", bos=True)
    backend = TransformersBackend(ModelSource(str(path)), batch_size=2, threads=1)
    suffixes = [*SUFFIXES, "Question: What is the value of 2 * 9?\n" * 4]
    prompts = backend.encode(PREFIX, suffixes)
    assert max(len(p) for p in prompts) > backend.model.config.max_position_embeddings
    full = list(backend.generate(PREFIX, suffixes, stop=[], max_new_tokens=6))
    for suffix, gen in zip(suffixes, full, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, PREFIX, suffix, 6)
    for start in (1, 3):
        assert list(backend.generate(PREFIX, suffixes, [], 6, start=start)) == full[start:]


def test_stop_checker_equals_decoding_the_whole_generation(backend):
    """Stop strings found on a decoded tail: same step and same text as decoding the whole
    generation every step, for stops that span token boundaries (random byte-level tokens,
    partial UTF-8 characters included)."""
    import random

    from ctxscale.inference.base import StopChecker, cut_at_stop

    tok = backend.tokenizer

    def whole(ids, stop):  # the former loop: decode everything after every token
        for i in range(1, len(ids) + 1):
            text, hit = cut_at_stop(tok.decode(ids[:i], skip_special_tokens=True), stop)
            if hit:
                return i, text
        return len(ids), text

    def tail(ids, stop):
        check = StopChecker(tok, stop)
        for i in range(1, len(ids) + 1):
            if check.check(ids[:i]):
                return i, check.final(ids[:i])
        return len(ids), check.final(ids)

    rng = random.Random(0)
    hits = 0
    for _ in range(300):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randint(30, 90))]
        text = tok.decode(ids, skip_special_tokens=True)
        k = rng.randrange(5, len(ids))
        cut = len(tok.decode(ids[:k], skip_special_tokens=True))  # a token boundary
        stops = [text[max(0, cut - rng.randint(1, 3)) : cut + rng.randint(1, 3)], "\n\n"]
        stops = [s for s in stops if s]
        got = tail(ids, stops)
        assert got == whole(ids, stops), (ids, stops)
        hits += got[0] < len(ids)
    assert hits > 200


def test_cuda_batch_size_follows_free_memory(backend, monkeypatch):
    """On CUDA the batch shrinks to what free memory holds, and a shard that cannot run even
    one row fails in one line naming the model, the shard's prompts and the memory."""
    import torch

    from ctxscale.errors import CtxscaleError

    prompts = backend.encode(PREFIX, SUFFIXES)
    free = {"bytes": 2**40}
    monkeypatch.setattr(backend, "device", "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 2**40))

    def fit(n_bytes):
        free["bytes"] = n_bytes
        return backend._fit_batch(prompts, 10, 8)

    assert fit(2**40) == backend.batch_size == 3
    with pytest.raises(CtxscaleError, match=r"model '.*'.*10-token shared prefix.*GiB"):
        fit(1)
    lo, hi = 1, 2**40  # the least free memory that runs one row
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            fit(mid)
            hi = mid
        except CtxscaleError:
            lo = mid + 1
    assert fit(lo) == 1
    # each further row needs the same again (the prefix is counted once)
    assert fit(2 * lo) >= 2
    assert backend._fit_batch([], 10, 8) == backend.batch_size  # nothing to run


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("window", [None, 3])
def test_shared_prefix_attention_equals_attention_over_the_concatenation(dtype, window):
    """The attention over [prefix (batch 1) | own keys] equals a plain softmax attention over
    the prefix copied into every row followed by the row's keys (GQA, pads, windows)."""
    import types

    import torch

    from ctxscale.inference.hf import SharedPrefix, shared_prefix_attention

    torch.manual_seed(0)
    dt = getattr(torch, dtype)
    b, h, hk, n, s, q, d = 3, 4, 2, 7, 5, 2, 8
    pk, pv = torch.randn(1, hk, n, d, dtype=dt), torch.randn(1, hk, n, d, dtype=dt)
    key, value = torch.randn(b, hk, s, d, dtype=dt), torch.randn(b, hk, s, d, dtype=dt)
    query = torch.randn(b, h, q, d, dtype=dt)
    own = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])
    mask = torch.cat([torch.ones(b, n, dtype=torch.long), own], 1)
    q_pos = (mask.cumsum(-1) - 1)[:, -q:]
    shared = SharedPrefix([pk], [pv], [window is not None], window)
    shared.set_masks(mask, q_pos)
    got, _ = shared_prefix_attention(
        types.SimpleNamespace(layer_idx=0),
        query,
        key,
        value,
        None,
        scaling=0.3,
        shared_prefix=shared,
    )
    # reference: the prefix copied per row, GQA heads repeated, one masked softmax
    k = torch.cat([pk.expand(b, -1, -1, -1), key], 2).repeat_interleave(h // hk, 1).float()
    v = torch.cat([pv.expand(b, -1, -1, -1), value], 2).repeat_interleave(h // hk, 1).float()
    k_pos = mask.cumsum(-1) - 1
    dist = q_pos[:, :, None] - k_pos[:, None, :]
    visible = mask.bool()[:, None, :] & (dist >= 0)
    if window is not None:
        visible &= dist < window
    scores = (query.float() @ k.transpose(-1, -2)) * 0.3
    scores = scores.masked_fill(~visible[:, None], float("-inf"))
    want = (scores.softmax(-1) @ v).transpose(1, 2)
    assert got.shape == (b, q, h, d)
    tol = {"float32": 1e-5, "bfloat16": 3e-2}[dtype]
    torch.testing.assert_close(got.float(), want, rtol=tol, atol=tol)


def test_without_the_shared_prefix_attention_prompts_run_whole(backend, monkeypatch):
    """A model that cannot take the shared-prefix attention (no AttentionInterface, hybrid
    layers) runs every prompt whole, padded on the left, with the same outputs."""
    monkeypatch.setattr(backend, "shares_prefix", False)
    monkeypatch.setattr(backend, "_encode_prefix", None)  # never called
    gens = list(backend.generate(PREFIX, SUFFIXES, stop=[], max_new_tokens=6))
    for suffix, gen in zip(SUFFIXES, gens, strict=True):
        assert (gen.output, gen.n_gen) == reference(backend, PREFIX, suffix, 6)
