"""Per-task two-stage fit of the context-aware law, with bootstrap confidence intervals.

Stage 1 is scipy's differential evolution (seeded, ``workers=1``, fixed strategy,
population, tolerances, ``polish=False``; see :data:`DE_SETTINGS`); stage 2 is a local
optimiser started from the DE optimum (``least_squares`` for the squared and Huber losses,
bounded Powell for the absolute loss), kept only if it lowers the objective.

Identifiability. A and C_c enter the law only through ``A * C_c^(-alpha)``, and B and
n_pmt_c only through ``B * n_pmt_c^(-beta)``: the six paper parameters hold four
identifiable quantities. The fit therefore fixes ``C_c`` and ``n_pmt_c`` to reference
scales of the task's data (the geometric means of C and n_pmt, rounded to 4 significant
digits) and searches ``log10 A``, ``alpha``, ``log10 B``, ``beta``: A and B are then the
saturating terms' exponents at the reference point, which the data pin down well. The
output keeps all six paper parameters and adds the identifiable combinations
``log10_A_C_c = log10(A C_c^-alpha)`` and ``log10_B_n_pmt_c = log10(B n_pmt_c^-beta)``
(plus alpha and beta), each with bootstrap confidence intervals. The coupling variant's
gamma is identifiable as it stands; with it, ``log10_B_n_pmt_c`` is
``log10(B n_pmt_c^-beta C_c^-gamma)``.

Bootstrap: points are resampled with replacement (per-resample seeds spawned from the
task seed) and each resample is refitted with the same two-stage procedure and the same
reference scales, plus one extra local run started from the full-data optimum (a guard
against a rare premature DE convergence); intervals are percentiles. Resamples run in a
process pool; results do not depend on the number of workers.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import differential_evolution, least_squares, minimize

from ctxscale.analysis import law as lawmod
from ctxscale.analysis.points import validate_points
from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_write

#: Loss names: mean squared error, mean absolute error, mean Huber loss.
LOSSES: tuple[str, ...] = ("squared", "absolute", "huber")
#: Huber transition (in score units): quadratic below, linear above.
DEFAULT_HUBER_DELTA = 0.02
#: The config schema's ``fit.seed`` and ``fit.loss`` (ctxscale.config.default).
DEFAULT_SEED: int = default("fit.seed")
DEFAULT_LOSS: str = default("fit.loss")
DEFAULT_CI_LEVEL = 0.95

#: Search bounds of the free parameters (A and B searched as log10, at the reference scales).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "log10_A": (-3.0, 3.0),
    "alpha": (0.0, 3.0),
    "log10_B": (-3.0, 3.0),
    "beta": (0.0, 3.0),
    # the fitted penalty (log_sigmoid_fitted): centre in units of n_ctx, width in log units
    "log10_penalty_centre": (-0.5, 1.0),
    "log10_penalty_width": (-2.0, 0.5),
    # the floor variant: the score without the ability (guessing, copying from the context)
    "floor": (0.0, 0.5),
    # the coupling variant: B scales as (C / C_c)^gamma (0: the paper's separable form)
    "gamma": (-3.0, 3.0),
}
#: Extra free parameters of a fitted penalty.
_PENALTY_FREE = ("log10_penalty_centre", "log10_penalty_width")
_FREE = {
    "context_aware": ("log10_A", "alpha", "log10_B", "beta"),
    "context_agnostic": ("log10_A", "alpha"),
}

#: Differential-evolution settings (fixed, so fits are reproducible).
DE_SETTINGS: dict[str, Any] = {
    "strategy": "rand1bin",
    "popsize": 10,
    "maxiter": 300,
    "tol": 1e-4,
    "atol": 0.0,
    "mutation": [0.5, 1.0],
    "recombination": 0.7,
    "init": "latinhypercube",
    "polish": False,
    "updating": "deferred",
    "workers": 1,
}
#: Local-optimiser settings.
LOCAL_SETTINGS: dict[str, Any] = {
    "squared": {"method": "least_squares/trf", "ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12},
    "huber": {"method": "least_squares/trf", "ftol": 1e-12, "xtol": 1e-12, "gtol": 1e-12},
    "absolute": {"method": "Powell", "xtol": 1e-8, "ftol": 1e-12, "maxfev": 20000},
}
_SIG = 10  # significant digits of floats written to FIT.json


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FitSettings:
    """Everything that determines a fit; written to FIT.json."""

    law: str = "context_aware"
    penalty: str = lawmod.DEFAULT_PENALTY
    penalty_width: float = lawmod.DEFAULT_PENALTY_WIDTH
    loss: str = DEFAULT_LOSS
    huber_delta: float = DEFAULT_HUBER_DELTA
    seed: int = DEFAULT_SEED
    #: Off in the Python API unless asked for; the CLI and the workflow resample the
    #: schema's ``fit.bootstrap`` times.
    bootstrap: int = 0
    ci_level: float = DEFAULT_CI_LEVEL
    holdout_npmt: float | None = None
    #: Fit a floor, ``floor + (1 - floor) P`` (a variant beside the paper's form).
    floor: bool = False
    #: Fit gamma, the prompt term's scale ``B (C / C_c)^gamma`` (a variant beside the
    #: paper's form, which assumes compute and prompt length act separately).
    coupling: bool = False
    bounds: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))

    def check(self) -> None:
        """Raise :class:`CtxscaleError` on unknown names or bad values."""
        lawmod.check_law(self.law)
        lawmod.check_penalty(self.penalty, self.penalty_width)
        if self.loss not in LOSSES:
            raise CtxscaleError(f"unknown loss {self.loss!r} (known: {', '.join(LOSSES)})")
        if not self.huber_delta > 0:
            raise CtxscaleError(f"huber delta must be positive, got {self.huber_delta!r}")
        if self.bootstrap < 0:
            raise CtxscaleError(f"bootstrap count must be >= 0, got {self.bootstrap}")
        if not 0 < self.ci_level < 1:
            raise CtxscaleError(f"CI level must be in (0, 1), got {self.ci_level}")
        if self.coupling and self.law != "context_aware":
            raise CtxscaleError(
                f"the coupling variant needs the context-aware law, not {self.law!r}"
            )
        if self.holdout_npmt is not None and not self.holdout_npmt > 0:
            raise CtxscaleError(f"--holdout-npmt must be positive, got {self.holdout_npmt}")
        for name in self.free_names:
            if name not in self.bounds:
                raise CtxscaleError(f"missing bounds for {name!r}")
            lo, hi = self.bounds[name]
            if not lo < hi:
                raise CtxscaleError(f"bounds for {name!r} must have low < high, got {lo}, {hi}")

    @property
    def free_names(self) -> tuple[str, ...]:
        names = _FREE[self.law] + (_PENALTY_FREE if self.fitted_penalty else ())
        return names + (("gamma",) if self.coupling else ()) + (("floor",) if self.floor else ())

    @property
    def fitted_penalty(self) -> bool:
        """Whether the penalty's centre and width are free parameters of the fit."""
        return self.effective_penalty in lawmod.FITTED_PENALTIES

    @property
    def effective_penalty(self) -> str:
        """The context-agnostic law has no penalty."""
        return "none" if self.law == "context_agnostic" else self.penalty

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": self.law,
            "penalty": self.effective_penalty,
            "penalty_width": self.penalty_width,
            "loss": self.loss,
            "huber_delta": self.huber_delta,
            "seed": self.seed,
            "bootstrap": {"n_resamples": self.bootstrap, "ci_level": self.ci_level},
            "holdout_npmt": self.holdout_npmt,
            **({"floor": True} if self.floor else {}),
            **({"coupling": True} if self.coupling else {}),
            "bounds": {k: list(self.bounds[k]) for k in self.free_names},
            "differential_evolution": DE_SETTINGS,
            "local": LOCAL_SETTINGS[self.loss],
        }


# --------------------------------------------------------------------------- objective


class _Problem:
    """One task's data in the fit's coordinates; evaluates predictions for many thetas."""

    def __init__(
        self,
        C: np.ndarray,
        n_pmt: np.ndarray,
        n_ctx: np.ndarray,
        score: np.ndarray,
        C_ref: float,
        n_pmt_ref: float,
        settings: FitSettings,
    ) -> None:
        self.x = lawmod.FitCoords.of(
            C,
            n_pmt,
            n_ctx,
            C_ref,
            n_pmt_ref,
            settings.law,
            settings.effective_penalty,
            settings.penalty_width,
            settings.floor,
            settings.coupling,
        )
        self.y = np.asarray(score, dtype=float)
        self.loss = settings.loss
        self.delta = settings.huber_delta

    def predict(self, theta: np.ndarray) -> np.ndarray:
        """Predictions for theta of shape (k,) -> (n,) or (k, S) -> (S, n)."""
        return lawmod.predict_fit(theta, self.x)

    def objective(self, theta: np.ndarray) -> np.ndarray | float:
        """Mean loss of the residuals; vectorised over a (k, S) population."""
        r = self.y - self.predict(theta)
        if self.loss == "squared":
            val = np.mean(r * r, axis=-1)
        elif self.loss == "absolute":
            val = np.mean(np.abs(r), axis=-1)
        else:
            a = np.abs(r)
            d = self.delta
            val = np.mean(np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d)), axis=-1)
        return val if np.ndim(val) else float(val)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        """Prediction minus observation (least_squares' sign convention)."""
        return self.predict(theta) - self.y

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d prediction / d theta, shape (n, k)."""
        return lawmod.jacobian_fit(theta, self.x)


def _local(problem: _Problem, settings: FitSettings, x0: np.ndarray, lo, hi) -> np.ndarray:
    """The local stage from ``x0``: least_squares (squared, Huber) or bounded Powell."""
    local = LOCAL_SETTINGS[settings.loss]
    if settings.loss in ("squared", "huber"):
        res = least_squares(
            problem.residuals,
            x0,
            jac=problem.jacobian,
            bounds=(lo, hi),
            method="trf",
            loss="linear" if settings.loss == "squared" else "huber",
            f_scale=1.0 if settings.loss == "squared" else settings.huber_delta,
            x_scale="jac",
            ftol=local["ftol"],
            xtol=local["xtol"],
            gtol=local["gtol"],
            max_nfev=2000,
        )
    else:
        res = minimize(
            problem.objective,
            x0,
            method="Powell",
            bounds=list(zip(lo, hi, strict=True)),
            options={"xtol": local["xtol"], "ftol": local["ftol"], "maxfev": local["maxfev"]},
        )
    return np.clip(np.asarray(res.x, dtype=float), lo, hi)


def _two_stage(
    problem: _Problem,
    settings: FitSettings,
    seed: int,
    extra_starts: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, float]:
    """Differential evolution, then the local stage from its optimum; returns (theta, loss).

    ``extra_starts`` (the full-data optimum, for bootstrap resamples) get a local run too;
    the lowest objective among the DE optimum and all local results wins.
    """
    bounds = [tuple(settings.bounds[k]) for k in settings.free_names]
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    de_kwargs = {k: v for k, v in DE_SETTINGS.items() if k != "mutation"}
    de = differential_evolution(
        problem.objective,
        bounds,
        mutation=tuple(DE_SETTINGS["mutation"]),
        vectorized=True,
        rng=seed,
        **de_kwargs,
    )
    best = np.clip(np.asarray(de.x, dtype=float), lo, hi)
    best_val = float(problem.objective(best))
    for x0 in (best, *extra_starts):
        cand = _local(problem, settings, np.clip(np.asarray(x0, dtype=float), lo, hi), lo, hi)
        cand_val = float(problem.objective(cand))
        if cand_val < best_val:
            best, best_val = cand, cand_val
    return best, best_val


# --------------------------------------------------------------------------- results


def _reference_scale(values: np.ndarray) -> float:
    """Geometric mean rounded to 4 significant digits: the fixed C_c / n_pmt_c."""
    return float(f"{math.exp(float(np.mean(np.log(values)))):.4g}")


def _params_from_theta(
    theta: np.ndarray, C_ref: float, n_pmt_ref: float, law: str
) -> dict[str, float | None]:
    params: dict[str, float | None] = {
        "A": 10.0 ** float(theta[0]),
        "C_c": C_ref,
        "alpha": float(theta[1]),
        "B": None,
        "n_pmt_c": None,
        "beta": None,
    }
    if law == "context_aware":
        params.update(B=10.0 ** float(theta[2]), n_pmt_c=n_pmt_ref, beta=float(theta[3]))
    return params


def _identifiable_from_theta(
    theta: np.ndarray, C_ref: float, n_pmt_ref: float, settings: FitSettings
) -> dict[str, float]:
    ident = {
        "log10_A_C_c": float(theta[0]) - float(theta[1]) * math.log10(C_ref),
        "alpha": float(theta[1]),
    }
    if settings.law == "context_aware":
        ident["log10_B_n_pmt_c"] = float(theta[2]) - float(theta[3]) * math.log10(n_pmt_ref)
        ident["beta"] = float(theta[3])
    extras = _extras_from_theta(theta, settings)
    if "gamma" in extras:  # the coefficient of C^gamma n_pmt^beta, C_c's share removed too
        ident["log10_B_n_pmt_c"] -= extras["gamma"] * math.log10(C_ref)
    ident.update(extras)
    return ident


def _extras_from_theta(theta: np.ndarray, settings: FitSettings) -> dict[str, float]:
    """A fitted penalty's centre (x n_ctx) and width (log units), a fitted gamma and floor;
    only those of ``settings.free_names`` that the fit has."""
    named = dict(zip(settings.free_names, map(float, theta), strict=True))
    out = {}
    if "log10_penalty_centre" in named:
        out["penalty_centre"] = 10.0 ** named["log10_penalty_centre"]
        out["penalty_width"] = 10.0 ** named["log10_penalty_width"]
    for name in ("gamma", "floor"):
        if name in named:
            out[name] = named[name]
    return out


#: A free parameter within this fraction of its search range of a bound is "at the bound".
BOUND_TOLERANCE = 1e-3


def at_bounds(theta: np.ndarray, settings: FitSettings) -> dict[str, str]:
    """Free parameters the optimum sits on a search bound of (``low``/``high``): a fit that
    wanted to go further, so the value is the bound's, not the data's."""
    out = {}
    for name, value in zip(settings.free_names, theta, strict=True):
        lo, hi = settings.bounds[name]
        tol = BOUND_TOLERANCE * (hi - lo)
        if value <= lo + tol:
            out[name] = "low"
        elif value >= hi - tol:
            out[name] = "high"
    return out


def _mae(residual: np.ndarray) -> float | None:
    return float(np.mean(np.abs(residual))) if len(residual) else None


def mae_split(residual: np.ndarray, n_pmt: np.ndarray, n_ctx: np.ndarray) -> dict[str, Any]:
    """MAE over all points and split by n_pmt <= n_ctx / n_pmt > n_ctx (the ablation table)."""
    inside = np.asarray(n_pmt) <= np.asarray(n_ctx)
    residual = np.asarray(residual)
    return {
        "all": {"mae": _mae(residual), "n": len(residual)},
        "le_ctx": {"mae": _mae(residual[inside]), "n": int(inside.sum())},
        "gt_ctx": {"mae": _mae(residual[~inside]), "n": int((~inside).sum())},
    }


@dataclass
class TaskFit:
    """The fit of one task. ``residuals`` are observed minus predicted, on the fit points."""

    task: str
    params: dict[str, float | None]
    penalty: dict[str, float] | None
    identifiable: dict[str, float]
    mae: float
    n_points: int
    residuals: np.ndarray
    mae_split: dict[str, Any]
    objective: float
    settings: dict[str, Any]
    ci: dict[str, Any] | None = None
    holdout: dict[str, Any] | None = None
    at_bound: dict[str, str] = field(default_factory=dict)
    floor: float | None = None
    gamma: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "params": self.params,
            "at_bound": self.at_bound,
            "identifiable": self.identifiable,
            "ci": self.ci,
            "mae": self.mae,
            "n_points": self.n_points,
            "mae_split": self.mae_split,
            "objective": self.objective,
            "settings": self.settings,
        }
        if self.holdout is not None:
            out["holdout"] = self.holdout
        if self.penalty is not None:
            out["penalty"] = self.penalty
        for name in ("floor", "gamma"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass
class FitResult:
    """Fits of every task of a table, plus the settings used."""

    settings: FitSettings
    tasks: dict[str, TaskFit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "ctxscale-fit/1",
            "settings": self.settings.to_dict(),
            "tasks": {name: self.tasks[name].to_dict() for name in sorted(self.tasks)},
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, floats rounded to 10 significant digits."""
        return json.dumps(_canonical(self.to_dict()), sort_keys=True, indent=2) + "\n"

    def write(self, path: str | Path) -> None:
        atomic_write(path, self.to_json())


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, bool | str) or obj is None:
        return obj
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        if not math.isfinite(x):
            return None
        return float(f"{x:.{_SIG}g}")
    raise TypeError(f"cannot write {type(obj).__name__} to FIT.json")


# --------------------------------------------------------------------------- bootstrap


def _task_seed(seed: int, task: str) -> np.random.SeedSequence:
    """Per-task seed sequence: adding or removing another task leaves this one unchanged."""
    return np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(task.encode("utf-8"))])


def _de_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1)[0])


def _bootstrap_chunk(
    arrays: tuple[np.ndarray, ...],
    refs: tuple[float, float],
    settings: FitSettings,
    children: Sequence[np.random.SeedSequence],
    start: np.ndarray,
) -> list[np.ndarray | None]:
    """Refit a chunk of resamples (runs in a worker process)."""
    C, n_pmt, n_ctx, score = arrays
    n = len(C)
    out: list[np.ndarray | None] = []
    for child in children:
        rng = np.random.default_rng(child)
        idx = rng.integers(0, n, size=n)
        problem = _Problem(C[idx], n_pmt[idx], n_ctx[idx], score[idx], *refs, settings)
        try:
            theta, _ = _two_stage(problem, settings, _de_seed(child), (start,))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            out.append(None)
            continue
        out.append(theta)
    return out


def _bootstrap(
    arrays: tuple[np.ndarray, ...],
    refs: tuple[float, float],
    settings: FitSettings,
    ss: np.random.SeedSequence,
    start: np.ndarray,
    n_jobs: int,
    progress: bool,
    task: str,
) -> list[np.ndarray | None]:
    """Refit ``settings.bootstrap`` resamples, in order; serial or in a process pool."""
    children = ss.spawn(settings.bootstrap)
    n_jobs = max(1, min(n_jobs, len(children)))
    thetas: list[np.ndarray | None] = []
    if n_jobs == 1:
        with _progress(len(children), f"bootstrap {task}", progress) as bar:
            for child in children:
                thetas.extend(_bootstrap_chunk(arrays, refs, settings, [child], start))
                bar.update(1)
        return thetas
    # A few chunks per worker: small enough to balance, large enough to amortise pickling.
    n_chunks = min(len(children), 4 * n_jobs)
    bounds = np.linspace(0, len(children), n_chunks + 1).astype(int)
    chunks = [children[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs) as pool:
        # Submit (and so start the workers) before the progress bar starts its thread.
        futures = [pool.submit(_bootstrap_chunk, arrays, refs, settings, c, start) for c in chunks]
        with _progress(len(children), f"bootstrap {task}", progress) as bar:
            for fut, chunk in zip(futures, chunks, strict=True):
                thetas.extend(fut.result())
                bar.update(len(chunk))
    return thetas


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _intervals(samples: list[dict[str, float | None]], level: float) -> dict[str, list]:
    lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    out: dict[str, list] = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        if any(v is None for v in vals):
            out[key] = [None, None]
            continue
        arr = np.asarray(vals, dtype=float)
        out[key] = [float(np.percentile(arr, lo_q)), float(np.percentile(arr, hi_q))]
    return out


# --------------------------------------------------------------------------- fitting


def _usable_cpus() -> int:
    """CPUs this process may run on (respects affinity masks, e.g. under SLURM)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _min_points(settings: FitSettings) -> int:
    return len(settings.free_names) + 1


def fit_task(
    df: pd.DataFrame,
    task: str,
    settings: FitSettings,
    n_jobs: int | None = None,
    progress: bool = False,
) -> TaskFit:
    """Fit one task's rows of a validated points table."""
    rows = df.loc[df["task"] == task]
    n_all = len(rows)
    if settings.holdout_npmt is not None:
        in_fit = rows["n_pmt"].to_numpy() < settings.holdout_npmt
        fit_rows, held_rows = rows.loc[in_fit], rows.loc[~in_fit]
    else:
        fit_rows, held_rows = rows, rows.iloc[0:0]
    need = _min_points(settings)
    if len(fit_rows) < need:
        what = f" with n_pmt < {settings.holdout_npmt:g}" if settings.holdout_npmt else ""
        raise CtxscaleError(
            f"task {task!r} has {len(fit_rows)} points{what} (of {n_all}); at least {need} are "
            f"needed to fit {need - 1} free parameters"
        )
    arrays = tuple(fit_rows[c].to_numpy(dtype=float) for c in ("C", "n_pmt", "n_ctx", "score"))
    C, n_pmt, n_ctx, score = arrays
    refs = (_reference_scale(C), _reference_scale(n_pmt))
    ss = _task_seed(settings.seed, task)
    de_seed = _de_seed(ss)
    problem = _Problem(C, n_pmt, n_ctx, score, *refs, settings)
    theta, obj = _two_stage(problem, settings, de_seed)
    params = _params_from_theta(theta, *refs, settings.law)
    ident = _identifiable_from_theta(theta, *refs, settings)
    residuals = score - problem.predict(theta)

    ci = None
    if settings.bootstrap > 0:
        jobs = n_jobs if n_jobs is not None else _usable_cpus()
        thetas = _bootstrap(arrays, refs, settings, ss, theta, jobs, progress, task)
        ok = [t for t in thetas if t is not None]
        if ok:
            ci = {
                "level": settings.ci_level,
                "method": "percentile bootstrap over points",
                "n_resamples": settings.bootstrap,
                "n_failed": len(thetas) - len(ok),
                "params": _intervals(
                    [_params_from_theta(t, *refs, settings.law) for t in ok], settings.ci_level
                ),
                "identifiable": _intervals(
                    [_identifiable_from_theta(t, *refs, settings) for t in ok],
                    settings.ci_level,
                ),
            }

    extras = _extras_from_theta(theta, settings)
    floor = extras.pop("floor", None)
    gamma = extras.pop("gamma", None)
    fitted_pen = extras
    holdout = None
    if settings.holdout_npmt is not None:
        h_pred = lawmod.predict(
            params,
            held_rows["C"].to_numpy(dtype=float),
            held_rows["n_pmt"].to_numpy(dtype=float),
            held_rows["n_ctx"].to_numpy(dtype=float),
            law=settings.law,
            penalty_name=settings.effective_penalty,
            width=fitted_pen.get("penalty_width", settings.penalty_width),
            centre=fitted_pen.get("penalty_centre", 1.0),
            floor=floor or 0.0,
            gamma=gamma or 0.0,
        )
        h_res = held_rows["score"].to_numpy(dtype=float) - h_pred
        holdout = {
            "npmt_threshold": settings.holdout_npmt,
            "n_fit": len(fit_rows),
            "n_heldout": len(held_rows),
            "mae_fit": _mae(residuals),
            "mae_heldout": _mae(h_res),
            "mae_split_heldout": mae_split(
                h_res, held_rows["n_pmt"].to_numpy(), held_rows["n_ctx"].to_numpy()
            ),
        }

    task_settings = {
        "seed": de_seed,
        "C_c_reference": refs[0],
        "n_pmt_c_reference": refs[1],
        "fixed": ["C_c", "n_pmt_c"],
        "free": list(settings.free_names),
    }
    return TaskFit(
        task=task,
        params=params,
        penalty=fitted_pen or None,
        identifiable=ident,
        mae=float(np.mean(np.abs(residuals))),
        n_points=len(fit_rows),
        residuals=residuals,
        mae_split=mae_split(residuals, n_pmt, n_ctx),
        objective=obj,
        settings=task_settings,
        ci=ci,
        holdout=holdout,
        at_bound=at_bounds(theta, settings),
        floor=floor,
        gamma=gamma,
    )


def fit_table(
    df: pd.DataFrame,
    settings: FitSettings | None = None,
    tasks: Sequence[str] | None = None,
    n_jobs: int | None = None,
    progress: bool = False,
    **overrides: Any,
) -> FitResult:
    """Fit every task (or the named ones) of a points table.

    ``overrides`` are :class:`FitSettings` fields, e.g. ``fit_table(df, penalty="none",
    bootstrap=50)``. ``n_jobs`` sets the bootstrap's worker processes (default: all CPUs).
    """
    settings = settings or FitSettings()
    if overrides:
        unknown = sorted(set(overrides) - set(FitSettings.__dataclass_fields__))
        if unknown:
            raise CtxscaleError(f"unknown fit setting {unknown[0]!r}")
        settings = FitSettings(**{**settings.__dict__, **overrides})
    settings.check()
    df = validate_points(df, "points")
    names = sorted(set(df["task"])) if not tasks else list(tasks)
    for name in names:
        if not (df["task"] == name).any():
            raise CtxscaleError(f"points: task {name!r} has no rows")
    fits = {name: fit_task(df, name, settings, n_jobs=n_jobs, progress=progress) for name in names}
    return FitResult(settings=settings, tasks=fits)


# --------------------------------------------------------------------------- reading / predicting


def read_fit(path: str | Path) -> dict[str, Any]:
    """Load a FIT.json written by :meth:`FitResult.write` (checked for the needed keys)."""
    path = Path(path)
    if not path.is_file():
        raise CtxscaleError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CtxscaleError(f"{path}: not a JSON fit file ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict) or "tasks" not in data or "settings" not in data:
        raise CtxscaleError(f"{path}: not a ctxscale fit file (needs 'settings' and 'tasks')")
    for name, task in data["tasks"].items():
        params = task.get("params") if isinstance(task, dict) else None
        if not isinstance(params, dict) or set(params) != set(lawmod.PARAM_NAMES):
            raise CtxscaleError(f"{path}: task {name!r} has no valid 'params' block")
    return data


def predict_points(
    fit: dict[str, Any] | FitResult, df: pd.DataFrame, source: str = "points"
) -> np.ndarray:
    """Predicted score for every row of ``df`` (columns task, C, n_pmt, n_ctx), in order."""
    if isinstance(fit, FitResult):
        fit = fit.to_dict()
    settings = fit["settings"]
    law = settings.get("law", "context_aware")
    pen = settings.get("penalty", lawmod.DEFAULT_PENALTY)
    width = float(settings.get("penalty_width", lawmod.DEFAULT_PENALTY_WIDTH))
    lawmod.check_law(law)
    lawmod.check_penalty(pen, width)
    df = validate_points(df, source, require_score=False)
    out = np.full(len(df), np.nan)
    tasks = df["task"].to_numpy()
    for name in sorted(set(tasks)):
        if name not in fit["tasks"]:
            known = ", ".join(sorted(fit["tasks"]))
            raise CtxscaleError(f"{source}: task {name!r} is not in the fit (fitted: {known})")
        mask = tasks == name
        fitted = fit["tasks"][name].get("penalty") or {}
        out[mask] = lawmod.predict(
            fit["tasks"][name]["params"],
            df["C"].to_numpy()[mask],
            df["n_pmt"].to_numpy()[mask],
            df["n_ctx"].to_numpy()[mask],
            law=law,
            penalty_name=pen,
            width=float(fitted.get("penalty_width", width)),
            centre=float(fitted.get("penalty_centre", 1.0)),
            floor=float(fit["tasks"][name].get("floor", 0.0)),
            gamma=float(fit["tasks"][name].get("gamma", 0.0)),
        )
    return out
