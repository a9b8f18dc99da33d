"""Reading and validating points tables (one row per model x task x n_shots).

A points table needs the columns ``task, C, n_pmt, n_ctx, score`` (``score`` may be
optional, e.g. for prediction); extra columns are kept but ignored by the fit. CSV and
Parquet (``.parquet``/``.pq``) are read. Every problem raises
:class:`~ctxscale.errors.CtxscaleError` with one line naming the file, the column and the
row (1-based data row, the header not counted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctxscale.errors import CtxscaleError

#: Columns the fit needs; ``score`` is only needed where observations are used.
REQUIRED_COLUMNS: tuple[str, ...] = ("task", "C", "n_pmt", "n_ctx", "score")
_POSITIVE_COLUMNS: tuple[str, ...] = ("C", "n_pmt", "n_ctx")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table as-is (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise CtxscaleError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CtxscaleError(f"{path}: cannot read table: {first}") from exc


def validate_points(
    df: pd.DataFrame, source: str = "points", require_score: bool = True
) -> pd.DataFrame:
    """Check a points table and return a copy with numeric columns as float, task as str.

    Error messages give the 1-based data row of the file as read (``df``'s integer index
    plus one, so rows keep their numbers after a ``--where`` filter); the returned copy has
    a fresh index 0..n-1.
    """
    needed = REQUIRED_COLUMNS if require_score else REQUIRED_COLUMNS[:-1]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise CtxscaleError(f"{source}: missing column {missing[0]!r} (needs: {', '.join(needed)})")
    out = df.copy()
    if not pd.api.types.is_integer_dtype(out.index):
        out = out.reset_index(drop=True)
    labels = out.index.to_numpy()
    if len(out) == 0:
        raise CtxscaleError(f"{source}: the table has no rows")

    def first_bad(mask: np.ndarray) -> tuple[int, int] | None:
        """(position, 1-based row label) of the first True in ``mask``, or None."""
        hits = np.flatnonzero(mask)
        return (int(hits[0]), int(labels[hits[0]]) + 1) if len(hits) else None

    task = out["task"]
    if hit := first_bad((task.isna() | (task.astype(str).str.strip() == "")).to_numpy()):
        raise CtxscaleError(f"{source}: row {hit[1]}: column 'task' is empty")
    out["task"] = task.astype(str)

    # Without require_score (prediction) a score column is left as it is, NaN included.
    numeric = list(_POSITIVE_COLUMNS) + (["score"] if require_score else [])
    for col in numeric:
        raw = out[col]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        if hit := first_bad(np.isnan(values) & raw.notna().to_numpy()):
            raise CtxscaleError(
                f"{_at(source, hit[1], col)} value {raw.iloc[hit[0]]!r} is not a number"
            )
        if hit := first_bad(np.isnan(values)):
            raise CtxscaleError(f"{_at(source, hit[1], col)} is missing (NaN)")
        if hit := first_bad(~np.isfinite(values)):
            raise CtxscaleError(f"{_at(source, hit[1], col)} is not finite")
        if col in _POSITIVE_COLUMNS:
            if hit := first_bad(values <= 0):
                raise CtxscaleError(
                    f"{_at(source, hit[1], col)} value {values[hit[0]]:g} must be positive"
                )
        elif hit := first_bad((values < 0) | (values > 1)):
            raise CtxscaleError(
                f"{_at(source, hit[1], col)} value {values[hit[0]]:g} is outside [0, 1]"
            )
        out[col] = values
    return out.reset_index(drop=True)


def _at(source: str, row: int, column: str) -> str:
    return f"{source}: row {row}: column {column!r}"


def parse_where(specs: Iterable[str] | None) -> list[tuple[str, str]]:
    """Parse ``COLUMN=VALUE`` filters."""
    parsed = []
    for spec in specs or ():
        column, sep, value = spec.partition("=")
        if not sep or not column.strip():
            raise CtxscaleError(f"--where {spec!r}: expected COLUMN=VALUE")
        parsed.append((column.strip(), value.strip()))
    return parsed


def apply_where(df: pd.DataFrame, where: Sequence[tuple[str, str]], source: str) -> pd.DataFrame:
    """Keep rows where every ``column == value`` (numeric columns compare as numbers)."""
    for column, value in where:
        if column not in df.columns:
            raise CtxscaleError(f"{source}: --where column {column!r} is not in the table")
        col = df[column]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            try:
                target = float(value)
            except ValueError as exc:
                raise CtxscaleError(
                    f"{source}: --where {column}={value}: column {column!r} is numeric"
                ) from exc
            mask = col.to_numpy(dtype=float) == target
        else:
            mask = col.astype(str).to_numpy() == value
        df = df.loc[mask]
        if len(df) == 0:
            raise CtxscaleError(f"{source}: no rows left after --where {column}={value}")
    return df


def select_tasks(df: pd.DataFrame, tasks: Sequence[str] | None, source: str) -> pd.DataFrame:
    """Keep only the named tasks; each must be present."""
    if not tasks:
        return df
    present = set(df["task"])
    for name in tasks:
        if name not in present:
            known = ", ".join(sorted(present))
            raise CtxscaleError(f"{source}: task {name!r} has no rows (tasks: {known})")
    return df.loc[df["task"].isin(list(tasks))].reset_index(drop=True)


def load_points(
    path: str | Path,
    where: Sequence[tuple[str, str]] = (),
    tasks: Sequence[str] | None = None,
    require_score: bool = True,
) -> pd.DataFrame:
    """Read, filter (``where`` first, so filtered-out rows need not be valid), validate."""
    source = str(path)
    df = read_table(path)
    df = apply_where(df, where, source)
    df = validate_points(df, source, require_score=require_score)
    return select_tasks(df, tasks, source)
