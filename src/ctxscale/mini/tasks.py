"""The miniature world's datasets: deterministic instances written as ordinary prompts files.

Each evaluation instance draws its own random map (see :mod:`ctxscale.mini.corpus`); its
demonstrations are draws from that map, so they play the part of the instance's training
split, and the query is drawn the same way. The demonstrations for k shots are the first
k of the instance's draws, so every smaller k is a prefix of every larger one, as with
the real datasets. Because the demonstrations differ between instances, the prompts
file's shared ``prefix`` is empty and each ``suffix`` holds the whole prompt; the
backends then share only BOS, and nothing else changes downstream.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from ctxscale.data import prompts
from ctxscale.data.tasks import document_header
from ctxscale.mini import corpus


def _rng(dataset: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(dataset.encode()), 11])


def instance_texts(
    dataset: str, task: str, n_instances: int, max_shots: int, seed: int
) -> list[tuple[list[tuple[str, str]], str, str]]:
    """Per instance: (demonstrations as (input, answer) texts, query input, reference)."""
    v = corpus.vocab()
    dt = corpus.DEMO_TOKENS[task]
    ids, answers = corpus.instances(_rng(dataset, seed), task, n_instances, max_shots)
    out = []
    for row, ans in zip(ids, answers, strict=True):
        body = row[1:]  # drop BOS
        demos = []
        for j in range(max_shots):
            demo = body[j * dt : (j + 1) * dt]
            answer = demo[1:-1] if task == "trans" else demo[1:]
            demos.append((v.tokens[int(demo[0])], v.text(answer)))
        reference = v.text(ans[:-1] if task == "trans" else ans)
        out.append((demos, v.tokens[int(body[-1])], reference))
    return out


def prompts_documents(spec, n_shots: Sequence[int], n_instances: int, seed: int) -> dict[int, dict]:
    """The prompts document of every shot count for one miniature dataset."""
    task = spec.name.removeprefix("mini_")
    rows = instance_texts(spec.name, task, n_instances, max(n_shots), seed)
    docs = {}
    for k in n_shots:
        instances = []
        for i, (demos, query, reference) in enumerate(rows):
            shots = prompts.build_prefix(
                spec.instruction, spec.prefix, spec.suffix, spec.separator, demos[:k]
            )
            suffix = shots + prompts.question(spec.prefix, spec.suffix, query)
            instances.append(
                {"id": f"{spec.eval_split}:{i}", "suffix": suffix, "reference": reference}
            )
        docs[k] = {
            **document_header(spec, k, seed),
            "prefix": "",
            "demo_ids": [],
            "demonstrations": "per_instance",
            "instances": instances,
            "source": "generate",
            "tokenizer": "miniworld",
            "max_instances": n_instances,
        }
    return docs
