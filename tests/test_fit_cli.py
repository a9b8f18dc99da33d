"""``ctxscale fit`` / ``ctxscale predict``: the file contract, determinism, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synth, wide_grid

from ctxscale.analysis.law import PARAM_NAMES
from ctxscale.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "points_demo.csv"


@pytest.fixture
def points_csv(tmp_path) -> Path:
    df = pd.concat(
        [synth(wide_grid(), seed=0, task="arithmetic"), synth(wide_grid(), seed=1, task="other")],
        ignore_index=True,
    ).drop(columns="truth")
    df["role"] = np.where(df["C"] > 5e23, "ood", "fit")
    path = tmp_path / "points.csv"
    df.to_csv(path, index=False)
    return path


def _fit(args: list[str]) -> int:
    return main(["fit", *args])


def test_fit_writes_the_contract(tmp_path, points_csv, capsys):
    out = tmp_path / "fit.json"
    assert _fit([str(points_csv), "--out", str(out), "--bootstrap", "3", "--jobs", "1"]) == 0
    assert "arithmetic" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert sorted(data["tasks"]) == ["arithmetic", "other"]
    for task in data["tasks"].values():
        assert list(task["params"]) == sorted(PARAM_NAMES)  # exactly the six, sorted keys
        assert set(task["identifiable"]) == {"alpha", "beta", "log10_A_C_c", "log10_B_n_pmt_c"}
        assert set(task["ci"]["params"]) == set(PARAM_NAMES)
        assert set(task["ci"]["identifiable"]) == set(task["identifiable"])
        assert task["n_points"] == 120 and 0 < task["mae"] < 0.012
        assert set(task["mae_split"]) == {"all", "le_ctx", "gt_ctx"}
        assert "holdout" not in task
    s = data["settings"]
    assert (s["law"], s["penalty"], s["loss"], s["seed"]) == (
        "context_aware",
        "log_sigmoid",
        "squared",
        31337,
    )
    assert s["bootstrap"]["n_resamples"] == 3 and "bounds" in s


def test_fit_summary_shows_gamma_only_for_the_coupling_variant(tmp_path, points_csv, capsys):
    """The printed table gains a gamma column (value and interval) with --coupling."""
    out = tmp_path / "fit.json"
    common = [str(points_csv), "--out", str(out), "--tasks", "other", "--jobs", "1"]
    assert _fit([*common, "--coupling", "--bootstrap", "3"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    gamma = json.loads(out.read_text())["tasks"]["other"]["gamma"]
    assert header.endswith("gamma [CI]") and f" {gamma:.3f} [" in row
    assert _fit([*common, "--bootstrap", "0"]) == 0
    assert "gamma [CI]" not in capsys.readouterr().out


def test_same_seed_gives_byte_identical_fit_json(tmp_path, points_csv):
    a, b, c = (tmp_path / f"{n}.json" for n in "abc")
    common = [str(points_csv), "--bootstrap", "3", "--tasks", "arithmetic"]
    assert _fit([*common, "--out", str(a), "--jobs", "1"]) == 0
    assert _fit([*common, "--out", str(b), "--jobs", "2"]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert _fit([*common, "--out", str(c), "--seed", "1"]) == 0
    assert a.read_bytes() != c.read_bytes()


def test_where_tasks_holdout_and_penalty_options(tmp_path, points_csv):
    out = tmp_path / "fit.json"
    args = [str(points_csv), "--out", str(out), "--bootstrap", "0", "--where", "role=fit"]
    assert _fit([*args, "--tasks", "other", "--holdout-npmt", "10000", "--no-penalty"]) == 0
    data = json.loads(out.read_text())
    assert list(data["tasks"]) == ["other"]
    task = data["tasks"]["other"]
    assert task["ci"] is None
    assert task["n_points"] == task["holdout"]["n_fit"] == 3 * 3 * 7  # C <= 1e23, n_pmt < 1e4
    assert task["holdout"]["n_heldout"] == 3 * 3 * 3
    assert data["settings"]["penalty"] == "none"
    assert data["settings"]["holdout_npmt"] == 10000


def test_context_agnostic_law_option(tmp_path, points_csv):
    out = tmp_path / "fit.json"
    assert _fit([str(points_csv), "--out", str(out), "--bootstrap", "0",
                 "--law", "context_agnostic"]) == 0  # fmt: skip
    params = json.loads(out.read_text())["tasks"]["other"]["params"]
    assert params["beta"] is None and params["alpha"] is not None


def test_predict_adds_a_column_and_matches_the_fit(tmp_path, points_csv):
    fit = tmp_path / "fit.json"
    pred = tmp_path / "pred.csv"
    assert _fit([str(points_csv), "--out", str(fit), "--bootstrap", "0"]) == 0
    assert main(["predict", str(fit), str(points_csv), "--out", str(pred)]) == 0
    src = pd.read_csv(points_csv)
    got = pd.read_csv(pred)
    assert list(got.columns) == [*src.columns, "predicted"]
    assert len(got) == len(src)
    mae = json.loads(fit.read_text())["tasks"]["arithmetic"]["mae"]
    rows = got["task"] == "arithmetic"
    assert np.mean(np.abs(got.loc[rows, "score"] - got.loc[rows, "predicted"])) == pytest.approx(
        mae, rel=1e-6
    )
    # --where keeps the matching rows only.
    assert main(["predict", str(fit), str(points_csv), "--out", str(pred),
                 "--where", "role=ood"]) == 0  # fmt: skip
    assert set(pd.read_csv(pred)["role"]) == {"ood"}


def test_numeric_where_and_parquet_predictions(tmp_path, points_csv):
    fit = tmp_path / "fit.json"
    pred = tmp_path / "pred.parquet"
    args = [str(points_csv), "--out", str(fit), "--bootstrap", "0", "--tasks", "other"]
    assert _fit([*args, "--where", "n_ctx=16384"]) == 0
    assert json.loads(fit.read_text())["tasks"]["other"]["n_points"] == 4 * 10
    assert main(["predict", str(fit), str(points_csv), "--out", str(pred),
                 "--where", "task=other", "--where", "n_ctx=4096"]) == 0  # fmt: skip
    got = pd.read_parquet(pred)
    assert len(got) == 40 and set(got["n_ctx"]) == {4096.0}
    assert got["predicted"].between(0, 1).all()


def test_parquet_input_gives_the_same_fit(tmp_path, points_csv):
    pq = tmp_path / "points.parquet"
    pd.read_csv(points_csv).to_parquet(pq, index=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert _fit([str(points_csv), "--out", str(a), "--bootstrap", "0", "--tasks", "other"]) == 0
    assert _fit([str(pq), "--out", str(b), "--bootstrap", "0", "--tasks", "other"]) == 0
    assert a.read_bytes() == b.read_bytes()


def _bad_table(tmp_path: Path, points_csv: Path, row: int, column: str, value) -> Path:
    df = pd.read_csv(points_csv).astype({column: object})
    df.loc[row, column] = value
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "column,value,words",
    [
        ("score", 1.2, ["row 6", "'score'", "outside [0, 1]"]),
        ("score", np.nan, ["row 6", "'score'", "missing"]),
        ("C", -1.0, ["row 6", "'C'", "positive"]),
        ("n_pmt", 0, ["row 6", "'n_pmt'", "positive"]),
        ("n_ctx", -4096, ["row 6", "'n_ctx'", "positive"]),
        ("task", np.nan, ["row 6", "'task'", "empty"]),
    ],
)
def test_bad_table_is_one_line_and_exit_2(tmp_path, points_csv, capsys, column, value, words):
    bad = _bad_table(tmp_path, points_csv, 5, column, value)
    assert _fit([str(bad), "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ctxscale fit: error:")
    for word in words:
        assert word in err
    assert not (tmp_path / "f.json").exists()


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--penalty", "cliff"], ["unknown penalty 'cliff'"]),
        (["--law", "chinchilla"], ["unknown law 'chinchilla'"]),
        (["--loss", "cubic"], ["unknown loss 'cubic'"]),
        (["--tasks", "poetry"], ["task 'poetry' has no rows"]),
        (["--where", "role=nope"], ["no rows left", "role=nope"]),
        (["--where", "colour=red"], ["'colour'"]),
        (["--holdout-npmt", "5"], ["task 'arithmetic' has 0 points", "n_pmt < 5"]),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path, points_csv, capsys, extra, words):
    assert _fit([str(points_csv), "--out", str(tmp_path / "f.json"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for word in words:
        assert word in err


def test_missing_column_and_missing_file(tmp_path, points_csv, capsys):
    path = tmp_path / "nocol.csv"
    pd.read_csv(points_csv).drop(columns="n_pmt").to_csv(path, index=False)
    assert _fit([str(path), "--out", str(tmp_path / "f.json")]) == 2
    assert "missing column 'n_pmt'" in capsys.readouterr().err
    assert _fit([str(tmp_path / "none.csv"), "--out", str(tmp_path / "f.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "none.json"), str(points_csv), "--out", "x.csv"]) == 2


def test_demo_table_regenerates_byte_identically(tmp_path):
    out = tmp_path / "demo.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "make_demo_points.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        env={"PYTHONPATH": str(ROOT / "src")},
    )
    assert out.read_bytes() == DEMO.read_bytes()


def test_demo_fit_recovers_the_generating_exponents(tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from make_demo_points import TRUE_PARAMS
    finally:
        sys.path.pop(0)
    out = tmp_path / "demo_fit.json"
    assert _fit([str(DEMO), "--out", str(out), "--bootstrap", "0"]) == 0
    tasks = json.loads(out.read_text())["tasks"]
    for name, true in TRUE_PARAMS.items():
        assert tasks[name]["mae"] < 0.01
        assert tasks[name]["identifiable"]["alpha"] == pytest.approx(true["alpha"], abs=0.05)
        assert tasks[name]["identifiable"]["beta"] == pytest.approx(true["beta"], abs=0.05)


def test_bound_option_sets_a_search_range_and_rejects_unknown_names(tmp_path, capsys):
    from conftest import synth, wide_grid

    from ctxscale.cli import main

    pts = tmp_path / "p.csv"
    synth(wide_grid()).to_csv(pts, index=False)
    out = tmp_path / "fit.json"
    assert (
        main(
            ["fit", str(pts), "--out", str(out), "--bootstrap", "0", "--bound", "alpha", "0", "0.2"]
        )
        == 0
    )
    import json

    fit = json.loads(out.read_text())
    assert fit["settings"]["bounds"]["alpha"] == [0.0, 0.2]
    assert fit["tasks"]["t"]["params"]["alpha"] <= 0.2
    assert fit["tasks"]["t"]["at_bound"] == {"alpha": "high"}
    assert main(["fit", str(pts), "--out", str(out), "--bound", "kappa", "0", "1"]) == 2
    assert "unknown parameter 'kappa'" in capsys.readouterr().err


def test_workflow_fits_from_the_config_equal_their_flags(tmp_path, points_csv, capsys):
    """`ctxscale fit --config C --variant NAME` (the fit rule) writes the bytes of the flags
    that variant stands for (artifacts.fit_settings); a flag given still wins."""
    import yaml

    from ctxscale import artifacts
    from ctxscale.config import load_config

    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    doc["fit"] = {
        "penalty": "log_sigmoid",
        "penalty_width": 0.2,
        "loss": "squared",
        "bootstrap": 3,
        "holdout_npmt": 10000,
        "seed": 5,
        "bounds": {"alpha": [0, 4]},
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    config = load_config(cfg)
    assert {n: artifacts.fit_settings(config, n)["bootstrap"] for n in artifacts.FITS} == {
        n: 3 if n == "main" else 0 for n in artifacts.FITS
    }
    common = [str(points_csv), "--tasks", "other", "--where", "role=fit", "--jobs", "1"]
    same = "--seed 5 --bound alpha 0 4 --loss squared --penalty log_sigmoid --penalty-width 0.2"
    flags = {
        "main": f"{same} --bootstrap 3",
        "extrapolation": f"{same} --bootstrap 0 --holdout-npmt 10000",
        "coupling_variant": f"{same} --bootstrap 0 --coupling",
        "no_penalty": "--seed 5 --bound alpha 0 4 --loss squared --no-penalty --bootstrap 0",
    }
    for name, explicit in flags.items():
        a, b = tmp_path / f"{name}_flags.json", tmp_path / f"{name}_config.json"
        assert _fit([*common, "--out", str(a), *explicit.split()]) == 0
        assert _fit([*common, "--out", str(b), "--config", str(cfg), "--variant", name]) == 0
        assert a.read_bytes() == b.read_bytes(), name
    out = tmp_path / "override.json"
    assert _fit([*common, "--out", str(out), "--config", str(cfg), "--bootstrap", "0"]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["bootstrap"]["n_resamples"] == 0 and settings["seed"] == 5
    capsys.readouterr()
    assert _fit([*common, "--out", str(out), "--variant", "main"]) == 2
    assert "give --config too" in capsys.readouterr().err
