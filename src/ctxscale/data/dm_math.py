"""Offline DeepMind Mathematics data from DeepMind's own generator (PyPI ``mathematics-dataset``).

The package (1.0.1) predates current sympy and numpy. :func:`_install_shims` patches, in
memory only, what it needs:

* sympy moved ``base_solution_linear`` to ``sympy.solvers.diophantine.diophantine``; the
  attribute is set back on the package module before the generator is imported;
* numpy 2 removed ``np.object`` and ``ndarray.itemset``, used by ``sample/polynomials.py``;
  that module gets a numpy proxy whose ``object`` is the builtin and whose ``zeros``/``empty``
  return an ndarray subclass with an ``itemset`` method (without it, 14 of the 56
  modules -- polynomials, calculus and most ``*_composed`` ones -- fail);
* two places iterate over Python sets (variable letters in ``Context.pop``, entities in
  ``expand_entities``), which depends on the string hash seed and on object ids; both are
  replaced by versions that walk the same items in a sorted / first-seen order.

Generation also depends on the string hash seed through sympy's own ordering, so it runs in
a child process with ``PYTHONHASHSEED=0`` unless the current process already has it.
Rows are ``{"question", "answer"}`` like the hub's ``deepmind/math_dataset``. Each
(module, split, seed) has its own derived seed, so the train split (demonstrations) and the
test split (evaluation) are generated independently; the test split excludes questions
that appear in the train split, and both are free of duplicate questions.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ctxscale.config import default
from ctxscale.errors import CtxscaleError

# The package's own limits (generate_settings.MAX_QUESTION_LENGTH / MAX_ANSWER_LENGTH).
MAX_QUESTION_CHARS = 160
MAX_ANSWER_CHARS = 30
# Attempts per requested row before giving up (small modules at low entropy repeat).
_MAX_ATTEMPTS_PER_ROW = 50
#: The config schema's ``data.dm_difficulty`` and ``seed`` (ctxscale.config.default).
DEFAULT_DIFFICULTY: tuple[float, float] = tuple(default("data.dm_difficulty"))
DEFAULT_SEED: int = default("seed")
#: The whole training entropy range.
FULL_RANGE = (0.0, 1.0)

_SHIMMED = False


def _install_shims() -> None:
    """Make mathematics-dataset 1.0.1 run under sympy 1.14 and numpy 2, deterministically."""
    global _SHIMMED
    if _SHIMMED:
        return
    import types

    import numpy as np
    import sympy.solvers.diophantine  # noqa: F401  (loads the package module)
    from sympy.solvers.diophantine.diophantine import base_solution_linear

    sys.modules["sympy.solvers.diophantine"].base_solution_linear = base_solution_linear

    class _ItemsetArray(np.ndarray):
        """ndarray with the ``itemset`` method that numpy 2 removed."""

        def itemset(self, index: Any, value: Any) -> None:
            if isinstance(index, tuple):
                self[index] = value
            else:
                self.flat[index] = value

    class _NumpyProxy(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

    proxy = _NumpyProxy("numpy")
    proxy.object = object
    proxy.zeros = lambda *a, **k: np.zeros(*a, **k).view(_ItemsetArray)
    proxy.empty = lambda *a, **k: np.empty(*a, **k).view(_ItemsetArray)

    from mathematics_dataset.sample import polynomials
    from mathematics_dataset.util import composition

    polynomials.np = proxy

    def pop(self: Any) -> str:
        allowed = (
            composition._ALLOWED_SYMBOLS.difference(self._relation_symbols)
            .difference(self._self_symbols)
            .difference(self._child_symbols)
        )
        if not allowed:
            raise ValueError("Ran out of symbols")
        symbol = random.choice(sorted(allowed))
        self._self_symbols.add(symbol)
        return symbol

    def expand_entities(context: Any, **kwargs: Any) -> tuple[str, dict]:
        kwargs = kwargs.copy()
        entities: list = []
        for entity in context.child_entities:
            if not any(entity is e for e in entities):
                entities.append(entity)
        for key, maybe_entity in kwargs.items():
            if isinstance(maybe_entity, composition.Entity):
                if not any(maybe_entity is e for e in entities):
                    entities.append(maybe_entity)
                kwargs[key] = maybe_entity.handle
        random.shuffle(entities)
        parts = []
        for entity in entities:
            parts.append(entity.child_description)
            if not entity.expression_used:
                parts.append(entity.description)
        return " ".join(p for p in parts if p), kwargs

    composition.Context.pop = pop
    composition.expand_entities = expand_entities
    _SHIMMED = True


def _flatten(tree: dict, prefix: str | None = None) -> dict[str, Callable]:
    flat: dict[str, Callable] = {}
    for key, value in tree.items():
        name = key if prefix is None else f"{prefix}__{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _entropy_fn(difficulty: tuple[float, float]) -> Callable:
    lo, hi = difficulty

    def modify(range_: tuple[float, float]) -> tuple[float, float]:
        length = range_[1] - range_[0]
        return (range_[0] + lo * length, range_[0] + hi * length)

    return modify


def _modules(difficulty: tuple[float, float]) -> dict[str, Callable]:
    _install_shims()
    from mathematics_dataset.modules import modules

    return _flatten(modules.train(_entropy_fn(difficulty)))


def module_names() -> list[str]:
    """The generator's 56 module names (same as the hub's ``deepmind/math_dataset`` configs)."""
    return sorted(_modules(FULL_RANGE))


def derived_seed(seed: int, split: str, module: str) -> int:
    """A 32-bit seed for one (seed, split, module): stable across runs and platforms."""
    digest = hashlib.sha256(f"{seed}|{split}|{module}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _check_difficulty(difficulty: Iterable[float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in difficulty)
    if not 0.0 <= lo < hi <= 1.0:
        raise CtxscaleError(f"difficulty range must satisfy 0 <= lo < hi <= 1, got ({lo}, {hi})")
    return lo, hi


def _generate_here(
    module: str, n: int, split: str, seed: int, difficulty: tuple[float, float], exclude: set[str]
) -> list[dict[str, str]]:
    import numpy as np
    import sympy.core.random as sympy_random

    fns = _modules(difficulty)
    if module not in fns:
        raise CtxscaleError(f"unknown DeepMind Mathematics module {module!r}; known: {sorted(fns)}")
    s = derived_seed(seed, split, module)
    random.seed(s)
    np.random.seed(s)  # noqa: NPY002  (the generator draws from numpy's global state)
    sympy_random.seed(s)
    rows: list[dict[str, str]] = []
    seen = set(exclude)
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > _MAX_ATTEMPTS_PER_ROW * max(n, 1):
            raise CtxscaleError(
                f"{module}: only {len(rows)} distinct questions of the {n} requested after "
                f"{attempts - 1} draws at difficulty {difficulty}; widen the difficulty range "
                "or ask for fewer instances"
            )
        problem = fns[module]()
        question, answer = str(problem.question), str(problem.answer)
        if len(question) > MAX_QUESTION_CHARS or len(answer) > MAX_ANSWER_CHARS:
            continue
        if question in seen:
            continue
        seen.add(question)
        rows.append({"question": question, "answer": answer})
    return rows


def generate_splits(
    modules: list[str],
    n_train: int,
    n_test: int,
    seed: int = DEFAULT_SEED,
    difficulty: Iterable[float] = DEFAULT_DIFFICULTY,
) -> dict[str, dict[str, list[dict[str, str]]]]:
    """``{module: {"train": rows, "test": rows}}``, a function of its arguments only.

    Train rows (demonstrations) are generated first; test rows (evaluation) use another
    derived seed and never repeat a train question.
    """
    diff = _check_difficulty(difficulty)
    request = {
        "modules": list(modules),
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "difficulty": list(diff),
    }
    if os.environ.get("PYTHONHASHSEED") == "0":
        return _generate_request(request)
    env = dict(os.environ, PYTHONHASHSEED="0")
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "ctxscale.data.dm_math"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        raise CtxscaleError(f"DeepMind Mathematics generation failed: {last}")
    return json.loads(proc.stdout)


def _generate_request(request: dict) -> dict[str, dict[str, list[dict[str, str]]]]:
    import warnings

    diff = _check_difficulty(request["difficulty"])
    out: dict[str, dict[str, list[dict[str, str]]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in request["modules"]:
            train = _generate_here(
                module, request["n_train"], "train", request["seed"], diff, set()
            )
            test = _generate_here(
                module,
                request["n_test"],
                "test",
                request["seed"],
                diff,
                {r["question"] for r in train},
            )
            out[module] = {"train": train, "test": test}
    return out


def _main() -> int:
    """Child-process entry: JSON request on stdin, JSON rows on stdout."""
    request = json.loads(sys.stdin.read())
    try:
        result = _generate_request(request)
    except CtxscaleError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
