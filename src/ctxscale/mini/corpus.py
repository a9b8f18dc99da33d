"""The miniature world's language: vocabulary, training sequences and evaluation instances.

Three task types mirror the paper's three. Each sequence (and each evaluation instance)
draws its own random map, so nothing can be memorised in the weights and every answer
must be read from the prompt:

* ``recall``  (multiple-choice-like): pairs ``k17 12``, a map from ``RECALL_KEYS`` distinct
  keys to 32 value symbols (the numbers 0-31); the answer is one symbol (exact match).
* ``arith``   (arithmetic-like): pairs ``7+ 12``, the answer ``(a + s) mod 16`` for an
  offset ``s`` hidden in the instance; solvable by looking the operand up or by inferring
  ``s`` from any demonstration (a number, scored with the arithmetic metric).
* ``trans``   (translation-like): ``k5 3 27 12 ;``, a lexicon from ``TRANS_KEYS`` source
  words to three-word target phrases (BLEU).

All three share the key and value symbols, so the copy-by-content mechanism (an
induction head) that each needs is learned once. In training, keys (and arithmetic's
operands) are drawn with Zipf(``ZIPF``) weights over their symbols, so rare ones are
learned late and accuracy rises with compute gradually; in evaluation they are uniform.
With uniform operands arithmetic switched on within a factor of ~1.5 in compute (one
offset rule, no rare cases), which the law's compute factor cannot follow
(docs/miniworld.md).

A fourth sequence type, ``repeat`` (a short random string written again and again), is
training-only: it makes the copy mechanism form early. Everything is drawn from
``numpy.random.Generator`` streams seeded by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPECIALS = ("<pad>", "<s>", "</s>", ";")
PAD, BOS, EOS, SEP = 0, 1, 2, 3
N_RECALL_KEYS, N_RECALL_VALUES = 64, 32
N_ARITH = 16
PHRASE = 3
RECALL_KEYS, TRANS_KEYS = 8, 6
ZIPF = 1.0


@dataclass(frozen=True)
class Vocab:
    """Token strings in id order and the id offset of each symbol group."""

    tokens: tuple[str, ...]
    offset: dict

    def text(self, ids) -> str:
        return " ".join(self.tokens[int(i)] for i in ids)


@lru_cache(maxsize=1)
def vocab() -> Vocab:
    """The fixed vocabulary (4 special tokens, 64 keys, 32 values, 16 operands)."""
    groups = {
        "recall_key": [f"k{i}" for i in range(N_RECALL_KEYS)],
        "recall_value": [str(i) for i in range(N_RECALL_VALUES)],
        "arith_key": [f"{i}+" for i in range(N_ARITH)],
    }
    tokens, offset = list(SPECIALS), {}
    for name, words in groups.items():
        offset[name] = len(tokens)
        tokens.extend(words)
    return Vocab(tuple(tokens), offset)


def _zipf_weights(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** ZIPF
    return w / w.sum()


def _distinct(rng: np.random.Generator, b: int, n: int, k: int, zipf: bool) -> np.ndarray:
    """(b, k) distinct symbols of n per row; Zipf-weighted (Gumbel top-k) or uniform."""
    scores = rng.gumbel(size=(b, n))
    if zipf:
        scores = scores + np.log(_zipf_weights(n))
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def _seen_before(idx: np.ndarray, k: int) -> np.ndarray:
    """True where the key index at position j already occurred at a position < j."""
    onehot = np.eye(k, dtype=np.int32)[idx]  # (b, p, k)
    before = np.cumsum(onehot, axis=1) - onehot
    return np.take_along_axis(before, idx[..., None], axis=2)[..., 0] > 0


def _recall(rng, b: int, p: int, zipf: bool) -> tuple[np.ndarray, np.ndarray]:
    v = vocab()
    keys = _distinct(rng, b, N_RECALL_KEYS, RECALL_KEYS, zipf) + v.offset["recall_key"]
    vals = rng.integers(0, N_RECALL_VALUES, (b, RECALL_KEYS)) + v.offset["recall_value"]
    idx = rng.integers(0, RECALL_KEYS, (b, p))
    rows = np.arange(b)[:, None]
    tok = np.stack([keys[rows, idx], vals[rows, idx]], axis=2).reshape(b, 2 * p)
    mask = np.stack([np.zeros_like(idx, bool), _seen_before(idx, RECALL_KEYS)], 2)
    return tok, mask.reshape(b, 2 * p)


def _arith(rng, b: int, p: int, zipf: bool) -> tuple[np.ndarray, np.ndarray]:
    v = vocab()
    s = rng.integers(0, N_ARITH, (b, 1))
    if zipf:  # rare operands: their sums are learned late, as rare keys are
        a = rng.choice(N_ARITH, size=(b, p), p=_zipf_weights(N_ARITH))
    else:
        a = rng.integers(0, N_ARITH, (b, p))
    tok = np.stack([a + v.offset["arith_key"], (a + s) % N_ARITH + v.offset["recall_value"]], 2)
    later = np.broadcast_to(np.arange(p)[None, :] > 0, (b, p))
    mask = np.stack([np.zeros((b, p), bool), later], 2)
    return tok.reshape(b, 2 * p), mask.reshape(b, 2 * p)


def _trans(rng, b: int, p: int, zipf: bool) -> tuple[np.ndarray, np.ndarray]:
    v = vocab()
    keys = _distinct(rng, b, N_RECALL_KEYS, TRANS_KEYS, zipf) + v.offset["recall_key"]
    phrases = _distinct(rng, b, N_RECALL_VALUES, TRANS_KEYS * PHRASE, False)
    phrases = phrases.reshape(b, TRANS_KEYS, PHRASE) + v.offset["recall_value"]
    idx = rng.integers(0, TRANS_KEYS, (b, p))
    rows = np.arange(b)[:, None]
    sep = np.full((b, p, 1), SEP)
    tok = np.concatenate([keys[rows, idx][..., None], phrases[rows, idx], sep], axis=2)
    seen = _seen_before(idx, TRANS_KEYS)[..., None]
    mask = np.concatenate(
        [np.zeros((b, p, 1), bool), np.repeat(seen, PHRASE, 2), np.ones((b, p, 1), bool)], 2
    )
    return tok.reshape(b, p * (PHRASE + 2)), mask.reshape(b, p * (PHRASE + 2))


def _repeat(rng, b: int, p: int, zipf: bool) -> tuple[np.ndarray, np.ndarray]:
    """Training only: a random string of ``REPEAT`` symbols written again and again.

    Copying a string seen before is the simplest use of the copy-by-content mechanism
    (an induction head) that every task needs; a little of it makes that mechanism form
    early and reliably.
    """
    del zipf
    v = vocab()
    lo, hi = v.offset["recall_key"], len(v.tokens)
    seg = rng.integers(lo, hi, (b, REPEAT))
    tok = np.tile(seg, (1, p))
    mask = np.zeros_like(tok, bool)
    mask[:, REPEAT:] = True
    return tok, mask


REPEAT = 8
_MAKERS = {"recall": _recall, "arith": _arith, "trans": _trans, "repeat": _repeat}
DEMO_TOKENS = {"recall": 2, "arith": 2, "trans": PHRASE + 2, "repeat": REPEAT}


def batch(
    rng: np.random.Generator, size: int, length: int, mix: dict[str, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, loss mask), each (size, length): BOS + demonstrations of a task.

    The task of each row is drawn with the ``mix`` weights; the loss counts only answer
    tokens that the context determines (a key seen before, or the offset shown before).
    """
    names = sorted(mix)
    probs = np.array([mix[n] for n in names], float)
    which = rng.choice(len(names), size=size, p=probs / probs.sum())
    tokens = np.full((size, length + 1), PAD, np.int64)
    mask = np.zeros((size, length + 1), bool)
    tokens[:, 0] = BOS
    for i, name in enumerate(names):
        rows = np.flatnonzero(which == i)
        if rows.size == 0:
            continue
        p = -(-length // DEMO_TOKENS[name])
        tok, m = _MAKERS[name](rng, rows.size, p, zipf=True)
        tokens[rows, 1:] = tok[:, :length]
        mask[rows, 1:] = m[:, :length]
    return tokens[:, :-1], tokens[:, 1:], mask[:, 1:]


def instances(
    rng: np.random.Generator, task: str, size: int, n_demos: int
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation instances: (prompts, answers).

    Each row is BOS, ``n_demos`` demonstrations drawn from the row's own random map
    (keys uniform over their symbols), then a query key; the answer is what the map gives
    for it (a value, a number, or a phrase followed by ``;``). The query key is drawn like
    the demonstrations' keys, so it may or may not have been shown: with n demonstrations
    the chance it was is ``1 - (1 - 1/K)^n``.
    """
    dt = DEMO_TOKENS[task]
    tok, _ = _MAKERS[task](rng, size, n_demos + 1, zipf=False)
    body = tok[:, : n_demos * dt + 1]
    prompts = np.concatenate([np.full((size, 1), BOS), body], axis=1)
    answers = tok[:, n_demos * dt + 1 :]
    return prompts, answers
