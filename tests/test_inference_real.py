"""SmolLM2-135M-Instruct (real weights) on DeepMind Mathematics questions, written and generated.

Needs the converted model in ``cache/`` (``ctxscale fetch-model``, network at fetch time
only). With ``CTXSCALE_FETCH_MODELS=1`` (set by scripts/check.sh, so CI runs these tests
on their own) the tests fetch it themselves; otherwise they are skipped with the command
to run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ctxscale.inference.fetch import MARKER, ModelSource

SMOLLM2_DIR = "models/smollm2-135m-instruct-b179c9523d0e"
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CTXSCALE_CACHE", ROOT / "cache"))

# Questions in the style of DeepMind Mathematics' arithmetic modules (add_or_sub, mul,
# add_sub_multiple), written out by hand so this test needs no data generator.
DEMOS = [
    ("What is 5 + 3?", "8"),
    ("Calculate 9 - 4.", "5"),
    ("What is 7 + 6?", "13"),
    ("Work out 2 * 4.", "8"),
    ("Calculate 14 - 6.", "8"),
    ("What is -2 + 5?", "3"),
    ("Add 10 and 7.", "17"),
]
QUESTIONS = [
    ("What is 4 + 4?", "8"),
    ("Calculate 6 - 2.", "4"),
    ("What is 3 + 9?", "12"),
    ("Work out 5 * 3.", "15"),
    ("Add 11 and 8.", "19"),
    ("What is 1 + 1?", "2"),
    ("Calculate 20 - 10.", "10"),
    ("What is -3 + 4?", "1"),
]
PREFIX = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in DEMOS)
SUFFIXES = [f"Question: {q}\nAnswer:" for q, _ in QUESTIONS]


def last_number_matches(output: str, reference: str) -> bool:
    numbers = re.findall(r"-?\d+", output)
    return bool(numbers) and int(numbers[-1]) == int(reference)


@pytest.fixture(scope="module")
def smollm2():
    path = CACHE / SMOLLM2_DIR
    if not (path / MARKER).is_file() and os.environ.get("CTXSCALE_FETCH_MODELS") == "1":
        from ctxscale.cli import main

        argv = ["fetch-model", "--config", str(ROOT / "config.yaml")]
        argv += ["--model", "smollm2-135m-instruct", "--cache-dir", str(CACHE)]
        assert main(argv) == 0
        assert (path / MARKER).is_file(), f"fetch-model did not prepare {path}"
    if not (path / MARKER).is_file():
        pytest.skip(
            f"{path} missing: run `ctxscale fetch-model --config config.yaml "
            "--model smollm2-135m-instruct`, or set CTXSCALE_FETCH_MODELS=1 (network)"
        )
    from ctxscale.inference.hf import TransformersBackend

    return TransformersBackend(ModelSource(str(path)), batch_size=4, threads=1)


@pytest.mark.slow
def test_smollm2_answers_arithmetic_with_prefix_reuse(smollm2):
    import torch

    gens = list(smollm2.generate(PREFIX, SUFFIXES, stop=["\n\n"], max_new_tokens=12))
    assert all(g.status == "ok" and "\n\n" not in g.output for g in gens)
    correct = sum(
        last_number_matches(g.output, a) for g, (_, a) in zip(gens, QUESTIONS, strict=True)
    )
    assert correct >= 4, [g.output for g in gens]  # measured: 6 of 8
    # The shared-prefix, batched path gives what plain generate() gives on each full prompt.
    for ids, gen in zip(smollm2.encode(PREFIX, SUFFIXES), gens, strict=True):
        x = torch.tensor([ids])
        out = smollm2.model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=False,
            max_new_tokens=gen.n_gen,
            pad_token_id=2,
        )
        text = smollm2.tokenizer.decode(out[0, x.shape[1] :], skip_special_tokens=True)
        assert text.split("\n\n")[0] == gen.output
        assert gen.n_pmt == x.shape[1]


@pytest.mark.slow
def test_prepare_then_infer_real_deepmind_prompts(smollm2, tmp_path, capsys):
    """End to end: real DeepMind Mathematics prompts (generated) -> `ctxscale infer` shard."""
    import json

    import yaml

    from ctxscale.cli import main

    prompts_dir = tmp_path / "prompts"
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "dm_math__arithmetic__add_or_sub",
                "--n-shots",
                "3",
                "--max-instances",
                "4",
                "--dm-difficulty",
                "0",
                "0.3",
                "--out-dir",
                str(prompts_dir),
            ]
        )
        == 0
    )
    config = {
        "seed": 31337,
        "inference": {"batch_size": 4, "threads": 1, "cache_dir": str(CACHE)},
        "families": [
            {
                "name": "smollm2",
                "role": "ood",
                "backend": "transformers",
                "checkpoints": [
                    {
                        "name": "smollm2-135m-instruct",
                        "N": 106203456,
                        "D": 2.0e12,
                        "n_ctx": 8192,
                        "path": str(CACHE / SMOLLM2_DIR),
                    }
                ],
            }
        ],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "gen" / "3.jsonl"
    args = [
        "infer",
        "--config",
        str(tmp_path / "config.yaml"),
        "--model",
        "smollm2-135m-instruct",
        "--prompts",
        str(prompts_dir / "3.json"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    prompts = json.loads((prompts_dir / "3.json").read_text())
    assert lines[0]["settings"]["metric"] == prompts["metric"] == "math_equiv"
    assert [r["id"] for r in lines[1:]] == [i["id"] for i in prompts["instances"]]
    for rec in lines[1:]:
        assert rec["status"] == "ok" and 0 < rec["n_gen"] <= prompts["max_new_tokens"]
        assert re.search(r"\d", rec["output"]) and 0.0 <= rec["score"] <= 1.0
        assert not any(s in rec["output"] for s in prompts["stop"])
