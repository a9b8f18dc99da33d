"""Fit diagnostics the paper comparison needs: parameters at a search bound, and the
extrapolation MAE on the longest-context model alone."""

import numpy as np
import pytest
from synthetic_results import write_results

from ctxscale.analysis.fit import FitSettings, at_bounds
from ctxscale.outputs.results import Inputs, Results
from ctxscale.outputs.tables import _bound_notes, build_table


def test_at_bounds_flags_parameters_on_a_search_bound():
    settings = FitSettings()
    names = settings.free_names
    theta = np.array([(settings.bounds[n][0] + settings.bounds[n][1]) / 2 for n in names])
    assert at_bounds(theta, settings) == {}
    theta[names.index("alpha")] = settings.bounds["alpha"][0]
    theta[names.index("log10_B")] = settings.bounds["log10_B"][1] - 1e-6
    assert at_bounds(theta, settings) == {"alpha": "low", "log10_B": "high"}


def test_bound_notes_name_paper_parameters_and_combinations():
    notes = _bound_notes({"log10_A": "high", "beta": "low"})
    assert notes["A"] == notes["log10_A_C_c"] == "at the high search bound of log10_A"
    assert notes["beta"] == "at the low search bound of beta"


def test_fit_json_records_bounds_and_params_table_flags_them(tmp_path):
    import json

    paths = write_results(tmp_path)
    doc = json.loads(paths["fit_main"].read_text())
    doc["tasks"]["arithmetic"]["at_bound"] = {"alpha": "low"}
    paths["fit_main"].write_text(json.dumps(doc))
    table = build_table("params", Results(Inputs(**paths)))
    row = table[(table.task == "arithmetic") & (table.parameter == "alpha")]
    assert set(row.note) == {"at the low search bound of alpha"}


def test_mae_table_reports_the_longest_context_model_alone(tmp_path):
    paths = write_results(tmp_path)
    res = Results(Inputs(**paths))
    table = build_table("mae", res).set_index(["task", "setting"])
    pooled = table.loc[("arithmetic", "extrapolation")]
    longest = table.loc[("arithmetic", "extrapolation_longest_ctx")]
    assert 0 < longest.n_points <= pooled.n_points
    held = res.predicted("fit_extrapolation")
    held = held[(held.task == "arithmetic") & (held.n_pmt >= res.holdout_npmt())]
    held = held[held.n_ctx == held.n_ctx.max()]
    assert longest.mae == pytest.approx((held.score - held.predicted).abs().mean())
