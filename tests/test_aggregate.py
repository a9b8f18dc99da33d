"""Shards -> scores.csv / points.csv (contract 4) and the manifest of artifacts."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ctxscale import artifacts
from ctxscale.analysis.aggregate import (
    CORRECTED_COLUMNS,
    POINT_COLUMNS,
    SCORE_COLUMNS,
    build_points,
    build_scores,
    score_tables,
)
from ctxscale.cli import main
from ctxscale.config import validate_config
from ctxscale.errors import CtxscaleError
from ctxscale.outputs.manifest import manifest_text

CONFIG = validate_config(
    {
        "datasets": ["gsm8k", "dm_math__arithmetic__mul", "piqa"],
        "n_shots": [0, 3],
        "families": [
            {
                "name": "small",
                "backend": "transformers",
                "checkpoints": [
                    {"name": "s1", "path": "a", "N": 1.0e8, "D": 2.0e12, "n_ctx": 2048},
                    {"name": "s2", "path": "b", "N": 3.0e8, "D": 2.0e12, "n_ctx": 4096},
                ],
            },
            {
                "name": "other",
                "role": "ood",
                "backend": "transformers",
                "checkpoints": [{"name": "o1", "path": "c", "N": 1e9, "D": 1e12, "n_ctx": 8192}],
            },
        ],
    }
)


def write_shard(root, model, dataset, n_shots, records, settings=None):
    path = Path(artifacts.shard_path(model, dataset, n_shots, str(root)))
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"model": model, "dataset": dataset, "n_shots": n_shots, **(settings or {})}
    lines = [json.dumps({"settings": head})]
    lines += [json.dumps({"output": "", "n_gen": 1, **r}) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def rec(i, n_pmt, score, status="ok"):
    return {"id": f"i{i}", "n_pmt": n_pmt, "score": score, "status": status}


@pytest.fixture
def gens(tmp_path):
    root = tmp_path / "generations"
    for m in ("s1", "s2", "o1"):
        for d in CONFIG["datasets"]:
            for k in CONFIG["n_shots"]:
                base = 10 + 40 * k
                scores = [1.0, 0.0, 0.5] if d != "piqa" else [1.0, 1.0, 0.0]
                write_shard(root, m, d, k, [rec(i, base + i, s) for i, s in enumerate(scores)])
    for d in CONFIG["datasets"]:  # the prompts files, whose references a corrected metric reads
        for k in CONFIG["n_shots"]:
            doc = {
                "task": artifacts.task_of(d),
                "instances": [{"id": f"i{i}", "reference": "1"} for i in range(3)],
            }
            path = tmp_path / "prompts" / d / f"{k}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
    return root


def test_scores_rows_and_law_inputs(gens):
    df = build_scores(CONFIG, gens, gens.parent / "no-prompts")
    assert list(df.columns) == SCORE_COLUMNS
    assert len(df) == 3 * 3 * 2
    row = df[(df.model == "s2") & (df.dataset == "piqa") & (df.n_shots == 3)].iloc[0]
    assert row.task == "common_sense" and row.role == "fit" and row.family == "small"
    assert row.n_ctx == 4096 and pytest.approx(6 * 3.0e8 * 2.0e12) == row.C
    assert row.n_pmt == pytest.approx(131.0) and row.score == pytest.approx(2 / 3)
    assert row.n_instances == 3 and row.n_excluded == 0
    assert set(df[df.model == "o1"].role) == {"ood"}


def test_points_average_datasets_of_a_task(gens):
    pts = build_points(build_scores(CONFIG, gens))
    assert list(pts.columns) == POINT_COLUMNS
    assert len(pts) == 3 * 2 * 2  # models x tasks x n_shots
    arith = pts[(pts.model == "s1") & (pts.task == "arithmetic") & (pts.n_shots == 0)].iloc[0]
    assert arith.n_datasets == 2 and arith.score == pytest.approx(0.5)


def test_non_ok_records_are_counted_not_scored(tmp_path, gens, capsys):
    recs = [rec(0, 5000, 0.0, "over_context"), rec(1, 10, 1.0), rec(2, 20, 0.0)]
    write_shard(gens, "s1", "gsm8k", 0, recs)
    df = build_scores(CONFIG, gens)
    row = df[(df.model == "s1") & (df.dataset == "gsm8k") & (df.n_shots == 0)].iloc[0]
    assert row.n_instances == 2 and row.n_excluded == 1 and row.n_pmt == pytest.approx(15)
    assert "1 of 3 instances not scored (status over_context)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([rec(0, 1, 1.5)], r"gsm8k/3\.jsonl:2: score 1\.5 is not in \[0, 1\]"),
        ([rec(0, 1, 1.0), rec(0, 1, 1.0)], r"3\.jsonl:3: instance id 'i0' appears twice"),
        ([{"id": "x", "n_pmt": 3, "status": "ok"}], r"3\.jsonl:2: record lacks field 'score'"),
    ],
)
def test_bad_shard_is_named(gens, records, message):
    write_shard(gens, "s2", "gsm8k", 3, records)
    with pytest.raises(CtxscaleError, match=message):
        build_scores(CONFIG, gens)


def test_missing_shard_and_partial_hint(gens):
    path = Path(artifacts.shard_path("o1", "piqa", 3, str(gens)))
    path.rename(path.with_name(path.name + ".partial"))
    with pytest.raises(CtxscaleError, match=r"o1/piqa/3\.jsonl is missing \(only a \.partial"):
        build_scores(CONFIG, gens)


def test_settings_mismatch_is_an_error(gens):
    write_shard(gens, "s1", "piqa", 0, [rec(0, 1, 1.0)], {"model": "s2"})
    with pytest.raises(CtxscaleError, match="settings.model is 's2', expected 's1'"):
        build_scores(CONFIG, gens)


def test_cli_is_deterministic_and_writes_both_tables(tmp_path, gens):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    outs = []
    for i in range(2):
        s, p = tmp_path / f"s{i}.csv", tmp_path / f"p{i}.csv"
        argv = ["scores", "--config", str(cfg), "--generations", str(gens), "--out", str(s)]
        argv += ["--prompts", str(tmp_path / "prompts"), "--corrected", str(tmp_path / f"c{i}.csv")]
        assert main([*argv, "--points", str(p)]) == 0
        outs.append((s.read_bytes(), p.read_bytes(), (tmp_path / f"c{i}.csv").read_bytes()))
    assert outs[0] == outs[1]
    assert pd.read_csv(tmp_path / "p0.csv").score.between(0, 1).all()
    assert b"\r" not in outs[0][0]


def test_manifest_is_sorted_and_complete(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_bytes(b"hello")
    (tmp_path / "a.txt").write_bytes(b"")
    text = manifest_text(["b/x.txt", "a.txt"], tmp_path)
    lines = text.splitlines()
    assert lines[0] == "path\tbytes\tsha256"
    assert lines[1].startswith("a.txt\t0\te3b0c442")
    assert lines[2] == (
        "b/x.txt\t5\t2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    with pytest.raises(CtxscaleError, match="artifact c.txt is missing"):
        manifest_text(["c.txt"], tmp_path)


def test_artifact_list_follows_the_config():
    names = artifacts.figure_names(CONFIG)
    assert "ood_compute" in names and "yarn_vs_pi" not in names
    assert "fig4_contour_translation" not in names and "fig3_contour_common_sense" in names
    every = artifacts.all_artifacts(CONFIG)
    assert every == sorted(every) and artifacts.MANIFEST not in every
    assert "results/predictions/ood.csv" in every
    assert "results/predictions/technique.csv" not in every
    assert len([p for p in every if p.endswith(".jsonl")]) == 3 * 3 * 2  # shards
    assert len([p for p in every if p.endswith("/manifest.tsv")]) == 3 * 3  # per (model, dataset)
    declared = artifacts.targets(CONFIG)
    assert not [p for p in declared if p.endswith(".jsonl")]


def _scores(rows):
    """A scores table of one (model, n_shots) from (dataset, n_pmt, score) rows."""
    base = {"family": "f", "model": "m", "role": "fit", "task": "arithmetic", "n_shots": 0}
    base |= {"n_ctx": 4096, "N": 1.0, "D": 1.0, "C": 6.0, "n_instances": 1, "n_excluded": 0}
    return pd.DataFrame([{**base, "dataset": d, "n_pmt": n, "score": s} for d, n, s in rows])


ARITHMETIC = [("gsm8k", 400.0, 0.2), ("math", 600.0, 0.1), ("aqua_rat", 300.0, 0.3)]
ARITHMETIC += [(f"dm_math__m{i}", 100.0, 0.9) for i in range(56)]


def test_dataset_groups_average_deepmind_modules_into_one_dataset():
    pts = build_points(_scores(ARITHMETIC), "dataset_groups")
    row = pts.iloc[0]
    assert row.n_datasets == 59 and row.n_groups == 4
    assert row.score == pytest.approx((0.2 + 0.1 + 0.3 + 0.9) / 4)
    assert row.n_pmt == pytest.approx((400 + 600 + 300 + 100) / 4)


def test_datasets_aggregation_is_the_flat_mean_sensitivity_variant():
    row = build_points(_scores(ARITHMETIC), "datasets").iloc[0]
    assert row.n_datasets == 59 and row.n_groups == 59
    assert row.score == pytest.approx((0.6 + 0.9 * 56) / 59)
    with pytest.raises(CtxscaleError, match="unknown aggregation 'x'"):
        build_points(_scores(ARITHMETIC), "x")


def test_cli_writes_the_sensitivity_points_beside_the_points(tmp_path, gens):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    pts = tmp_path / "points.csv"
    args = ["scores", "--config", str(cfg), "--generations", str(gens)]
    args += ["--prompts", str(tmp_path / "prompts"), "--corrected", str(tmp_path / "c.csv")]
    assert main([*args, "--out", str(tmp_path / "s.csv"), "--points", str(pts)]) == 0
    flat = pd.read_csv(tmp_path / "points_by_datasets.csv")
    assert set(flat.n_groups) == {1, 2} and artifacts.sensitivity_points(CONFIG).endswith(
        "points_by_datasets.csv"
    )


def _rescoring_fixture(tmp_path):
    """One DeepMind module with True/False and signed answers, its outputs and prompts."""
    config = validate_config({**CONFIG, "datasets": ["dm_math__numbers__is_prime", "piqa"]})
    gens, prompts = tmp_path / "generations", tmp_path / "prompts"
    answers = [(" False", "False"), (" True", "False"), ("-3", "-3"), ("3", "-3")]
    for m in ("s1", "s2", "o1"):
        for k in config["n_shots"]:
            for d in config["datasets"]:
                records = [
                    {**rec(i, 10 + i, 1.0 if d == "piqa" else 0.0), "output": out}
                    for i, (out, _) in enumerate(answers)
                ]
                write_shard(gens, m, d, k, records, {"metric": "math_equiv"})
                doc = {"task": "arithmetic", "instances": []}
                doc["instances"] = [
                    {"id": f"i{i}", "reference": r} for i, (_, r) in enumerate(answers)
                ]
                path = prompts / d / f"{k}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(doc))
    return config, gens, prompts


def test_a_corrected_metric_rescores_the_stored_outputs_beside_the_original(tmp_path):
    config, gens, prompts = _rescoring_fixture(tmp_path)
    scores, corrected = score_tables(config, gens, prompts)
    # the fit's scores stay the original metric's (the shards' stored scores)
    assert scores[scores.dataset == "dm_math__numbers__is_prime"]["score"].eq(0.0).all()
    # only the dataset that names a corrected metric is rescored: piqa is not
    assert list(corrected.columns) == CORRECTED_COLUMNS
    assert set(corrected["dataset"]) == {"dm_math__numbers__is_prime"}
    assert len(corrected) == 3 * len(config["n_shots"])
    # " False" == "False" and "-3" == "-3" are right; "True" and "3" (sign) are not
    assert corrected["score_corrected"].eq(0.5).all()
    assert corrected["score"].eq(0.0).all()
    assert set(corrected["corrected_metric"]) == {"math_equiv_answer"}
    assert set(corrected["metric"]) == {"math_equiv"}


def test_the_corrected_metric_needs_the_prompts_it_reads(tmp_path):
    config, gens, prompts = _rescoring_fixture(tmp_path)
    (prompts / "dm_math__numbers__is_prime" / "3.json").unlink()
    with pytest.raises(CtxscaleError, match=r"is_prime/3.json is missing \(the corrected metric"):
        score_tables(config, gens, prompts)
    # the scores alone do not read references
    assert len(build_scores(config, gens, prompts)) == 3 * 2 * 2


def test_a_family_with_its_own_tokenizer_reads_its_own_prompts_files(tmp_path):
    """Scores read the prompts file each model ran on (artifacts.prompts_for): the shared
    one for data.tokenizer's families, its own tokenizer's for a family that has one."""
    fams = [dict(f) for f in CONFIG["families"]]
    fams[1]["tokenizer"] = "org/tok"
    config = validate_config({**CONFIG, "datasets": ["gsm8k"], "families": fams})
    gens, prompts = tmp_path / "generations", tmp_path / "prompts"
    own = prompts / "by_tokenizer" / "org--tok"
    for m in ("s1", "s2", "o1"):
        for k in config["n_shots"]:
            write_shard(gens, m, "gsm8k", k, [rec(0, 10, 1.0)])  # no task in the settings
    for root, task in ((prompts, "arithmetic"), (own, "translation")):
        for k in config["n_shots"]:
            path = root / "gsm8k" / f"{k}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"task": task, "instances": [{"id": "i0"}]}))
    df = build_scores(config, gens, prompts)
    tasks = df.groupby("model")["task"].agg(set).to_dict()
    assert tasks == {"s1": {"arithmetic"}, "s2": {"arithmetic"}, "o1": {"translation"}}


def test_the_corrected_metric_reads_the_references_of_the_models_own_prompts(tmp_path):
    config, gens, prompts = _rescoring_fixture(tmp_path)
    fams = [dict(f) for f in config["families"]]
    fams[1]["tokenizer"] = "org/tok"
    config = validate_config({**config, "families": fams})
    with pytest.raises(CtxscaleError, match=r"by_tokenizer/org--tok/dm_math__numbers__is_prime/"):
        score_tables(config, gens, prompts)
    own = prompts / "by_tokenizer" / "org--tok"
    own.mkdir(parents=True)
    for d in config["datasets"]:
        (own / d).mkdir()
        for k in config["n_shots"]:
            doc = json.loads((prompts / d / f"{k}.json").read_text())
            for inst in doc["instances"]:
                inst["reference"] = "True"  # the own selection's references: another answer
            (own / d / f"{k}.json").write_text(json.dumps(doc))
    _, corrected = score_tables(config, gens, prompts)
    by_model = corrected.groupby("model")["score_corrected"].agg(set).to_dict()
    assert by_model == {"s1": {0.5}, "s2": {0.5}, "o1": {0.25}}  # only " True" is right
