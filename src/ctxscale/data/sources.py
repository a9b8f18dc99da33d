"""Where raw records come from: the model hub, a local directory, or the DM generator.

Every source returns, per split, a sequence of raw records (dicts in the hub's own field
layout) supporting ``len`` and indexing, so selection can walk a seeded permutation
without materialising a 40M-row training split.

* ``hub``: ``datasets.load_dataset(id, config, split=..., cache_dir=..., revision=...)``;
  ``path`` may replace the hub id by a local directory in the hub's layout (how the tests
  run it offline). A list of configs is concatenated in order.
* ``local``: ``{local_dir}/{dataset}/{split}.jsonl`` or ``.parquet`` (air-gapped clusters);
  every record must carry the fields the registry entry reads, else a one-line error names
  the file, the row and the field.
* ``generate``: DeepMind Mathematics modules only, via :mod:`ctxscale.data.dm_math`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ctxscale.errors import CtxscaleError

SOURCES = ("generate", "hub", "local")


class Records(Sequence):
    """A read-only list of raw records (a thin wrapper so all sources look alike)."""

    def __init__(self, rows: Any, origin: str) -> None:
        self._rows = rows
        self.origin = origin

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> dict:  # type: ignore[override]
        return dict(self._rows[int(index)])


def load_hub(
    dataset_id: str,
    config: str | list[str] | None,
    split: str,
    cache_dir: str | None = None,
    revision: str | None = None,
    path: str | None = None,
) -> Records:
    """One split from the model hub (or from ``path``, a local copy in the hub's layout)."""
    import datasets

    configs = config if isinstance(config, list) else [config]
    parts = []
    for name in configs:
        kwargs: dict[str, Any] = {"split": split, "cache_dir": cache_dir}
        if name:
            kwargs["name"] = name
        if revision and path is None:
            kwargs["revision"] = revision
        try:
            parts.append(datasets.load_dataset(path or dataset_id, **kwargs))
        except Exception as exc:  # network, missing split/config: one line for the user
            where = path or dataset_id
            raise CtxscaleError(
                f"cannot load {where} config={name} split={split}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
    table = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return Records(table, f"hub:{path or dataset_id}:{config}:{split}")


def _missing(record: dict, fields: Sequence[str]) -> str | None:
    for field in fields:
        node: Any = record
        for key in field.split("."):
            if not isinstance(node, dict) or key not in node:
                return field
            node = node[key]
    return None


def load_local(local_dir: str | Path, dataset: str, split: str, fields: Sequence[str]) -> Records:
    """``{local_dir}/{dataset}/{split}.jsonl`` (or ``.parquet``), checked for ``fields``."""
    base = Path(local_dir) / dataset
    jsonl, parquet = base / f"{split}.jsonl", base / f"{split}.parquet"
    if jsonl.exists():
        rows = []
        with open(jsonl, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CtxscaleError(f"{jsonl}: line {lineno}: not JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise CtxscaleError(f"{jsonl}: line {lineno}: not a JSON object")
                missing = _missing(row, fields)
                if missing:
                    raise CtxscaleError(
                        f"{jsonl}: line {lineno}: missing field {missing!r} (needed by {dataset})"
                    )
                rows.append(row)
        return Records(rows, f"local:{jsonl}")
    if parquet.exists():
        import pyarrow.parquet as pq

        rows = pq.read_table(parquet).to_pylist()
        for i, row in enumerate(rows):
            missing = _missing(row, fields)
            if missing:
                raise CtxscaleError(
                    f"{parquet}: row {i}: missing field {missing!r} (needed by {dataset})"
                )
        return Records(rows, f"local:{parquet}")
    raise CtxscaleError(f"no local data for {dataset} split {split}: expected {jsonl} or {parquet}")
