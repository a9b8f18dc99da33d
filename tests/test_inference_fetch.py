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
