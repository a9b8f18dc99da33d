"""Loading the workflow's results files for figures, tables and the report.

Every figure and table is a pure function of explicit input files (so a workflow rule
can declare them): the task-level points table, the four fits, the OOD and technique
predictions, the manifest and the config. :class:`Inputs` holds those paths; the
loaders here check them and turn a missing or malformed file into one
:class:`~ctxscale.errors.CtxscaleError` line. The law itself is never re-implemented
here: fits are read and evaluated through ``ctxscale.fit`` (``read_fit``,
``predict_points``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctxscale.errors import CtxscaleError

TASKS = ("arithmetic", "common_sense", "translation")
TASK_LABELS = {
    "arithmetic": "Arithmetic reasoning",
    "common_sense": "Common-sense reasoning",
    "translation": "Machine translation",
}
PARAM_NAMES = ("A", "C_c", "alpha", "B", "n_pmt_c", "beta")
POINT_COLUMNS = ("family", "model", "role", "task", "n_shots", "n_ctx", "N", "C", "n_pmt", "score")

# Input option name -> (attribute, help text). The CLI and docs/figures.md use these.
INPUT_OPTIONS = {
    "points": "task-level points table (results/points.csv)",
    "fit_main": "context-aware fit with the penalty (results/fits/main.json)",
    "fit_no_penalty": "context-aware fit without the penalty (results/fits/no_penalty.json)",
    "fit_extrapolation": "fit on n_pmt below the hold-out cut-off "
    "(results/fits/extrapolation.json)",
    "fit_agnostic": "context-agnostic baseline fit (results/fits/context_agnostic.json)",
    "ood": "predictions for the out-of-distribution families (results/predictions/ood.csv)",
    "technique": "predictions for the other context-extension technique "
    "(results/predictions/technique.csv)",
    "manifest": "artifact manifest with sha256 sums (results/manifest.tsv)",
    "config": "experiment config (config.yaml)",
}


@dataclass(frozen=True)
class Inputs:
    """Paths of the results files; ``None`` where the caller did not give one."""

    points: Path | None = None
    fit_main: Path | None = None
    fit_no_penalty: Path | None = None
    fit_extrapolation: Path | None = None
    fit_agnostic: Path | None = None
    ood: Path | None = None
    technique: Path | None = None
    manifest: Path | None = None
    config: Path | None = None

    @classmethod
    def from_args(cls, args: Any) -> Inputs:
        """Build from an argparse namespace carrying one attribute per input option."""
        kw = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            kw[f.name] = Path(value) if value else None
        return cls(**kw)

    @classmethod
    def defaults(cls, root: Path = Path(".")) -> Inputs:
        """The workflow's standard locations under ``root``."""
        return cls(
            points=root / "results/points.csv",
            fit_main=root / "results/fits/main.json",
            fit_no_penalty=root / "results/fits/no_penalty.json",
            fit_extrapolation=root / "results/fits/extrapolation.json",
            fit_agnostic=root / "results/fits/context_agnostic.json",
            ood=root / "results/predictions/ood.csv",
            technique=root / "results/predictions/technique.csv",
            manifest=root / "results/manifest.tsv",
            config=root / "config.yaml",
        )


def option_flag(name: str) -> str:
    """``fit_main`` -> ``--fit-main``."""
    return "--" + name.replace("_", "-")


class Results:
    """Lazily loaded, validated results; each property names the option it needs."""

    def __init__(self, inputs: Inputs, purpose: str = "this output") -> None:
        self.inputs = inputs
        self.purpose = purpose

    def path(self, name: str) -> Path:
        """The path of input ``name``; one clear error if it was not given or is absent."""
        p = getattr(self.inputs, name)
        if p is None:
            raise CtxscaleError(f"{self.purpose} needs {option_flag(name)} ({INPUT_OPTIONS[name]})")
        if not p.is_file():
            raise CtxscaleError(f"{self.purpose}: {option_flag(name)} file {p} does not exist")
        return p

    def require(self, names: tuple[str, ...]) -> None:
        """Check several inputs at once: one line naming every missing or absent one."""
        missing = [n for n in names if getattr(self.inputs, n) is None]
        absent = [n for n in names if n not in missing and not self.has(n)]
        parts = []
        if missing:
            parts.append(
                "needs " + ", ".join(f"{option_flag(n)} ({INPUT_OPTIONS[n]})" for n in missing)
            )
        if absent:
            parts.append(
                "lacks the file(s) "
                + ", ".join(f"{option_flag(n)} {getattr(self.inputs, n)}" for n in absent)
            )
        if parts:
            raise CtxscaleError(f"{self.purpose} " + "; ".join(parts))

    def has(self, name: str) -> bool:
        p = getattr(self.inputs, name)
        return p is not None and p.is_file()

    # -- tables -------------------------------------------------------------------------
    @cached_property
    def points(self) -> pd.DataFrame:
        return read_points(self.path("points"))

    @cached_property
    def fit_points(self) -> pd.DataFrame:
        """Points of the families the law is fitted on (role ``fit``)."""
        df = self.points
        return df[df["role"] == "fit"].reset_index(drop=True)

    @cached_property
    def ood(self) -> pd.DataFrame:
        return read_predictions(self.path("ood"), "ood")

    @cached_property
    def technique(self) -> pd.DataFrame:
        return read_predictions(self.path("technique"), "technique")

    @cached_property
    def config(self) -> dict[str, Any]:
        return read_config(self.path("config"))

    # -- fits ---------------------------------------------------------------------------
    def fit(self, name: str) -> Any:
        cache = self.__dict__.setdefault("_fits", {})
        if name not in cache:
            cache[name] = read_fit(self.path(name))
        return cache[name]

    def predicted(self, fit_name: str, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """``df`` (default: the fit-role points) with the fit's ``predicted`` column."""
        df = self.fit_points if df is None else df
        return predict(self.fit(fit_name), df, f"{option_flag(fit_name)} {self.path(fit_name)}")

    # -- settings -----------------------------------------------------------------------
    @property
    def scale(self) -> str:
        if self.has("config"):
            return str(self.config.get("scale", "default"))
        return "default"

    @property
    def seed(self) -> int:
        if not self.has("config"):
            return 31337
        fit_cfg = self.config.get("fit") or {}
        return int(fit_cfg.get("seed", self.config.get("seed", 31337)))

    @property
    def n_bootstrap(self) -> int:
        fit_cfg = (self.config.get("fit") or {}) if self.has("config") else {}
        n = fit_cfg.get("bootstrap", 1000)
        return int(n) if n and int(n) > 0 else 1000

    def holdout_npmt(self) -> float:
        """The extrapolation cut-off: recorded in the fit, else ``fit.holdout_npmt``."""
        fit = self.fit("fit_extrapolation")
        value = fit_holdout(fit)
        if value is None and self.has("config"):
            value = (self.config.get("fit") or {}).get("holdout_npmt")
        if value is None:
            raise CtxscaleError(
                f"{self.purpose}: the hold-out cut-off is neither in "
                f"{self.path('fit_extrapolation')} nor in the config's fit.holdout_npmt"
            )
        return float(value)

    def manifest_sha256(self) -> str:
        return sha256_file(self.path("manifest"))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CtxscaleError(f"{what} {path} is not a readable CSV table: {exc}") from None


def _check_columns(df: pd.DataFrame, path: Path, what: str, extra: tuple[str, ...] = ()) -> None:
    missing = [c for c in (*POINT_COLUMNS, *extra) if c not in df.columns]
    if missing:
        raise CtxscaleError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    for col in ("C", "n_pmt", "n_ctx", "score", *extra):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CtxscaleError(f"{what} {path}: column {col} is not a finite number in row {row}")
        df[col] = values.astype(float)
    for col in ("C", "n_pmt", "n_ctx"):
        bad = df[col] <= 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CtxscaleError(f"{what} {path}: column {col} must be positive (row {row})")
    bad = (df["score"] < 0) | (df["score"] > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise CtxscaleError(f"{what} {path}: score outside [0, 1] in row {row}")


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("task", "role", "family", "model", "n_shots") if c in df.columns]
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def read_points(path: Path) -> pd.DataFrame:
    """The task-level points table (contract 4), checked and in a stable order."""
    df = _read_csv(path, "points table")
    _check_columns(df, path, "points table")
    if df.empty:
        raise CtxscaleError(f"points table {path} has no rows")
    return _sorted(df)


def read_predictions(path: Path, what: str) -> pd.DataFrame:
    """A ``ctxscale predict`` output: points columns plus ``predicted``."""
    df = _read_csv(path, f"{what} predictions")
    _check_columns(df, path, f"{what} predictions", extra=("predicted",))
    return _sorted(df)


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise CtxscaleError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CtxscaleError(f"config {path} is not a mapping of settings")
    return data


# -- the fit API (ctxscale.fit, contract 5) ------------------------------------------------
def _fit_module() -> Any:
    try:
        return importlib.import_module("ctxscale.fit")
    except ImportError as exc:  # pragma: no cover - only before the law code exists
        raise CtxscaleError(f"the law-fitting module ctxscale.fit is unavailable: {exc}") from None


def read_fit(path: Path) -> Any:
    """Read a fit JSON through ``ctxscale.fit.read_fit``; one line if it is malformed."""
    try:
        return _fit_module().read_fit(path)
    except CtxscaleError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CtxscaleError(f"fit {path} cannot be read: {exc}") from None


def predict(fit: Any, df: pd.DataFrame, where: str) -> pd.DataFrame:
    """``df`` restricted to the fit's tasks, with the fit's ``predicted`` column."""
    tasks = fit_tasks(fit)
    sub = df[df["task"].isin(tasks)].reset_index(drop=True)
    if sub.empty:
        return sub.assign(predicted=pd.Series(dtype=float))
    out = _fit_module().predict_points(fit, sub)
    return out.reset_index(drop=True)


def _as_dict(fit: Any) -> dict[str, Any]:
    if isinstance(fit, dict):
        return fit
    for attr in ("to_dict", "as_dict"):
        if hasattr(fit, attr):
            return getattr(fit, attr)()
    return vars(fit)


def fit_tasks(fit: Any) -> list[str]:
    """Task names a fit covers, in a stable order."""
    tasks = _as_dict(fit).get("tasks") or {}
    return sorted(tasks)


def fit_holdout(fit: Any) -> float | None:
    d = _as_dict(fit)
    value = d.get("holdout_npmt")
    if value is None:
        value = (d.get("settings") or {}).get("holdout_npmt")
    return None if value is None else float(value)


def fit_parameters(fit: Any) -> pd.DataFrame:
    """One row per (task, parameter): value and bootstrap CI bounds (NaN when absent)."""
    rows = []
    for task, entry in sorted((_as_dict(fit).get("tasks") or {}).items()):
        params = entry.get("params") or {}
        ci = entry.get("ci") or {}
        for name in PARAM_NAMES:
            if name not in params:
                continue
            lo, hi = (ci.get(name) or (np.nan, np.nan))[:2]
            rows.append(
                {"task": task, "parameter": name, "value": float(params[name]), "lo": lo, "hi": hi}
            )
    return pd.DataFrame(rows, columns=["task", "parameter", "value", "lo", "hi"])


def fit_bootstrap_samples(fit: Any, task: str) -> pd.DataFrame | None:
    """Bootstrap parameter samples of one task, if the fit recorded them."""
    entry = (_as_dict(fit).get("tasks") or {}).get(task) or {}
    samples = entry.get("bootstrap")
    if not samples:
        return None
    df = pd.DataFrame(samples)
    return df if all(p in df.columns for p in PARAM_NAMES) else None


def dump_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2)
