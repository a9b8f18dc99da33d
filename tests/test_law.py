"""The law itself: formula, penalties, log-space numerics, the redundancy, the baseline."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ctxscale.analysis import law
from ctxscale.errors import CtxscaleError

P = {"A": 1.5, "C_c": 1e22, "alpha": 0.4, "B": 1.2, "n_pmt_c": 800.0, "beta": 0.55}


def test_matches_the_formula_at_moderate_values():
    C = np.array([1e21, 3e22, 5e23])
    n_pmt = np.array([50.0, 900.0, 3000.0])
    n_ctx = np.full(3, 4096.0)
    got = law.context_aware(C, n_pmt, n_ctx, **P, penalty_name="none")
    want = (1 - np.exp(-P["A"] * (C / P["C_c"]) ** P["alpha"])) * (
        1 - np.exp(-P["B"] * (n_pmt / P["n_pmt_c"]) ** P["beta"])
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_broadcasts_over_grids():
    C = np.geomspace(1e21, 1e25, 5)[:, None]
    n_pmt = np.geomspace(10, 1e5, 7)[None, :]
    out = law.context_aware(C, n_pmt, 8192.0, **P)
    assert out.shape == (5, 7)
    assert np.all((out >= 0) & (out <= 1))
    # More compute never hurts; more prompt helps until the context limit.
    assert np.all(np.diff(out, axis=0) >= 0)


def test_no_overflow_and_no_precision_loss_in_log_space():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge = law.compute_term(1e25, A=1e3, C_c=1e15, alpha=3.0)  # x = 1e33
        tiny = law.compute_term(1e21, A=1e-12, C_c=1e21, alpha=0.5)
    assert huge == 1.0
    np.testing.assert_allclose(tiny, 1e-12, rtol=1e-9)  # 1 - exp(-x) ~ x, kept by expm1


def test_sigmoid_penalty_is_the_papers_decreasing_raw_token_sigmoid():
    n_ctx = 4096.0
    pen = law.penalty(np.array([4000.0, 4096.0, 4200.0]), n_ctx, "sigmoid")
    np.testing.assert_allclose(pen, [1.0, 0.5, 0.0], atol=1e-12)
    # 1 - sigma(n_pmt - n_ctx), written out.
    x = np.array([4094.0, 4097.0])
    np.testing.assert_allclose(
        law.penalty(x, n_ctx, "sigmoid"), 1 - 1 / (1 + np.exp(-(x - n_ctx))), rtol=1e-12
    )


def test_log_sigmoid_penalty_is_scale_free_and_decreasing():
    ratios = np.array([0.5, 0.8, 1.0, 1.25, 2.0])
    small = law.penalty(ratios * 4096, 4096.0, "log_sigmoid", width=0.1)
    large = law.penalty(ratios * 131072, 131072.0, "log_sigmoid", width=0.1)
    np.testing.assert_allclose(small, large, rtol=1e-12)
    assert np.all(np.diff(small) < 0)
    assert small[2] == pytest.approx(0.5)
    assert small[0] > 0.999 and small[-1] < 0.001
    # A wider band falls more slowly.
    wide = law.penalty(1.25 * 4096, 4096.0, "log_sigmoid", width=0.5)
    assert wide > small[3]


def test_none_penalty_is_one():
    np.testing.assert_array_equal(law.penalty([10.0, 1e6], [4096.0, 4096.0], "none"), [1.0, 1.0])


@pytest.mark.parametrize("name,width", [("step", 0.1), ("log_sigmoid", 0.0), ("sigmoid", -1)])
def test_bad_penalty_is_a_clear_error(name, width):
    with pytest.raises(CtxscaleError, match="penalty"):
        law.penalty(1.0, 1.0, name, width)


def test_redundant_direction_gives_identical_predictions():
    """A, C_c enter only as A C_c^-alpha; B, n_pmt_c only as B n_pmt_c^-beta."""
    C = np.geomspace(1e21, 1e24, 6)
    n_pmt = np.geomspace(10, 1e5, 6)
    base = law.context_aware(C, n_pmt, 8192.0, **P)
    k_c, k_n = 37.0, 0.05
    moved = dict(P)
    moved.update(
        C_c=P["C_c"] * k_c,
        A=P["A"] * k_c ** P["alpha"],
        n_pmt_c=P["n_pmt_c"] * k_n,
        B=P["B"] * k_n ** P["beta"],
    )
    np.testing.assert_allclose(law.context_aware(C, n_pmt, 8192.0, **moved), base, rtol=1e-10)


def test_context_agnostic_is_the_compute_term_only():
    params = dict(P, B=None, n_pmt_c=None, beta=None)
    C = np.array([1e21, 1e21, 1e23])
    n_pmt = np.array([10.0, 1e5, 10.0])
    out = law.predict(params, C, n_pmt, 4096.0, law="context_agnostic")
    assert out[0] == out[1]  # no dependence on n_pmt or n_ctx
    np.testing.assert_allclose(out, law.compute_term(C, P["A"], P["C_c"], P["alpha"]))


def test_predict_dispatches_and_rejects_unknown_law():
    out = law.predict(P, 1e22, 800.0, 4096.0)
    assert out == pytest.approx(law.context_aware(1e22, 800.0, 4096.0, **P))
    with pytest.raises(CtxscaleError, match="unknown law"):
        law.predict(P, 1e22, 800.0, 4096.0, law="chinchilla")


@pytest.mark.parametrize(
    ("penalty_name", "floor", "coupling"),
    [
        ("log_sigmoid", False, False),
        ("log_sigmoid_fitted", False, False),
        ("log_sigmoid_fitted", True, False),
        ("log_sigmoid", False, True),
        ("log_sigmoid_fitted", True, True),
    ],
)
def test_fit_population_matches_the_law_point_by_point(penalty_name, floor, coupling):
    """The fit evaluates each factor once per distinct C, n_pmt and n_pmt/n_ctx and
    gathers: every point of every population member must still be the law's value."""
    rng = np.random.default_rng(3)
    C = rng.choice([1e18, 3e19, 2e21], size=40)
    n_pmt = rng.choice([12.0, 150.0, 900.0, 5000.0], size=40)
    n_ctx = rng.choice([512.0, 4096.0], size=40)
    C_ref, n_pmt_ref = 1e20, 300.0
    x = law.FitCoords.of(
        C, n_pmt, n_ctx, C_ref, n_pmt_ref, penalty_name=penalty_name, floor=floor, coupling=coupling
    )
    fitted = penalty_name == "log_sigmoid_fitted"
    # theta: log10 A, alpha, log10 B, beta, [log10 centre, log10 width], [gamma], [floor]
    bounds = [(-1.0, 1.0), (0.2, 2.0), (-1.0, 1.0), (0.2, 2.0)]
    bounds += [(-0.2, 0.5), (-1.5, -0.3)] * fitted + [(-1.0, 1.0)] * coupling
    bounds += [(0.0, 0.3)] * floor
    lo, hi = np.array(bounds).T
    k = len(bounds)
    pop = rng.uniform(lo[:, None], hi[:, None], size=(k, 5))  # 5 members, one per column
    got = law.predict_fit(pop, x)
    for s in range(pop.shape[1]):
        t = pop[:, s]
        params = dict(
            A=10 ** t[0], C_c=C_ref, alpha=t[1], B=10 ** t[2], n_pmt_c=n_pmt_ref, beta=t[3]
        )
        want = law.predict(
            params,
            C,
            n_pmt,
            n_ctx,
            penalty_name=penalty_name,
            width=10 ** t[5] if fitted else law.DEFAULT_PENALTY_WIDTH,
            centre=10 ** t[4] if fitted else 1.0,
            floor=t[-1] if floor else 0.0,
            gamma=t[4 + 2 * fitted] if coupling else 0.0,
        )
        np.testing.assert_allclose(got[s], want, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(law.predict_fit(t, x), got[s])
