"""Loading the workflow's results files for figures, tables and the report.

Every figure and table is a pure function of explicit input files (so a workflow rule
can declare them): the task-level points table, the four fits, the OOD and technique
predictions, the manifest and the config. :class:`Inputs` holds those paths; the
loaders here check them and turn a missing or malformed file into one
:class:`~ctxscale.errors.CtxscaleError` line. The law itself is never re-implemented
here: fits are read and evaluated through ``ctxscale.analysis.fit`` (``read_fit``,
``predict_points``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ctxscale import catalog
from ctxscale.analysis import fit as fitmod
from ctxscale.analysis.law import PARAM_NAMES
from ctxscale.analysis.points import validate_points
from ctxscale.catalog import INPUTS
from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import sha256_file

POINT_COLUMNS = ("family", "model", "role", "task", "n_shots", "n_ctx", "N", "C", "n_pmt", "score")

# Input option name -> help text (the catalog's inputs). The CLI and docs/figures.md use these.
INPUT_OPTIONS = {name: entry.help for name, entry in INPUTS.items()}


@dataclass(frozen=True)
class Inputs:
    """Paths of the results files; ``None`` where the caller did not give one."""

    points: Path | None = None
    scores_corrected: Path | None = None
    fit_main: Path | None = None
    fit_no_penalty: Path | None = None
    fit_penalty_variant: Path | None = None
    fit_loss_variant: Path | None = None
    fit_floor_variant: Path | None = None
    fit_coupling_variant: Path | None = None
    fit_extrapolation: Path | None = None
    fit_agnostic: Path | None = None
    ood: Path | None = None
    technique: Path | None = None
    manifest: Path | None = None
    config: Path | None = None

    @classmethod
    def from_args(cls, args: Any) -> Inputs:
        """Build from an argparse namespace carrying one attribute per input option.

        With ``args.results`` (``--results DIR``), an input not given explicitly defaults
        to its standard file under DIR where that file exists (see :meth:`under`).
        """
        base = cls.under(Path(args.results)) if getattr(args, "results", None) else cls()
        kw = {}
        for f in fields(cls):
            value = getattr(args, f.name, None)
            standard = getattr(base, f.name)
            if value:
                kw[f.name] = Path(value)
            elif standard is not None and standard.is_file():
                kw[f.name] = standard
            else:
                kw[f.name] = None
        return cls(**kw)

    @classmethod
    def under(cls, results: Path) -> Inputs:
        """The workflow's standard locations under a results directory (no config)."""
        return cls(
            **{
                name: results / Path(entry.path).relative_to("results")
                for name, entry in INPUTS.items()
                if name != "config"
            }
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

    def prepare(self, kind: str, name: str) -> catalog.Output:
        """The catalog entry of figure or table ``name``, its required inputs checked."""
        entry = catalog.lookup(kind, name)
        self.purpose = f"{kind} {name}"
        self.require(entry.required)
        return entry

    def has(self, name: str) -> bool:
        p = getattr(self.inputs, name)
        return p is not None and p.is_file()

    # -- tables -------------------------------------------------------------------------
    @cached_property
    def points(self) -> pd.DataFrame:
        return read_points(self.path("points"))

    @cached_property
    def scores_corrected(self) -> pd.DataFrame:
        return read_scores_corrected(self.path("scores_corrected"))

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
    def fit(self, name: str) -> dict[str, Any]:
        cache = self.__dict__.setdefault("_fits", {})
        if name not in cache:
            cache[name] = read_fit(self.path(name))
        return cache[name]

    def predicted(self, fit_name: str, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """``df`` (default: the fit-role points) with the fit's ``predicted`` column."""
        df = self.fit_points if df is None else df
        return predict(self.fit(fit_name), df, f"{option_flag(fit_name)} {self.path(fit_name)}")

    # -- settings: the config copy's, else the config schema's defaults ----------------
    @property
    def _config_or_empty(self) -> dict[str, Any]:
        return self.config if self.has("config") else {}

    @property
    def scale(self) -> str:
        return str(self._config_or_empty.get("scale", default("scale")))

    @property
    def seed(self) -> int:
        cfg = self._config_or_empty
        return int((cfg.get("fit") or {}).get("seed", cfg.get("seed", default("fit.seed"))))

    @property
    def n_bootstrap(self) -> int:
        """Resamples of the MAE intervals: ``fit.bootstrap``; where it is 0 (no parameter
        CIs), the schema's default."""
        fit_cfg = self._config_or_empty.get("fit") or {}
        n = int(fit_cfg.get("bootstrap", default("fit.bootstrap")))
        return n if n > 0 else int(default("fit.bootstrap"))

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


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CtxscaleError(f"{what} {path} is not a readable CSV table: {first}") from None


def _check_columns(
    df: pd.DataFrame, path: Path, what: str, extra: tuple[str, ...] = ()
) -> pd.DataFrame:
    """The points columns present; numbers checked by
    :func:`ctxscale.analysis.points.validate_points`."""
    missing = [c for c in (*POINT_COLUMNS, *extra) if c not in df.columns]
    if missing:
        raise CtxscaleError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    if df.empty:
        raise CtxscaleError(f"{what} {path} has no rows")
    df = validate_points(df, f"{what} {path}")
    for col in ("N", *extra):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise CtxscaleError(f"{what} {path}: row {row}: column {col!r} is not a finite number")
        df[col] = values
    return df


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("task", "role", "family", "model", "n_shots") if c in df.columns]
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def read_points(path: Path) -> pd.DataFrame:
    """The task-level points table (``ctxscale scores``), checked and in a stable order."""
    df = _read_csv(path, "points table")
    return _sorted(_check_columns(df, path, "points table"))


def read_predictions(path: Path, what: str) -> pd.DataFrame:
    """A ``ctxscale predict`` output: points columns plus ``predicted``."""
    df = _read_csv(path, f"{what} predictions")
    if df.empty:  # a scale without such a family: the figure says so
        return df
    return _sorted(_check_columns(df, path, f"{what} predictions", extra=("predicted",)))


def read_scores_corrected(path: Path) -> pd.DataFrame:
    """``ctxscale scores``'s corrected-metric table (it may have no rows)."""
    from ctxscale.analysis.aggregate import CORRECTED_COLUMNS

    df = _read_csv(path, "corrected-metric scores")
    missing = [c for c in CORRECTED_COLUMNS if c not in df.columns]
    if missing:
        raise CtxscaleError(f"corrected-metric scores {path} lack column(s) {', '.join(missing)}")
    for col in ("score", "score_corrected"):
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~((values >= 0) & (values <= 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise CtxscaleError(
                f"corrected-metric scores {path}: row {row}: {col} is not in [0, 1]"
            )
        df[col] = values
    return df


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise CtxscaleError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CtxscaleError(f"config {path} is not a mapping of settings")
    return data


# -- fits, read and evaluated through ctxscale.analysis.fit ---------------------------------------
def read_fit(path: Path) -> dict[str, Any]:
    """Read a fit JSON through ``ctxscale.analysis.fit.read_fit`` (one line if it is malformed)."""
    return fitmod.read_fit(path)


def predict(fit: dict[str, Any], df: pd.DataFrame, where: str) -> pd.DataFrame:
    """``df`` restricted to the fit's tasks, with the fit's ``predicted`` column."""
    sub = df[df["task"].isin(fit_tasks(fit))].reset_index(drop=True)
    if sub.empty:
        return sub.assign(predicted=pd.Series(dtype=float))
    return sub.assign(predicted=fitmod.predict_points(fit, sub, source=where))


def fit_tasks(fit: dict[str, Any]) -> list[str]:
    """Task names a fit covers, in a stable order."""
    return sorted(fit.get("tasks") or {})


def fit_holdout(fit: dict[str, Any]) -> float | None:
    """The n_pmt cut-off the fit was made with (``--holdout-npmt``), if any."""
    value = (fit.get("settings") or {}).get("holdout_npmt")
    return None if value is None else float(value)


def _ci_rows(fit: dict[str, Any], block: str, names: tuple[str, ...] | None) -> pd.DataFrame:
    rows = []
    for task, entry in sorted((fit.get("tasks") or {}).items()):
        values = entry.get(block) or {}
        ci = ((entry.get("ci") or {}).get(block)) or {}
        for name in names or tuple(sorted(values, key=_ident_order)):
            if values.get(name) is None:
                continue  # e.g. B, n_pmt_c, beta of the context-agnostic law
            lo, hi = ci.get(name) or (None, None)
            rows.append(
                {
                    "task": task,
                    "parameter": name,
                    "value": float(values[name]),
                    "lo": np.nan if lo is None else float(lo),
                    "hi": np.nan if hi is None else float(hi),
                }
            )
    return pd.DataFrame(rows, columns=["task", "parameter", "value", "lo", "hi"])


def _ident_order(name: str) -> tuple[int, str]:
    """Identifiable combinations in the law's order: compute term first, then context."""
    order = ("log10_A_C_c", "alpha", "log10_B_n_pmt_c", "beta")
    return (order.index(name) if name in order else len(order), name)


def fit_parameters(fit: dict[str, Any]) -> pd.DataFrame:
    """One row per (task, paper parameter): value and bootstrap CI bounds (NaN when absent)."""
    return _ci_rows(fit, "params", PARAM_NAMES)


def fit_identifiable(fit: dict[str, Any]) -> pd.DataFrame:
    """The fit's identifiable combinations (e.g. log10(A C_c^-alpha)) with their CIs."""
    return _ci_rows(fit, "identifiable", None)


def fit_references(fit: dict[str, Any], task: str) -> dict[str, float]:
    """Reference scales a task's fit fixed C_c and n_pmt_c to (empty if not recorded)."""
    settings = ((fit.get("tasks") or {}).get(task) or {}).get("settings") or {}
    return {k: float(v) for k, v in settings.items() if k.endswith("_reference")}


def dump_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2)
