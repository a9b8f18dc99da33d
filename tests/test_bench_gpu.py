"""benchmarks/bench_gpu.py: its smoke mode (the GPU code on CPU, a tiny model) and its search."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_largest_finds_the_last_length_that_runs():
    largest = _bench().largest
    for limit in (0, 15, 16, 17, 100, 127, 128, 1000):
        tried = []

        def runs(n, limit=limit, tried=tried):
            tried.append(n)
            return n <= limit

        want = 0 if limit < 16 else min(128, limit // 16 * 16)
        assert largest(runs, 16, 128, 16) == want
        assert len(tried) <= 8


def test_smoke_mode_prints_the_three_tables(capsys):
    assert _bench().main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "| prefill tokens |" in out and "MFU" in out
    for batch in (1, 8, 64):
        assert f"\n| {batch} | " in out
    assert "weights/bandwidth ms" in out
    assert "| cpu | 1 | 128 |" in out and "| cpu | 8 | 128 |" in out


def test_smoke_mode_with_a_reduced_precision_cache(capsys):
    assert _bench().main(["--smoke", "--sections", "decode", "--kv-dtype", "bfloat16"]) == 0
    assert "kv_dtype bfloat16" in capsys.readouterr().out
