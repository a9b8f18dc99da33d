"""The context-aware scaling law of Montgomery et al. (arXiv 2510.14919), vectorised.

    P(C, n_pmt, n_ctx) = [1 - exp(-A (C / C_c)^alpha)]
                       * [1 - exp(-B (n_pmt / n_pmt_c)^beta)]
                       * penalty(n_pmt, n_ctx)

C is training compute (6 N D), n_pmt the prompt length in tokens, n_ctx the model's
context limit. The saturating terms are evaluated in log space,
``A (C / C_c)^alpha = exp(log A + alpha (log C - log C_c))``, so compute values around
1e21..1e25 never overflow, and ``1 - exp(-x)`` uses ``expm1`` so small terms keep their
precision.

The penalty has no fitted parameters; it is a named choice (see :data:`PENALTIES`):

``log_sigmoid`` (default)
    ``sigma(-log(n_pmt / n_ctx) / width)``: a sigmoid on the log-ratio with a width in
    log units (default :data:`DEFAULT_PENALTY_WIDTH`). It is scale-free (the same shape at
    4k and at 128k tokens), matches the geometric grid of prompt lengths (n_pmt roughly
    doubles with each n_shots step) and models that a task-level point is a mean over
    instances whose lengths spread around n_pmt, so the score falls over a band around
    n_ctx rather than at one token.
``sigmoid``
    The paper's literal ``1 - sigma(n_pmt - n_ctx)`` on raw token counts. With n_ctx in
    the thousands this is a hard step of width ~1 token.
``log_sigmoid_fitted``
    ``sigma(-(log(n_pmt / n_ctx) - log(centre)) / width)``: the same shape with its centre
    (a multiple of n_ctx) and width fitted per task (two more free parameters). Where a
    model's fall sits relative to its n_ctx is a property of the model, not of the law;
    this variant measures it instead of assuming it.
``none``
    Constant 1: the ablation without a penalty.

The context-agnostic baseline (the paper's Figure 1 comparison) keeps only the compute
term: ``P(C) = 1 - exp(-A (C / C_c)^alpha)``.

A fitted ``floor`` (a variant, not the paper's form) lifts either law to
``floor + (1 - floor) P``: the score a model reaches without the ability the law
describes (guessing, copying an answer from the context), which the product form puts at 0.

A fitted ``gamma`` (the coupling variant, not the paper's form) lets compute scale the
prompt term: ``B (C / C_c)^gamma (n_pmt / n_pmt_c)^beta``. The product form assumes that
compute and prompt length act separately (the ratio of two models' scores is the same at
every prompt length); with ``gamma > 0`` a model with more compute needs fewer
demonstrations for the same gain. ``gamma = 0`` is the paper's form.

The fit (:mod:`ctxscale.analysis.fit`) searches the law in its own coordinates: ``theta = (log10 A,
alpha, log10 B, beta)`` at fixed reference scales C_c and n_pmt_c, plus ``(log10 centre,
log10 width)`` for a fitted penalty, ``gamma`` for the coupling and the ``floor``.
:func:`predict_fit` evaluates the law there and :func:`jacobian_fit` is its analytic
derivative; both live here, beside the law.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

from ctxscale.config import default
from ctxscale.errors import CtxscaleError

#: Law names accepted by :func:`predict` and the CLI.
LAWS: tuple[str, ...] = ("context_aware", "context_agnostic")
#: The paper's six fitted parameters, in the paper's order.
PARAM_NAMES: tuple[str, ...] = ("A", "C_c", "alpha", "B", "n_pmt_c", "beta")
#: Parameters the context-agnostic baseline uses (the others are absent/None).
AGNOSTIC_PARAM_NAMES: tuple[str, ...] = ("A", "C_c", "alpha")
#: Width, in natural-log units of n_pmt / n_ctx, of the ``log_sigmoid`` penalty.
DEFAULT_PENALTY_WIDTH = 0.1
#: Default penalty of the fit and the CLI: the config schema's ``fit.penalty``.
DEFAULT_PENALTY: str = default("fit.penalty")

# exp(700) is finite in float64; beyond it 1 - exp(-x) is 1 to machine precision anyway.
_MAX_LOG_TERM = 700.0


def saturating_from_log(log_x: np.ndarray) -> np.ndarray:
    """Return ``1 - exp(-x)`` given ``log x``, without overflow or loss of precision."""
    x = np.exp(np.minimum(log_x, _MAX_LOG_TERM))
    return -np.expm1(-x)


def compute_term(C, A, C_c, alpha) -> np.ndarray:
    """The compute factor ``1 - exp(-A (C / C_c)^alpha)``."""
    C = np.asarray(C, dtype=float)
    log_x = np.log(A) + alpha * (np.log(C) - np.log(C_c))
    return saturating_from_log(log_x)


def context_term(n_pmt, B, n_pmt_c, beta, C=None, C_c=None, gamma: float = 0.0) -> np.ndarray:
    """The prompt-length factor ``1 - exp(-B (n_pmt / n_pmt_c)^beta)``; with ``gamma``
    (the coupling variant) ``B`` becomes ``B (C / C_c)^gamma``."""
    n_pmt = np.asarray(n_pmt, dtype=float)
    log_x = np.log(B) + beta * (np.log(n_pmt) - np.log(n_pmt_c))
    if gamma != 0.0:
        log_x = log_x + gamma * (np.log(np.asarray(C, dtype=float)) - np.log(C_c))
    return saturating_from_log(log_x)


def _penalty_sigmoid(
    n_pmt: np.ndarray, n_ctx: np.ndarray, width: float, centre: float = 1.0
) -> np.ndarray:
    # 1 - sigma(n_pmt - n_ctx) == sigma(n_ctx - n_pmt); expit is stable for large arguments.
    del width, centre
    return expit(n_ctx - n_pmt)


def _penalty_log_sigmoid(
    n_pmt: np.ndarray, n_ctx: np.ndarray, width: float, centre: float = 1.0
) -> np.ndarray:
    return expit(-(np.log(n_pmt) - np.log(n_ctx) - np.log(centre)) / width)


def _penalty_none(
    n_pmt: np.ndarray, n_ctx: np.ndarray, width: float, centre: float = 1.0
) -> np.ndarray:
    del width, centre
    return np.ones(np.broadcast(n_pmt, n_ctx).shape)


#: Named penalty functions ``f(n_pmt, n_ctx, width, centre) -> array in [0, 1]``.
PENALTIES: dict[str, Callable[..., np.ndarray]] = {
    "log_sigmoid": _penalty_log_sigmoid,
    "log_sigmoid_fitted": _penalty_log_sigmoid,
    "sigmoid": _penalty_sigmoid,
    "none": _penalty_none,
}
#: Penalties whose centre and width are fitted per task (not fixed settings).
FITTED_PENALTIES: tuple[str, ...] = ("log_sigmoid_fitted",)


def check_penalty(name: str, width: float = DEFAULT_PENALTY_WIDTH) -> None:
    """Raise :class:`CtxscaleError` for an unknown penalty name or a bad width."""
    if name not in PENALTIES:
        known = ", ".join(sorted(PENALTIES))
        raise CtxscaleError(f"unknown penalty {name!r} (known: {known})")
    if not (np.isfinite(width) and width > 0):
        raise CtxscaleError(f"penalty width must be a positive number, got {width!r}")


def check_law(name: str) -> None:
    """Raise :class:`CtxscaleError` for an unknown law name."""
    if name not in LAWS:
        raise CtxscaleError(f"unknown law {name!r} (known: {', '.join(LAWS)})")


def penalty(
    n_pmt,
    n_ctx,
    name: str = DEFAULT_PENALTY,
    width: float = DEFAULT_PENALTY_WIDTH,
    centre: float = 1.0,
) -> np.ndarray:
    """The named penalty: ~1 while n_pmt <= centre x n_ctx, falling towards 0 beyond."""
    check_penalty(name, width)
    n_pmt = np.asarray(n_pmt, dtype=float)
    n_ctx = np.asarray(n_ctx, dtype=float)
    return PENALTIES[name](n_pmt, n_ctx, width, centre)


def context_aware(
    C,
    n_pmt,
    n_ctx,
    A: float,
    C_c: float,
    alpha: float,
    B: float,
    n_pmt_c: float,
    beta: float,
    penalty_name: str = DEFAULT_PENALTY,
    width: float = DEFAULT_PENALTY_WIDTH,
    centre: float = 1.0,
    floor: float = 0.0,
    gamma: float = 0.0,
) -> np.ndarray:
    """The paper's context-aware law, broadcast over C, n_pmt and n_ctx (``floor`` and
    ``gamma`` 0 are the paper's form)."""
    p = (
        compute_term(C, A, C_c, alpha)
        * context_term(n_pmt, B, n_pmt_c, beta, C, C_c, gamma)
        * penalty(n_pmt, n_ctx, penalty_name, width, centre)
    )
    return with_floor(p, floor)


def with_floor(p: np.ndarray, floor: float) -> np.ndarray:
    """``floor + (1 - floor) p``; exactly ``p`` when the floor is 0."""
    return p if floor == 0.0 else floor + (1.0 - floor) * p


def context_agnostic(C, A: float, C_c: float, alpha: float) -> np.ndarray:
    """The context-agnostic baseline: the compute term alone."""
    return compute_term(C, A, C_c, alpha)


def predict(
    params: dict[str, float | None],
    C,
    n_pmt,
    n_ctx,
    law: str = "context_aware",
    penalty_name: str = DEFAULT_PENALTY,
    width: float = DEFAULT_PENALTY_WIDTH,
    centre: float = 1.0,
    floor: float = 0.0,
    gamma: float = 0.0,
) -> np.ndarray:
    """Evaluate ``law`` with a parameter dict keyed by :data:`PARAM_NAMES` (and a fitted
    ``floor`` and ``gamma``, 0 in the paper's form)."""
    check_law(law)
    if law == "context_agnostic":
        p = context_agnostic(C, params["A"], params["C_c"], params["alpha"])
        return with_floor(p, floor) * np.ones(np.broadcast(np.asarray(C), np.asarray(n_pmt)).shape)
    return context_aware(
        C,
        n_pmt,
        n_ctx,
        params["A"],
        params["C_c"],
        params["alpha"],
        params["B"],
        params["n_pmt_c"],
        params["beta"],
        penalty_name=penalty_name,
        width=width,
        centre=centre,
        floor=floor,
        gamma=gamma,
    )


# -- the law in the fit's coordinates ------------------------------------------------------
_LN10 = math.log(10.0)


@dataclass(frozen=True, eq=False)
class FitCoords:
    """One task's points in the fit's coordinates.

    ``u = log(C / C_ref)``, ``v = log(n_pmt / n_pmt_ref)``, ``r = log(n_pmt / n_ctx)``;
    ``pen`` is the fixed penalty at each point (unused when ``fitted_penalty``: then
    ``theta[4:6]`` are the penalty's log10 centre and log10 width). With ``coupling`` the
    next entry is gamma; with ``floor`` the last entry of theta is the floor.
    """

    u: np.ndarray
    v: np.ndarray
    r: np.ndarray
    pen: np.ndarray
    agnostic: bool = False
    fitted_penalty: bool = False
    floor: bool = False
    coupling: bool = False
    #: (distinct values, index of each point's value) of u, v and r: a task has a few
    #: compute levels and shot counts, so each factor is evaluated once per distinct value
    #: and gathered (the same numbers, an order of magnitude fewer transcendental calls).
    levels: dict[str, tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        levels = {k: np.unique(getattr(self, k), return_inverse=True) for k in ("u", "v", "r")}
        object.__setattr__(self, "levels", levels)

    @classmethod
    def of(
        cls,
        C: np.ndarray,
        n_pmt: np.ndarray,
        n_ctx: np.ndarray,
        C_ref: float,
        n_pmt_ref: float,
        law: str = "context_aware",
        penalty_name: str = DEFAULT_PENALTY,
        width: float = DEFAULT_PENALTY_WIDTH,
        floor: bool = False,
        coupling: bool = False,
    ) -> FitCoords:
        return cls(
            u=np.log(C) - math.log(C_ref),
            v=np.log(n_pmt) - math.log(n_pmt_ref),
            r=np.log(n_pmt) - np.log(n_ctx),
            pen=penalty(n_pmt, n_ctx, penalty_name, width),
            agnostic=law == "context_agnostic",
            fitted_penalty=penalty_name in FITTED_PENALTIES,
            floor=floor,
            coupling=coupling,
        )

    @property
    def gamma_at(self) -> int:
        """Index of gamma in theta (with ``coupling``)."""
        return 4 + 2 * self.fitted_penalty


def _fit_penalty(t: np.ndarray, x: FitCoords) -> np.ndarray:
    """The penalty for a (k, S) population: fixed, or from its centre/width rows."""
    if not x.fitted_penalty:
        return x.pen[None, :]
    r, at = x.levels["r"]
    z = -(r[None, :] - _LN10 * t[4][:, None]) / 10.0 ** t[5][:, None]
    return expit(z)[:, at]


def predict_fit(theta: np.ndarray, x: FitCoords) -> np.ndarray:
    """The law at ``theta``: shape (k,) -> (n,), or a population (k, S) -> (S, n)."""
    theta = np.asarray(theta, dtype=float)
    batch = theta.ndim == 2
    t = theta if batch else theta[:, None]
    u, at_u = x.levels["u"]
    f = saturating_from_log(_LN10 * t[0][:, None] + t[1][:, None] * u[None, :])[:, at_u]
    if x.agnostic:
        pred = f
    else:
        v, at_v = x.levels["v"]
        lb = _LN10 * t[2][:, None] + t[3][:, None] * v[None, :]
        if x.coupling:  # B (C / C_ref)^gamma: C and n_pmt combine, so per point
            g = saturating_from_log(lb[:, at_v] + t[x.gamma_at][:, None] * x.u[None, :])
        else:
            g = saturating_from_log(lb)[:, at_v]
        pred = f * g * _fit_penalty(t, x)
    if x.floor:
        pred = t[-1][:, None] + (1.0 - t[-1][:, None]) * pred
    return pred if batch else pred[0]


def jacobian_fit(theta: np.ndarray, x: FitCoords) -> np.ndarray:
    """d predict_fit / d theta at one theta, shape (n, k)."""
    if x.floor:
        # pred = floor + (1 - floor) core: the core's columns scaled, and d/d floor = 1 - core
        inner = dataclasses.replace(x, floor=False)
        floor = float(theta[-1])
        core = predict_fit(theta[:-1], inner)
        return np.column_stack([(1.0 - floor) * jacobian_fit(theta[:-1], inner), 1.0 - core])
    la = _LN10 * theta[0] + theta[1] * x.u
    xa = np.exp(np.minimum(la, _MAX_LOG_TERM))
    f = -np.expm1(-xa)
    dfa = np.exp(-xa) * xa  # d f / d log x
    cols_f = [dfa * _LN10, dfa * x.u]
    if x.agnostic:
        return np.column_stack(cols_f)
    lb = _LN10 * theta[2] + theta[3] * x.v
    if x.coupling:
        lb = lb + theta[x.gamma_at] * x.u
    xb = np.exp(np.minimum(lb, _MAX_LOG_TERM))
    g = -np.expm1(-xb)
    dgb = np.exp(-xb) * xb
    pen = _fit_penalty(np.asarray(theta, dtype=float)[:, None], x)[0]
    gp = g * pen
    fp = f * pen
    cols = [cols_f[0] * gp, cols_f[1] * gp, dgb * _LN10 * fp, dgb * x.v * fp]
    if x.fitted_penalty:
        # pen = sigma(z), z = -(r - ln10 t4) / 10^t5
        width = 10.0 ** theta[5]
        dpen = pen * (1.0 - pen)
        fg = f * g * dpen * _LN10 / width
        cols += [fg, fg * (x.r - _LN10 * theta[4])]
    if x.coupling:
        cols.append(dgb * x.u * fp)
    return np.column_stack(cols)
