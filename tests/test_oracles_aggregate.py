"""Shards -> points.csv checked against numbers worked out by hand in this file.

Four arithmetic datasets of one model at one shot count, each with its own scores and
prompt lengths, one of them with records the backend could not run (status
"over_context"). Every expected number below is written out from the rules in
docs (mean over the scored records of a dataset; DeepMind modules averaged into one
dataset first; then the task's datasets averaged equally), not computed by the package.
"""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ctxscale.analysis.aggregate import build_points, build_scores
from ctxscale.cli import main
from ctxscale.config import validate_config

DM_MUL = "dm_math__arithmetic__mul"
DM_ADD = "dm_math__arithmetic__add_or_sub"
CONFIG = {
    "datasets": ["gsm8k", "math", DM_MUL, DM_ADD],
    "n_shots": [0],
    "scores": {"aggregation": "dataset_groups"},
    "families": [
        {
            "name": "f",
            "backend": "transformers",
            "checkpoints": [{"name": "m", "path": "x", "N": 1.0e9, "D": 3.0e12, "n_ctx": 2048}],
        }
    ],
}
# (n_pmt, score, status) per record
SHARDS = {
    # scored: n_pmt 100, 110, 120, 130 -> 115; scores 1, 0, 1, 1 -> 0.75.
    # Two records over the context: counted in n_excluded, never in score or n_pmt.
    "gsm8k": [
        (100, 1.0, "ok"),
        (110, 0.0, "ok"),
        (120, 1.0, "ok"),
        (130, 1.0, "ok"),
        (9000, 0.0, "over_context"),
        (9100, 0.0, "over_context"),
    ],
    # n_pmt 300, 500 -> 400; scores 0, 0 -> 0
    "math": [(300, 0.0, "ok"), (500, 0.0, "ok")],
    # n_pmt 50; score 1
    DM_MUL: [(50, 1.0, "ok")],
    # n_pmt 60, 70, 80 -> 70; scores 0, 0, 1 -> 1/3
    DM_ADD: [(60, 0.0, "ok"), (70, 0.0, "ok"), (80, 1.0, "ok")],
}
# dataset_groups: dm_math = mean(mul, add_or_sub): n_pmt (50 + 70) / 2 = 60,
#   score (1 + 1/3) / 2 = 2/3; then the three groups gsm8k, math, dm_math equally.
BY_GROUPS = {"n_pmt": (115 + 400 + 60) / 3, "score": (0.75 + 0 + 2 / 3) / 3}
# datasets: the four datasets equally.
BY_DATASETS = {"n_pmt": (115 + 400 + 50 + 70) / 4, "score": (0.75 + 0 + 1 + 1 / 3) / 4}


# Every right answer is "7"; DeepMind's mul module asks for -7, which the original metric
# (signs ignored) scores right and the corrected one wrong.
REFERENCES = {DM_MUL: "-7"}


def write_shards(root: Path, prompts: Path | None = None) -> None:
    for dataset, records in SHARDS.items():
        path = root / "m" / dataset / "0.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"settings": {"model": "m", "dataset": dataset, "n_shots": 0}})]
        for i, (n_pmt, score, status) in enumerate(records):
            out = "7" if score else ""
            rec = {"id": f"{dataset}-{i}", "n_pmt": n_pmt, "output": out, "n_gen": 1}
            lines.append(json.dumps({**rec, "score": score, "status": status}))
        path.write_text("\n".join(lines) + "\n")
        if prompts is not None:
            ref = REFERENCES.get(dataset, "7")
            doc = {"instances": [{"id": f"{dataset}-{i}", "reference": ref} for i in range(9)]}
            (prompts / dataset).mkdir(parents=True, exist_ok=True)
            (prompts / dataset / "0.json").write_text(json.dumps(doc))


@pytest.fixture
def tables(tmp_path):
    gens = tmp_path / "generations"
    write_shards(gens, tmp_path / "prompts")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    scores, points = tmp_path / "scores.csv", tmp_path / "points.csv"
    argv = ["scores", "--config", str(cfg), "--generations", str(gens)]
    argv += ["--prompts", str(tmp_path / "prompts"), "--out", str(scores), "--points", str(points)]
    argv += ["--corrected", str(tmp_path / "corrected.csv")]
    assert main(argv) == 0
    other = tmp_path / "points_by_datasets.csv"
    return pd.read_csv(scores), pd.read_csv(points), pd.read_csv(other)


def test_the_corrected_metric_rescores_deepmind_only_from_the_outputs(tables, tmp_path):
    corrected = pd.read_csv(tmp_path / "corrected.csv").set_index("dataset")
    assert sorted(corrected.index) == sorted([DM_MUL, DM_ADD])  # GSM8K and MATH have none
    # mul: "7" for "-7" is right by the original (signs ignored), wrong by the corrected one
    assert corrected.loc[DM_MUL, ["score", "score_corrected"]].tolist() == [1.0, 0.0]
    # add_or_sub: the same right answers by both
    assert corrected.loc[DM_ADD, "score_corrected"] == pytest.approx(1 / 3)
    assert corrected.loc[DM_ADD, "score"] == pytest.approx(1 / 3)


def test_each_dataset_is_the_mean_of_its_scored_records(tables):
    scores, _, _ = tables
    rows = scores.set_index("dataset")
    want = {  # dataset: (n_pmt, score, n_instances, n_excluded)
        "gsm8k": (115.0, 0.75, 4, 2),
        "math": (400.0, 0.0, 2, 0),
        DM_MUL: (50.0, 1.0, 1, 0),
        DM_ADD: (70.0, 1 / 3, 3, 0),
    }
    assert sorted(rows.index) == sorted(want)
    for dataset, (n_pmt, score, n_ok, n_excl) in want.items():
        row = rows.loc[dataset]
        assert row.n_pmt == pytest.approx(n_pmt, abs=1e-9), dataset
        assert row.score == pytest.approx(score, abs=1e-9), dataset
        assert (row.n_instances, row.n_excluded) == (n_ok, n_excl), dataset
        assert row.task == "arithmetic"
        assert (row.N, row.D, row.C, row.n_ctx) == (1.0e9, 3.0e12, 1.8e22, 2048)


def test_the_point_averages_groups_then_datasets_equally(tables):
    _, points, _ = tables
    assert len(points) == 1
    (point,) = points.itertuples()
    assert point.task == "arithmetic" and point.n_shots == 0
    assert point.n_pmt == pytest.approx(BY_GROUPS["n_pmt"], abs=1e-9)
    assert point.score == pytest.approx(BY_GROUPS["score"], abs=1e-9)
    assert (point.n_datasets, point.n_groups, point.n_instances) == (4, 3, 10)
    assert (point.N, point.D, point.C, point.n_ctx) == (1.0e9, 3.0e12, 1.8e22, 2048)


def test_the_sensitivity_table_averages_every_dataset_equally(tables):
    _, _, other = tables
    (point,) = other.itertuples()
    assert point.n_pmt == pytest.approx(BY_DATASETS["n_pmt"], abs=1e-9)
    assert point.score == pytest.approx(BY_DATASETS["score"], abs=1e-9)
    assert (point.n_datasets, point.n_groups, point.n_instances) == (4, 4, 10)


def test_points_differ_from_first_max_and_record_weighted_means():
    """The hand-computed point is none of the tempting wrong aggregates (guards the oracle)."""
    ok = {d: [r for r in recs if r[2] == "ok"] for d, recs in SHARDS.items()}
    everything = [r for recs in SHARDS.values() for r in recs]
    scored = [r for recs in ok.values() for r in recs]
    wrong = {
        "first dataset": 0.75,
        "max": 1.0,
        "record-weighted": sum(r[1] for r in scored) / len(scored),
        "excluded counted": sum(r[1] for r in everything) / len(everything),
        "groups summed over 4": (0.75 + 0 + 2 / 3) / 4,
    }
    for name, value in wrong.items():
        assert abs(value - BY_GROUPS["score"]) > 0.02, name


def test_build_points_from_a_hand_written_scores_table():
    """build_points alone: two tasks, two shot counts, datasets with different n_pmt."""
    base = {"family": "f", "model": "m", "role": "fit", "n_ctx": 4096}
    base |= {"N": 1e9, "D": 1e12, "C": 6e21, "n_excluded": 0}
    rows = [  # task, dataset, n_shots, n_pmt, score, n_instances
        ("arithmetic", "gsm8k", 0, 100.0, 0.2, 5),
        ("arithmetic", "math", 0, 300.0, 0.6, 7),
        ("arithmetic", "gsm8k", 1, 200.0, 0.4, 5),
        ("arithmetic", "math", 1, 700.0, 0.8, 7),
        ("translation", "wmt14_de_en", 0, 40.0, 0.1, 3),
    ]
    keys = ("task", "dataset", "n_shots", "n_pmt", "score", "n_instances")
    scores = pd.DataFrame([base | dict(zip(keys, r, strict=True)) for r in rows])
    points = build_points(scores).set_index(["task", "n_shots"])
    assert points.loc[("arithmetic", 0), ["n_pmt", "score"]].tolist() == pytest.approx([200, 0.4])
    assert points.loc[("arithmetic", 1), ["n_pmt", "score"]].tolist() == pytest.approx([450, 0.6])
    assert points.loc[("translation", 0), ["n_pmt", "score"]].tolist() == pytest.approx([40, 0.1])
    assert points.loc[("arithmetic", 0), "n_instances"] == 12
    assert points.loc[("arithmetic", 1), "n_datasets"] == 2


def test_build_scores_reads_the_same_numbers(tmp_path):
    """The library call agrees with the CLI's table (no CLI-only rounding)."""
    write_shards(tmp_path)
    df = build_scores(validate_config(CONFIG), tmp_path, tmp_path / "none")
    row = df.set_index("dataset").loc["gsm8k"]
    assert (row.n_pmt, row.score, row.n_excluded) == (115.0, 0.75, 2)
