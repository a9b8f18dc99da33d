"""The offline DeepMind Mathematics generator: works under numpy 2, deterministic, split-clean."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctxscale.data import dm_math
from ctxscale.errors import CtxscaleError

SRC = str(Path(dm_math.__file__).resolve().parents[2])
MODULES = [
    "arithmetic__add_or_sub",
    "numbers__place_value",
    "polynomials__expand",  # needs the numpy-2 itemset shim
    "algebra__linear_1d_composed",  # needs the np.object shim and deterministic entity order
]


@pytest.fixture(scope="module")
def generated():
    return dm_math.generate_splits(MODULES, n_train=12, n_test=8, seed=31337, difficulty=(0, 0.5))


def test_all_56_modules_are_known():
    names = dm_math.module_names()
    assert len(names) == 56
    assert "calculus__differentiate" in names and "probability__swr_p_sequence" in names


def test_rows_have_question_and_answer_and_splits_are_disjoint(generated):
    for module in MODULES:
        train, test = generated[module]["train"], generated[module]["test"]
        assert len(train) == 12 and len(test) == 8
        for row in train + test:
            assert set(row) == {"question", "answer"}
            assert 0 < len(row["question"]) <= dm_math.MAX_QUESTION_CHARS
            assert 0 < len(row["answer"]) <= dm_math.MAX_ANSWER_CHARS
        questions = [r["question"] for r in train + test]
        assert len(set(questions)) == len(questions)  # no duplicates, no train/test overlap


@pytest.mark.slow
def test_same_bytes_twice_in_fresh_processes_with_random_hash_seeds(generated):
    """Two child processes with different PYTHONHASHSEED give byte-identical output."""
    code = (
        "import json,sys; from ctxscale.data import dm_math; "
        f"r = dm_math.generate_splits({MODULES!r}, 12, 8, 31337, (0, 0.5)); "
        "sys.stdout.write(json.dumps(r, sort_keys=True))"
    )
    outs = []
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=SRC)
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert json.loads(outs[0]) == generated


def test_a_module_does_not_depend_on_the_others_requested(generated):
    alone = dm_math.generate_splits([MODULES[2]], 12, 8, 31337, (0, 0.5))
    assert alone[MODULES[2]] == generated[MODULES[2]]


def test_seed_and_difficulty_change_the_data(generated):
    other = dm_math.generate_splits([MODULES[0]], 12, 8, 31338, (0, 0.5))
    assert other[MODULES[0]] != generated[MODULES[0]]
    easy = dm_math.generate_splits([MODULES[0]], 40, 1, 31337, (0, 0.05))
    hard = dm_math.generate_splits([MODULES[0]], 40, 1, 31337, (0.9, 1.0))

    def mean_len(rows):
        return sum(len(r["question"]) for r in rows) / len(rows)

    assert mean_len(easy[MODULES[0]]["train"]) < mean_len(hard[MODULES[0]]["train"])


def test_bad_requests_are_one_line_errors():
    with pytest.raises(CtxscaleError, match="difficulty"):
        dm_math.generate_splits([MODULES[0]], 1, 1, 1, (0.5, 0.5))
    with pytest.raises(CtxscaleError, match="unknown DeepMind Mathematics module"):
        dm_math.generate_splits(["arithmetic__nope"], 1, 1, 1, (0, 1))


def test_derived_seeds_differ_per_split_and_module():
    seeds = {
        dm_math.derived_seed(31337, split, module)
        for split in ("train", "test")
        for module in MODULES
    }
    assert len(seeds) == 2 * len(MODULES)
