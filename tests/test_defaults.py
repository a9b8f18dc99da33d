"""One source of defaults: every default of a config setting is the schema's.

Commands and functions that stand in for a config setting (argparse defaults, keyword
defaults, fallbacks of a partial config) read it from ``config.schema.yaml`` through
``ctxscale.config.default``; none keeps a literal copy that could drift from it.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctxscale.config import default, schema

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "ctxscale"

# Files exempt from the literal-copy checks (none: every module reads the schema).
PENDING: set[str] = set()

# Names the code gives a schema setting (a parameter, a constant, a flag) -> its leaf name.
ALIASES = {
    "default_seed": "seed",
    "cli_bootstrap": "bootstrap",
    "n_bootstrap": "bootstrap",
    "default_penalty": "penalty",
    "penalty_name": "penalty",
    "default_loss": "loss",
    "max_eval_instances": "max_instances",
    "max_example_tokens": "max_instance_tokens",
    "max_tokens": "max_instance_tokens",
    "difficulty": "dm_difficulty",
    "default_difficulty": "dm_difficulty",
}


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def _leaf_defaults() -> dict[str, set]:
    """{leaf name: its scalar (or list) defaults} over the whole schema (None and booleans
    left out: they mean 'unset' and 'off' everywhere)."""
    out: dict[str, set] = {}

    def walk(node: dict) -> None:
        for name, sub in (node.get("properties") or {}).items():
            value = sub.get("default")
            if value is not None and not isinstance(value, bool | dict):
                out.setdefault(name, set()).add(_frozen(value))
            walk(sub)

    walk(schema())
    return out


def _literal(node: ast.AST):
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return None if isinstance(value, bool) else _frozen(value)


def _copies(tree: ast.AST, leaves: dict[str, set]) -> list[tuple[int, str, object]]:
    """(line, name, value) of every literal that repeats a schema default under its name:
    keyword defaults, annotated or plain assignments, ``d.get("name", value)`` and
    ``add_argument("--name", default=value)``."""
    found = []

    def check(name: str, node: ast.AST | None) -> None:
        if node is None:
            return
        key = ALIASES.get(name.lower(), name.lower())
        value = _literal(node)
        if key in leaves and value is not None and value in leaves[key]:
            found.append((node.lineno, name, value))

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            a = node.args
            pos = a.posonlyargs + a.args
            for arg, d in zip(pos[len(pos) - len(a.defaults) :], a.defaults, strict=True):
                check(arg.arg, d)
            for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
                check(arg.arg, d)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            check(node.target.id, node.value)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    check(target.id, node.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.args else None
            name = first.value if isinstance(first, ast.Constant) else None
            if not isinstance(name, str):
                continue
            if node.func.attr == "get" and len(node.args) == 2:
                check(name, node.args[1])
            elif node.func.attr == "add_argument":
                for kw in node.keywords:
                    if kw.arg == "default":
                        check(name.lstrip("-").replace("-", "_"), kw.value)
    return found


def test_no_module_keeps_a_literal_copy_of_a_schema_default():
    leaves = _leaf_defaults()
    assert {"seed", "bootstrap", "batch_size", "max_instances", "penalty"} <= set(leaves)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in PENDING:
            continue
        for line, name, value in _copies(ast.parse(path.read_text(encoding="utf-8")), leaves):
            offenders.append(f"src/ctxscale/{rel}:{line}: {name} = {value!r}")
    assert not offenders, "read these from ctxscale.config.default:\n" + "\n".join(offenders)


def test_the_seed_is_written_once():
    """31337 appears in the schema only, in the package and the rules (config.yaml and the
    presets state the experiment's own seed)."""
    files = [*SRC.rglob("*.py"), *SRC.rglob("*.yaml"), *(ROOT / "workflow/rules").glob("*")]
    hits = sorted(
        p.relative_to(ROOT).as_posix()
        for p in files
        if p.is_file()
        and not any(p == SRC / rel for rel in PENDING)
        and "31337" in p.read_text(encoding="utf-8")
    )
    assert hits == ["src/ctxscale/config.schema.yaml"], hits


def test_default_reads_the_schema():
    assert default("seed") == schema()["properties"]["seed"]["default"]
    assert (
        default("fit.bootstrap")
        == schema()["properties"]["fit"]["properties"]["bootstrap"]["default"]
    )
    assert default("inference.batch_size") >= 1
    first = default("miniworld.n_shots")
    first.append(-1)  # a copy: the schema stays as it is
    assert -1 not in default("miniworld.n_shots")
    for bad in ("nope", "fit.nope", "families"):
        try:
            default(bad)
        except KeyError as exc:
            assert bad in str(exc)
        else:  # pragma: no cover
            raise AssertionError(f"default({bad!r}) should fail")


# Run in a fresh interpreter importing a copy of the package whose schema has other defaults.
_PROBE = r"""
import argparse, json, sys
from pathlib import Path
import ctxscale
assert ctxscale.__file__.startswith(sys.argv[1]), ctxscale.__file__
from ctxscale.analysis import aggregate, fit, law
from ctxscale import artifacts, config
from ctxscale.data import dm_math, tasks
from ctxscale.cli import build_parser
from ctxscale.analysis.fit_cli import fit_settings
from ctxscale.inference.fetch import cache_root
from ctxscale.mini.model import MiniConfig
from ctxscale.outputs.results import Inputs, Results

parser = build_parser()
fitted = fit_settings(parser.parse_args(["fit", "points.csv", "--out", "fit.json"]))
prep = parser.parse_args(["prepare", "--dataset", "dm_math__arithmetic__add_or_sub"])
tasks._resolve(prep, tasks.get_spec(prep.dataset))
res = Results(Inputs())
out = {
    "fit_cli": [fitted.seed, fitted.bootstrap, fitted.loss, fitted.penalty],
    "FitSettings": [fit.FitSettings().seed, fit.FitSettings().loss, fit.FitSettings().penalty],
    "law.predict": law.predict.__kwdefaults__ or list(law.predict.__defaults__),
    "prepare": [prep.seed, prep.max_instances, prep.max_example_tokens, list(prep.dm_difficulty)],
    "DataOptions": [tasks.DataOptions().seed, list(tasks.DataOptions().dm_difficulty)],
    "select_eval": list(tasks.select_eval.__defaults__),
    "generate_splits": [dm_math.generate_splits.__defaults__[0],
                        list(dm_math.generate_splits.__defaults__[1])],
    "results": [res.seed, res.n_bootstrap, res.scale],
    "build_points": list(aggregate.build_points.__defaults__),
    "sensitivity_points": artifacts.sensitivity_points({}),
    "cache_root": str(cache_root({})),
    "length_filter": config.length_filter({}),
    "MiniConfig": MiniConfig(vocab_size=3).intermediate_size,
}
print(json.dumps(out, default=str))
"""


# slow: a copy of the package probed in a fresh interpreter; scripts/check.sh runs it (the
# full suite).
@pytest.mark.slow
def test_changing_a_schema_default_changes_every_command_and_function(tmp_path):
    """A copy of the package with other defaults in its schema: the CLI parsers, keyword
    defaults and fallbacks all follow (none holds its own copy)."""
    src = tmp_path / "src"
    shutil.copytree(SRC, src / "ctxscale", ignore=shutil.ignore_patterns("__pycache__"))
    path = src / "ctxscale" / "config.schema.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    props = doc["properties"]
    props["seed"]["default"] = 4242
    props["fit"]["properties"]["seed"]["default"] = 4343
    props["fit"]["properties"]["bootstrap"]["default"] = 17
    props["fit"]["properties"]["loss"]["default"] = "absolute"
    props["fit"]["properties"]["penalty"]["default"] = "sigmoid"
    props["data"]["properties"]["max_instances"]["default"] = 33
    props["data"]["properties"]["max_instance_tokens"]["default"] = 99
    props["data"]["properties"]["dm_difficulty"]["default"] = [0.1, 0.9]
    props["scores"]["properties"]["aggregation"]["default"] = "datasets"
    props["scale"]["default"] = "paper"
    props["inference"]["properties"]["cache_dir"]["default"] = "elsewhere"
    props["miniworld"]["properties"]["model"]["properties"]["intermediate_size"]["default"] = 77
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(src)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["fit_cli"] == [4343, 17, "absolute", "sigmoid"]
    assert got["FitSettings"] == [4343, "absolute", "sigmoid"]
    assert "sigmoid" in json.dumps(got["law.predict"])
    assert got["prepare"] == [4242, 33, 99, [0.1, 0.9]]
    assert got["DataOptions"] == [4242, [0.1, 0.9]]
    assert got["select_eval"] == [4242, 33, 99]
    assert got["generate_splits"] == [4242, [0.1, 0.9]]
    assert got["results"] == [4343, 17, "paper"]
    assert got["build_points"] == ["datasets"]
    assert got["sensitivity_points"] == "results/points_by_dataset_groups.csv"
    assert got["cache_root"] == "elsewhere"
    assert "over 99 tokens" in got["length_filter"]
    assert got["MiniConfig"] == 77
