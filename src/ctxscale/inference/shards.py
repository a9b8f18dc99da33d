"""Generation shards: one JSONL file per (model, dataset, n_shots), written atomically.

Line 1 is ``{"settings": {...}}``; then one record per instance, in prompt order::

    {"id", "n_pmt", "output", "n_gen", "score", "status"}

Records are appended to ``OUT.partial`` and flushed one by one (a killed process loses no
finished record); when every instance is done the partial file is fsync'ed once and renamed
to ``OUT``. A run killed at any point resumes
from the partial: a torn last line is dropped, the settings must match, and generation
starts at the first instance without a record, so nothing is lost or written twice (the
backend is given every instance and the start index, so it batches as an unbroken run). The
same inputs give a byte-identical shard (fixed key order, no timestamps).

One writer at a time: a writer holds an exclusive ``flock`` on ``OUT.lock`` from reading the
partial to renaming it, so a second writer (e.g. a rerun while a killed workflow's job still
runs) fails at once with one line naming the holder's pid; the kernel drops the lock when its
holder dies, however it dies. The partial is checked again (every id once, in prompt order,
all present) before it becomes ``OUT``: a finished shard is complete or absent.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import STATUS_OK, Backend, Generation, PromptFile

RECORD_KEYS = ("id", "n_pmt", "output", "n_gen", "score", "status")
Scorer = Callable[[str, str, Any], float]


def dumps(obj: Any) -> str:
    """One JSONL line; key order is the dict's (fixed by construction)."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def shard_settings(prompts: PromptFile, model: dict[str, Any], backend: Backend) -> dict[str, Any]:
    """The header of a shard: everything that determines its records (``weights`` where
    :func:`ctxscale.models.weights_id` names them)."""
    return {
        "model": model["name"],
        "family": model["family"],
        "n_ctx": model["n_ctx"],
        **({"weights": model["weights"]} if model.get("weights") else {}),
        "backend": backend.name,
        **backend.settings(),
        "dataset": prompts.dataset,
        "task": prompts.task,
        "n_shots": prompts.n_shots,
        "seed": prompts.seed,
        "metric": prompts.metric,
        "max_new_tokens": prompts.max_new_tokens,
        "stop": list(prompts.stop),
        "n_instances": len(prompts.instances),
    }


def lock_path(out: Path) -> Path:
    """The lock file that a writer of ``out`` holds."""
    return out.with_name(out.name + ".lock")


@contextmanager
def shard_lock(out: Path) -> Iterator[None]:
    """Own ``out`` (and its partial) exclusively; another holder makes this fail at once."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, out)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # still held: a waiter sees another inode and retries
        os.close(fd)


def _acquire(path: Path, out: Path) -> int:
    """A descriptor of ``path`` holding its exclusive flock (the file, not an unlinked one)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            holder = f" (pid {pid})" if pid else ""
            raise CtxscaleError(
                f"{out} is being written by another process{holder}; "
                "wait for it to finish or stop it, then rerun"
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed this lock file after we opened it


def read_partial(path: Path, header: dict[str, Any], prompts: PromptFile) -> int:
    """Check a partial shard against ``header`` and the prompts; cut a torn tail.

    Returns the number of complete records (the index of the next instance to run).
    """
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
    lines = data[:end].decode("utf-8").splitlines()
    if not lines:
        path.write_text(dumps({"settings": header}) + "\n", encoding="utf-8")
        return 0
    try:
        got = json.loads(lines[0]).get("settings")
    except (json.JSONDecodeError, AttributeError):
        got = None
    if got != header:
        raise CtxscaleError(
            f"{path} was written with other settings than this run; delete it to start over"
        )
    n = 0
    for line in lines[1:]:
        rec = json.loads(line)
        if n >= len(prompts.instances) or rec.get("id") != prompts.instances[n].id:
            raise CtxscaleError(f"{path}: record {n + 1} does not match the prompts file")
        n += 1
    if end != len(data):
        with path.open("r+b") as fh:
            fh.truncate(end)
    return n


def _check_complete(path: Path, header: dict[str, Any], prompts: PromptFile) -> None:
    """Raise unless ``path`` holds exactly one record per instance, in prompt order."""
    n = read_partial(path, header, prompts)
    if n != len(prompts.instances):
        raise CtxscaleError(f"{path} has {n} of {len(prompts.instances)} records; rerun to resume")


def write_shard(
    prompts: PromptFile,
    backend: Backend,
    model: dict[str, Any],
    out: Path,
    scorer: Scorer,
    progress: bool = True,
) -> Path:
    """Run every instance of ``prompts`` that has no record yet and write the shard ``out``.

    Holds ``OUT.lock`` throughout; returns at once if another writer finished ``out``.
    """
    with shard_lock(out):
        if not out.exists():
            _write_locked(prompts, backend, model, out, scorer, progress)
    return out


def _write_locked(
    prompts: PromptFile,
    backend: Backend,
    model: dict[str, Any],
    out: Path,
    scorer: Scorer,
    progress: bool,
) -> None:
    """``write_shard``'s body, run while this process owns ``out``."""
    header = shard_settings(prompts, model, backend)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        start = read_partial(partial, header, prompts)
    else:
        partial.write_text(dumps({"settings": header}) + "\n", encoding="utf-8")
        start = 0
    todo = prompts.instances[start:]
    gens = backend.generate(
        prompts.prefix,
        [i.suffix for i in prompts.instances],
        prompts.stop,
        prompts.max_new_tokens,
        start=start,
    )
    with partial.open("a", encoding="utf-8") as fh:
        shown = _progress(gens, len(prompts.instances), start, progress)
        try:
            for inst, gen in zip(todo, shown, strict=True):
                score = float(scorer(prompts.metric, gen.output, inst.reference))
                values = (inst.id, gen.n_pmt, gen.output, gen.n_gen, score, gen.status)
                rec = dict(zip(RECORD_KEYS, values, strict=True))
                fh.write(dumps(rec) + "\n")
                fh.flush()  # a killed process loses no finished record
        except CtxscaleError as err:  # e.g. the backend's "does not fit in memory"
            raise CtxscaleError(f"shard {out}: {err}") from None
        os.fsync(fh.fileno())  # on disk before the rename publishes the shard
    _check_complete(partial, header, prompts)
    partial.replace(out)


def _progress(
    gens: Iterator[Generation], total: int, start: int, enabled: bool
) -> Iterator[Generation]:
    """Pass generations through while a tqdm bar shows instances done and tokens/s.

    On a terminal the bar redraws ten times a second; into a log file (a workflow job) every
    10 s and at the end, so a log holds a few lines per shard, not one per instance.
    """
    import sys

    from tqdm import tqdm

    interval = 0.1 if sys.stderr.isatty() else 10.0
    bar = tqdm(
        total=total,
        initial=start,
        disable=not enabled,
        unit="inst",
        dynamic_ncols=True,
        mininterval=interval,
    )
    t0, n_pmt, n_gen = time.perf_counter(), 0, 0
    try:
        for gen in gens:
            if gen.status == STATUS_OK:
                n_pmt, n_gen = n_pmt + gen.n_pmt, n_gen + gen.n_gen
            dt = max(time.perf_counter() - t0, 1e-9)
            bar.update(1)
            rates = f"prompt {n_pmt / dt:.0f} tok/s, gen {n_gen / dt:.1f} tok/s"
            bar.set_postfix_str(rates, refresh=False)
            yield gen
    finally:
        bar.close()
