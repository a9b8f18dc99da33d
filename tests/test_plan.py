"""``ctxscale plan``: prompt and token counts, the cost model, and its one-line errors.

The counts are checked against numbers worked out by hand from a small fixture (prompts
files whose token counts under bytes/4 are chosen to be round), not by calling the code.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from ctxscale.cli import main
from ctxscale.config import load_configs
from ctxscale.inference.plan import (
    Rates,
    by_family,
    capacity_tokens,
    fit_prefill,
    load_rates,
    markdown_table,
    over_memory,
    plan,
    total,
)

ROOT = Path(__file__).resolve().parents[1]
DATASET = "dm_math__arithmetic__add_or_sub"
N7B = 6476271616

CONFIG = {
    "scale": "default",
    "seed": 7,
    "n_shots": [0, 2],
    "datasets": [DATASET],
    "data": {
        "source": "generate",
        "max_instances": 3,
        "tokenizer": "bytes/4",
        "max_new_tokens": 10,
    },
    "inference": {"batch_size": 2},
    "miniworld": {"activate": False},
    "families": [
        {
            "name": "fam",
            "role": "check",
            "backend": "transformers",
            "checkpoints": [{"name": "m1", "path": "nowhere", "N": N7B, "D": 1e12, "n_ctx": 4096}],
        }
    ],
}


def _prompts_file(root: Path, seed: int = 7) -> Path:
    """The 2-shot file: a 40-byte prefix (10 tokens under bytes/4) and three suffixes of
    8, 12 and 4 bytes (2, 3 and 1 tokens)."""
    path = root / DATASET / "2.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "dataset": DATASET,
        "task": "arithmetic",
        "n_shots": 2,
        "seed": seed,
        "stop": ["\n\n"],
        "max_new_tokens": 10,
        "metric": "math_equiv",
        "tokenizer": "approx_bytes_div_4",
        "max_instances": 3,
        "prefix": "A" * 40,
        "instances": [
            {"id": "t:0", "suffix": "B" * 8, "reference": "1"},
            {"id": "t:1", "suffix": "C" * 12, "reference": "2"},
            {"id": "t:2", "suffix": "D" * 4, "reference": "3"},
        ],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture
def fixture(tmp_path):
    cfg = tmp_path / "plan.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    root = tmp_path / "prompts"
    _prompts_file(root)
    return cfg, root


def _rates(max_tokens: int) -> Rates:
    """Round rates at the fixture's N (scale 1): a = 1 ms a token, b = 1 us a token^2."""
    return Rates(
        reference_N=float(N7B),
        a=1e-3,
        b=1e-6,
        decode_ms={"eager": 100.0, "compiled": 10.0},
        kv_bytes_per_token=1000.0,
        batch1_max_tokens=max_tokens,
        architectures=(),
        provenance={},
    )


def test_counts_and_seconds_by_hand(fixture):
    cfg, root = fixture
    (row,) = plan(load_configs([cfg]), str(root), rates=_rates(1000))
    # n_shots 2 counted: P = 10, suffixes 2, 3, 1; n_shots 0 estimated (dm_math's stated
    # question 30, shot 35): 3 instances (cap 3 of 300 generated), P = 0, suffixes 30 each.
    assert (row.files, row.prompts) == (2, 6)
    assert row.prompt_tokens == (3 * 10 + 6) + 3 * 30  # 126
    assert row.prefill_tokens == (10 + 6) + 90  # 106
    assert row.generated_tokens == 6 * 10  # the cap, 10 new tokens each
    assert row.counted == {"bytes/4": 1, "estimated": 1}
    assert row.lengths == "counted (bytes/4) 1; estimated 1 of 2"
    # prefill: a (P + sum s) + b (P^2 + 2 P sum s + sum s^2)
    #   counted 1e-3 * 16 + 1e-6 * (100 + 120 + 14); estimated 1e-3 * 90 + 1e-6 * 2700
    assert row.prefill_s == pytest.approx(0.016 + 0.000234 + 0.090 + 0.0027)
    # decode: batch 2 of 3 instances -> 2 batches x 10 steps per file, 40 steps in all
    assert row.decode_s["eager"] == pytest.approx(40 * 0.100)
    assert row.decode_s["compiled"] == pytest.approx(40 * 0.010)
    assert row.over == []


def test_files_over_the_card_are_listed_and_run_at_batch_1(fixture):
    cfg, root = fixture
    # room for 20 tokens of KV: the counted file needs 10 + 3 + 10 = 23, the estimated
    # one 0 + 30 + 10 = 40; both run at batch 1: 3 batches x 10 steps each
    (row,) = plan(load_configs([cfg]), str(root), rates=_rates(20))
    assert sorted(row.over) == [(DATASET, 0, 40, 20), (DATASET, 2, 23, 20)]
    assert row.decode_s["eager"] == pytest.approx(60 * 0.100)


def test_tensor_parallel_cards_hold_the_batch_one_card_decides_the_list(fixture, tmp_path):
    _, root = fixture
    two = {**CONFIG, "families": [{**CONFIG["families"][0], "tensor_parallel_size": 2}]}
    cfg = tmp_path / "tp2.yaml"
    cfg.write_text(yaml.safe_dump(two), encoding="utf-8")
    # two cards hold a second copy of the budget (2 N + 20 x 1000 bytes) beside the one
    # set of weights: batch 2 again (40 steps), but one card still cannot hold either file
    (row,) = plan(load_configs([cfg]), str(root), rates=_rates(20))
    assert row.decode_s["eager"] == pytest.approx(40 * 0.100)
    assert len(row.over) == 2


def test_estimate_ignores_the_files(fixture):
    cfg, root = fixture
    (row,) = plan(load_configs([cfg]), str(root), use_files=False, rates=_rates(1000))
    assert row.counted == {"estimated": 2}
    assert row.prompt_tokens == 3 * 30 + 3 * (2 * 35 + 30)  # 390


def test_a_file_of_another_config_is_estimated_not_counted(tmp_path):
    cfg = tmp_path / "plan.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    _prompts_file(tmp_path / "prompts", seed=8)
    (row,) = plan(load_configs([cfg]), str(tmp_path / "prompts"), rates=_rates(1000))
    assert row.counted == {"estimated": 2}


def test_cli_writes_fixed_format_csv_with_a_total(fixture, tmp_path, capsys):
    cfg, root = fixture
    out = tmp_path / "plan.csv"
    args = ["plan", "--config", str(cfg), "--prompts-root", str(root), "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "| m1 | fam |" in text and "| **total** |" in text
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["model"] for r in rows] == ["m1", "total"]
    for r in rows:
        assert (r["files"], r["prompts"], r["prompt_tokens"]) == ("2", "6", "126")
        assert (r["prefill_tokens"], r["generated_tokens"]) == ("106", "60")
        assert all(len(r[k].split(".")[1]) == 2 for k in r if k.endswith("_h_eager"))
    assert out.read_text(encoding="utf-8") == _again(cfg, root, tmp_path)


def _again(cfg: Path, root: Path, tmp_path: Path) -> str:
    out = tmp_path / "again.csv"
    assert main(["plan", "--config", str(cfg), "--prompts-root", str(root), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_the_measured_rates():
    rates = load_rates()
    # the prefill fit is within 3% of every measured point
    raw = yaml.safe_load((ROOT / "src/ctxscale/data/gpu_rates.yaml").read_text(encoding="utf-8"))
    for p in raw["prefill"]:
        fitted = rates.a * p["tokens"] + rates.b * p["tokens"] ** 2
        assert fitted == pytest.approx(p["seconds"], rel=0.03)
    # Llama-2-7B's KV bytes a token from its shape: 2 x 32 layers x 32 heads x 128 x 2 bytes
    seven = rates.arch(N7B)
    assert seven.kv_bytes_per_token == 524288 == rates.kv_bytes_per_token
    assert capacity_tokens(seven, rates) == pytest.approx(124000)
    # 13B: 2 x 40 x 40 x 128 x 2 bytes; room (2 x 6,738,415,616 + 524,288 x 124,000
    # - 2 x 13,015,864,320) / 819,200 = 64,034 tokens
    thirteen = rates.arch(12688184320)
    assert thirteen.kv_bytes_per_token == 819200
    assert math.floor(capacity_tokens(thirteen, rates)) == 64034
    # 70B: 138 GB of bf16 weights do not fit one card at all
    assert capacity_tokens(rates.arch(68452360192), rates) < 0


def test_fit_prefill_recovers_a_known_curve():
    points = [(T, 2e-5 * T + 3e-10 * T * T) for T in (1000, 8000, 64000)]
    a, b = fit_prefill(points)
    assert a == pytest.approx(2e-5) and b == pytest.approx(3e-10)


def test_paper_preset_lists_every_paper_model(tmp_path, capsys):
    files = [str(ROOT / "config.yaml"), str(ROOT / "workflow/presets/paper.yaml")]
    out = tmp_path / "paper.csv"
    assert main(["plan", "--config", *files, "--estimate", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    paper = yaml.safe_load(Path(files[1]).read_text(encoding="utf-8"))
    names = [c["name"] for fam in paper["families"] for c in fam["checkpoints"]]
    assert len(names) == 22
    rows = {r["model"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert list(rows) == [*names, "total"]
    # 72 datasets (56 DeepMind Mathematics modules) x 250 instances x 10 shot counts
    for name in names:
        assert (rows[name]["files"], rows[name]["prompts"]) == ("720", "180000")
        assert rows[name]["lengths"] == "estimated"
    assert rows["total"]["prompts"] == str(22 * 180000)
    assert rows["llama-2-7b-yarn-128k"]["files_over_1_h100"] == "0"
    assert rows["llama-2-70b-base-4k"]["files_over_1_h100"] == "720"
    assert "llama-2-70b-base-4k: 720 of 720 files, its bf16 weights alone exceed" in text


def test_by_family_sums_the_checkpoints(tmp_path):
    files = [ROOT / "config.yaml", ROOT / "workflow/presets/paper.yaml"]
    rows = plan(load_configs(files), str(tmp_path), use_files=False)
    fams = by_family(rows)
    assert [f.model for f in fams] == [
        "llama-2-7b-yarn",
        "llama-2-13b-yarn",
        "llama-2-7b-pi",
        "qwen-2.5",
        "gemma-2",
        "llama-2-70b",
    ]
    assert [f.prompts for f in fams] == [
        6 * 180000,
        6 * 180000,
        5 * 180000,
        180000,
        3 * 180000,
        180000,
    ]
    assert math.isnan(fams[4].N)  # gemma-2's three sizes
    assert total(fams).prompt_tokens == total(rows).prompt_tokens


def _one_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ctxscale plan: error: "), err
    return err


def test_unknown_config_key_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "bogus": 1}), encoding="utf-8")
    err = _one_error(capsys, ["plan", "--config", str(cfg)])
    assert "bogus: unknown setting" in err


def test_required_prompts_missing_is_one_line(fixture, tmp_path, capsys):
    cfg, root = fixture
    gone = tmp_path / "no-such-dir"
    err = _one_error(
        capsys, ["plan", "--config", str(cfg), "--prompts-root", str(gone), "--require-prompts"]
    )
    assert f"no prompts folder {gone}" in err
    # the folder exists, the 0-shot file does not
    err = _one_error(
        capsys, ["plan", "--config", str(cfg), "--prompts-root", str(root), "--require-prompts"]
    )
    assert f"no prompts file {root}/{DATASET}/0.json" in err


def test_the_documented_paper_table_is_what_the_command_prints(tmp_path):
    """docs/inference.md holds `ctxscale plan --scale paper --by family --estimate`."""
    files = [ROOT / "config.yaml", ROOT / "workflow/presets/paper.yaml"]
    fams = by_family(plan(load_configs(files), str(tmp_path), use_files=False))
    doc = (ROOT / "docs/inference.md").read_text(encoding="utf-8")
    assert markdown_table(fams) in doc
    assert "\n".join(over_memory(fams)) in doc
