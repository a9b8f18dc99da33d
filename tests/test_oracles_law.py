"""The law at values worked out by hand from the paper's formula, not from the package.

    P = [1 - exp(-A (C / C_c)^alpha)] * [1 - exp(-B (n_pmt / n_pmt_c)^beta)] * penalty

Penalties (docs: the law): log_sigmoid with width w is sigma(-ln(n_pmt / n_ctx) / w)
= 1 / (1 + (n_pmt / n_ctx)^(1 / w)); with the default width 0.1 that is
1 / (1 + (n_pmt / n_ctx)^10). sigmoid is the paper's literal 1 - sigma(n_pmt - n_ctx).
log_sigmoid_fitted moves the centre to centre x n_ctx.
"""

import math

import numpy as np
import pytest

from ctxscale.analysis.law import context_agnostic, context_aware, penalty, predict

E = math.e


def paper_law(C, n_pmt, n_ctx, A, C_c, alpha, B, n_pmt_c, beta, width=0.1, centre=1.0):
    """The formula, typed from the paper with the log_sigmoid penalty, in plain math."""
    compute = 1.0 - math.exp(-A * (C / C_c) ** alpha)
    context = 1.0 - math.exp(-B * (n_pmt / n_pmt_c) ** beta)
    pen = 1.0 / (1.0 + (n_pmt / (centre * n_ctx)) ** (1.0 / width))
    return compute * context * pen


# Points where every factor is a closed form:
#   A = 1, C = C_c          -> compute term 1 - 1/e
#   B = ln 2, n_pmt = n_pmt_c -> context term 1/2
#   n_pmt = n_ctx            -> penalty 1/2;  n_pmt = 2 n_ctx -> 1 / (1 + 2^10) = 1/1025
HAND = [
    # (C, n_pmt, n_ctx, A, C_c, alpha, B, n_pmt_c, beta, expected)
    (1e22, 1000.0, 1000.0, 1.0, 1e22, 0.4, math.log(2), 1000.0, 0.5, (1 - 1 / E) / 4),
    (1e22, 1000.0, 500.0, 1.0, 1e22, 0.4, math.log(2), 1000.0, 0.5, (1 - 1 / E) / 2 / 1025),
    # C = 4 C_c, alpha = 0.5, A = 1 -> compute term 1 - e^-2;  n_pmt = n_pmt_c / 4 with
    # beta = 0.5, B = 2 -> context term 1 - e^-1; n_pmt = n_ctx / 2 -> penalty 1024/1025
    (4e22, 250.0, 500.0, 1.0, 1e22, 0.5, 2.0, 1000.0, 0.5, (1 - E**-2) * (1 - 1 / E) * 1024 / 1025),
]


@pytest.mark.parametrize("case", HAND)
def test_law_at_closed_form_points(case):
    *args, expected = case
    C, n_pmt, n_ctx, A, C_c, alpha, B, n_pmt_c, beta = args
    got = context_aware(C, n_pmt, n_ctx, A, C_c, alpha, B, n_pmt_c, beta)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert paper_law(*args) == pytest.approx(expected, rel=1e-12)  # the oracle itself


def test_closed_form_numbers_typed_out():
    """The same three values as decimals (1 - 1/e = 0.63212..., 1 - e^-2 = 0.86466...)."""
    assert [case[-1] for case in HAND] == pytest.approx(
        [0.15803013970713942, 0.00030835149211149153, 0.5460391026486286], rel=1e-12
    )


@pytest.mark.parametrize(
    ("C", "n_pmt", "n_ctx"),
    [(7.7719e22, 300.0, 4096.0), (1.5251e23, 9000.0, 131072.0), (3e21, 5000.0, 4096.0)],
)
def test_law_matches_the_formula_on_paper_scale_points(C, n_pmt, n_ctx):
    params = {"A": 1.5, "C_c": 1e22, "alpha": 0.4, "B": 1.2, "n_pmt_c": 800.0, "beta": 0.55}
    want = paper_law(C, n_pmt, n_ctx, **params)
    assert float(predict(params, C, n_pmt, n_ctx)) == pytest.approx(want, rel=1e-12)
    assert float(context_aware(C, n_pmt, n_ctx, **params)) == pytest.approx(want, rel=1e-12)


def test_default_penalty_is_log_sigmoid_of_width_0_1():
    """The default (no penalty arguments) is 1 / (1 + (n_pmt / n_ctx)^10)."""
    ratios = np.array([0.25, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 4.0])
    want = 1.0 / (1.0 + ratios**10)
    assert penalty(ratios * 4096, 4096.0) == pytest.approx(want, rel=1e-12)
    assert penalty(1.1 * 4096, 4096.0) == pytest.approx(1 / (1 + 1.1**10))  # 0.2782
    assert penalty(2 * 4096, 4096) == pytest.approx(1 / 1025)


def test_penalty_variants_at_hand_values():
    assert penalty(4097, 4096, "sigmoid") == pytest.approx(1 / (1 + E))
    assert penalty(4096, 4096, "sigmoid") == pytest.approx(0.5)
    assert penalty(4093, 4096, "sigmoid") == pytest.approx(1 / (1 + E**-3))
    assert penalty(1e6, 4096, "none") == 1.0
    # width 0.5: 1 / (1 + ratio^2); centre 2: the half point moves to 2 n_ctx
    assert penalty(2 * 4096, 4096, "log_sigmoid", width=0.5) == pytest.approx(1 / 5)
    assert penalty(2 * 4096, 4096, "log_sigmoid_fitted", centre=2.0) == pytest.approx(0.5)
    assert penalty(4 * 4096, 4096, "log_sigmoid_fitted", 0.5, 2.0) == pytest.approx(1 / 5)


def test_context_agnostic_is_the_compute_term_alone():
    assert float(context_agnostic(4e22, 1.0, 1e22, 0.5)) == pytest.approx(1 - E**-2)
    assert float(context_agnostic(1e22, 2.0, 1e22, 0.3)) == pytest.approx(1 - E**-2)
    params = {"A": 1.0, "C_c": 1e22, "alpha": 0.5, "B": None, "n_pmt_c": None, "beta": None}
    got = predict(params, 4e22, [10.0, 1e5], 4096.0, law="context_agnostic")
    assert got == pytest.approx([1 - E**-2] * 2)


def test_full_law_with_each_penalty_at_one_point():
    C, n_pmt, n_ctx = 4e22, 250.0, 249.0
    params = {"A": 1.0, "C_c": 1e22, "alpha": 0.5, "B": 2.0, "n_pmt_c": 1000.0, "beta": 0.5}
    base = (1 - E**-2) * (1 - 1 / E)
    assert float(predict(params, C, n_pmt, n_ctx, penalty_name="none")) == pytest.approx(base)
    sig = float(predict(params, C, n_pmt, n_ctx, penalty_name="sigmoid"))
    assert sig == pytest.approx(base / (1 + E))
    wide = float(predict(params, C, n_pmt, n_ctx, penalty_name="log_sigmoid", width=1.0))
    assert wide == pytest.approx(base / (1 + 250 / 249))
