"""Load and validate the experiment configuration (``config.yaml`` and its presets).

The JSON schema ``config.schema.yaml`` beside this module is the single definition of the
config: the workflow validates against it when it starts (Snakemake ``validate``) and every
``ctxscale --config`` command loads its file through :func:`load_config`. Both fill in the
schema's defaults, so a rule and a user running the CLI by hand see the same settings.
A malformed config is one :class:`CtxscaleError` line naming the field, before any work.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ctxscale.errors import CtxscaleError
from ctxscale.fileio import atomic_write
from ctxscale.models import models_from_config

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")


@cache
def schema() -> dict[str, Any]:
    """The config schema (a dict), read once."""
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def default(path: str) -> Any:
    """The schema's default of one setting, by its dotted path: ``default("fit.bootstrap")``.

    The one source of a setting's default outside a loaded config: every argparse default
    and keyword default that stands for a config setting reads it here, so changing the
    schema changes them all (``tests/test_defaults.py``).
    """
    node = schema()
    for part in path.split("."):
        props = node.get("properties") or {}
        if part not in props:
            raise KeyError(f"config schema: no setting {path!r}")
        node = props[part]
    if "default" not in node:
        raise KeyError(f"config schema: {path!r} has no default")
    return copy.deepcopy(node["default"])


def _field(path: Any) -> str:
    """``families[0].checkpoints[2].N`` from a jsonschema error path."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _with_defaults(validator_class: type) -> type:
    """A validator class that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` (a copy gets the defaults filled in) and return that copy.

    Checks the schema first, then the family blocks (``models_from_config``), so the
    message names the first wrong field, e.g. ``config: seed: 'x' is not of type 'integer'``.
    """
    if not isinstance(config, dict):
        raise CtxscaleError("config: the top level must be a mapping of settings")
    filled = copy.deepcopy(config)
    errors = sorted(
        _Validator(schema()).iter_errors(filled),
        key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]),
    )
    if errors:
        err = errors[0]
        closed = ("additionalProperties", "unevaluatedProperties")
        if err.validator in closed and err.validator_value is False:
            names = _known_keys(err.schema)
            extra = sorted(set(err.instance) - names)
            where = _field(list(err.absolute_path) + [extra[0]]) if extra else _field(err.path)
            known = ", ".join(sorted(names))
            raise CtxscaleError(f"config: {where}: unknown setting; known here: {known}")
        raise CtxscaleError(f"config: {_field(err.absolute_path)}: {err.message}")
    filled["datasets"] = expand_datasets(filled["datasets"])
    check_cross_fields(filled)
    check_paper_scale(filled)
    models_from_config(filled)
    return filled


def _known_keys(node: dict[str, Any]) -> set[str]:
    """The keys a closed schema object allows: its properties and those of its ``$ref``."""
    names = set(node.get("properties", {}))
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        names |= _known_keys(schema()["$defs"][ref.removeprefix("#/$defs/")])
    return names


def check_cross_fields(config: dict[str, Any]) -> None:
    """Rules the schema cannot state: unique family names, an ordered ``dm_difficulty``."""
    from ctxscale.artifacts import tokenizer_slug  # imported here: it imports ctxscale.models

    seen: set[str] = set()
    folders: dict[str, str] = {}
    for i, fam in enumerate(config.get("families") or []):
        if fam["name"] in seen:
            raise CtxscaleError(
                f"config: families[{i}].name: family {fam['name']!r} is defined twice"
            )
        seen.add(fam["name"])
        tok = fam.get("tokenizer")
        if tok is not None and tok != config["data"]["tokenizer"]:
            other = folders.setdefault(tokenizer_slug(tok), tok)
            if other != tok:
                raise CtxscaleError(
                    f"config: families[{i}].tokenizer: {tok!r} and {other!r} would share the "
                    f"prompts folder {tokenizer_slug(tok)!r}; name one otherwise"
                )
    mini = bool(config["miniworld"]["activate"])
    if config["families"] and not config["datasets"]:
        raise CtxscaleError("config: datasets: [] should be non-empty (the families run on them)")
    if not config["families"] and not (mini and config["miniworld"]["families"]):
        raise CtxscaleError(
            "config: families: [] should be non-empty (or activate the miniworld with families)"
        )
    if mini:
        check_miniworld(config["miniworld"])
    lo, hi = config["data"]["dm_difficulty"]
    if lo > hi:
        raise CtxscaleError(
            f"config: data.dm_difficulty: [{lo:g}, {hi:g}] is reversed; give [low, high]"
        )


def check_miniworld(mw: dict[str, Any]) -> None:
    """The miniature world's own rules: unique family names, trained families with a
    ladder, extensions of an earlier family's ladder step, a head size that divides."""
    from ctxscale.mini import world

    names: set[str] = set()
    for i, fam in enumerate(mw["families"]):
        where = f"config: miniworld.families[{i}]"
        if fam["name"] in names:
            raise CtxscaleError(f"{where}.name: family {fam['name']!r} is defined twice")
        names.add(fam["name"])
        if not fam.get("base_family") and not fam.get("steps"):
            raise CtxscaleError(f"{where}: needs steps (a ladder) or base_family")
        shape = {**mw["model"], **(fam.get("model") or {})}
        if shape["hidden_size"] % shape["num_attention_heads"]:
            raise CtxscaleError(
                f"{where}.model: hidden_size {shape['hidden_size']} is not a multiple of "
                f"num_attention_heads {shape['num_attention_heads']}"
            )
    world.checkpoints(mw)  # extension bases and names


#: ``data.tokenizer`` value that chooses the tokenizer-free length estimate, ceil(bytes / 4).
BYTES_DIV_4 = "bytes/4"


def check_paper_scale(config: dict[str, Any]) -> None:
    """Refuse default-scale settings that would change the paper-scale numbers.

    Presets are merged over ``config.yaml`` key by key, so a default-scale value the preset
    does not restate leaks into it: a ``data.max_new_tokens`` cap would cut GSM8K's 400 new
    tokens, and a missing ``data.tokenizer`` would filter instances by bytes / 4 silently.
    """
    if config.get("scale") != "paper":
        return
    data = config["data"]
    if data.get("max_new_tokens") is not None:
        raise CtxscaleError(
            f"config: data.max_new_tokens: {data['max_new_tokens']} caps every dataset's new "
            "tokens at scale paper; set it to null so each dataset keeps its own"
        )
    if not data.get("tokenizer"):
        raise CtxscaleError(
            "config: data.tokenizer: scale paper needs the models' tokenizer for the "
            f"instance-length filter (or {BYTES_DIV_4!r} to choose the estimate explicitly)"
        )


def merge_configs(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge config files as Snakemake's ``--configfile`` does: later ones update earlier
    ones, mappings key by key, everything else (lists included) replaced whole. One file is
    itself (no Snakemake needed: a job in vLLM's environment reads the resolved config)."""
    if len(layers) == 1:
        return copy.deepcopy(layers[0])
    from snakemake.utils import update_config

    merged: dict[str, Any] = {}
    for layer in layers:
        update_config(merged, copy.deepcopy(layer))
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CtxscaleError(f"config {path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise CtxscaleError(f"config {path}:{where} is not valid YAML") from None
    if data is not None and not isinstance(data, dict):
        raise CtxscaleError(f"config {path}: the top level must be a mapping of settings")
    return data or {}


def expand_datasets(names: list[str]) -> list[str]:
    """Registry names as given; a group name (``dm_math``) becomes its members, in order.

    Unknown names are an error listing the known ones.
    """
    # imported here: ctxscale.data.tasks imports this module
    from ctxscale.data.tasks import registry

    known = list(registry())
    out: list[str] = []
    for name in names:
        members = [name] if name in known else [k for k in known if k.startswith(name + "__")]
        if not members:
            groups = sorted({k.split("__")[0] for k in known if "__" in k})
            plain = [k for k in known if "__" not in k]
            listed = ", ".join(plain + [f"{g} (all modules)" for g in groups])
            raise CtxscaleError(f"config: datasets: unknown dataset {name!r}; known: {listed}")
        out += [m for m in members if m not in out]
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill in the defaults."""
    return load_configs([path])


def load_configs(paths: list[str | Path]) -> dict[str, Any]:
    """Read config files, merge them as Snakemake does (:func:`merge_configs`), validate."""
    if not paths:
        raise CtxscaleError("config: no config file given")
    merged = merge_configs([_read_yaml(Path(p)) for p in paths])
    try:
        return validate_config(merged)
    except CtxscaleError as exc:
        raise CtxscaleError(f"{' + '.join(map(str, paths))}: {exc}") from None


def dump_config(config: dict[str, Any]) -> str:
    """Canonical YAML text of a config (sorted keys), identical for equal configs."""
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False, allow_unicode=True)


def config_digest(config: dict[str, Any]) -> str:
    """Short sha256 of the canonical config: names the resolved copy the workflow writes."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_config(config: dict[str, Any], path: str | Path) -> Path:
    """Write the canonical YAML of ``config`` to ``path`` unless it already holds exactly that.

    Leaving an identical file untouched keeps its mtime, so Snakemake sees nothing new.
    """
    path = Path(path)
    text = dump_config(config)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, text)
    return path


AGGREGATIONS = {
    "dataset_groups": "a group's datasets (DeepMind Mathematics modules) are averaged into one "
    "dataset first, then the task's datasets equally",
    "datasets": "every dataset of the task equally (each DeepMind Mathematics module counts "
    "as one dataset)",
}


def _measure(tok: str | None) -> str:
    return (
        "ceil(UTF-8 bytes / 4), no tokenizer"
        if tok in (None, BYTES_DIV_4)
        else f"the tokenizer {tok}"
    )


def family_tokenizers(config: dict[str, Any]) -> dict[str, str | None]:
    """{family: the tokenizer its length filter measures with} (its own, else data.tokenizer)."""
    shared = (config.get("data") or {}).get("tokenizer")
    return {f["name"]: f.get("tokenizer", shared) for f in config.get("families") or []}


def length_filter(config: dict[str, Any]) -> str:
    """How the instance-length filter measures tokens, in words (reported, never silent):
    with data.tokenizer, and with each family's own tokenizer where it has one."""
    data = config.get("data") or {}
    tok = data.get("tokenizer")
    chosen = "" if tok else " (data.tokenizer unset: the estimate by default)"
    limit = data.get("max_instance_tokens", default("data.max_instance_tokens"))
    line = f"examples over {limit} tokens dropped; measured with {_measure(tok)}{chosen}"
    own: dict[str, list[str]] = {}
    for family, ftok in family_tokenizers(config).items():
        if ftok != tok:
            own.setdefault(str(ftok), []).append(family)
    if own:
        line += ", except: " + "; ".join(
            f"{_measure(t)} for {', '.join(fams)}" for t, fams in own.items()
        )
    return line


def resolved_rows(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Per dataset of a validated config: task, aggregation group and the new-token limits."""
    from ctxscale.analysis.aggregate import dataset_group
    from ctxscale.data.prompts_cap import effective_max_new_tokens
    from ctxscale.data.tasks import get_spec

    cap = config["data"]["max_new_tokens"]
    rows = []
    for name in config["datasets"]:
        spec = get_spec(name)
        rows.append(
            {
                "dataset": name,
                "task": spec.task,
                "group": dataset_group(name),
                "max_new_tokens": effective_max_new_tokens(spec.max_new_tokens, cap),
                "registry_max_new_tokens": spec.max_new_tokens,
            }
        )
    return rows


def _whose(config: dict[str, Any], tok: str | None) -> str:
    """Whose tokenizer a family's filter uses, and where its prompts files go."""
    from ctxscale.artifacts import prompts_dir

    if tok == config["data"]["tokenizer"]:
        return f"data.tokenizer; prompts {prompts_dir()}"
    return f"its own; prompts {prompts_dir(tok)}"


def resolved_summary(config: dict[str, Any], sources: list[str]) -> str:
    """What the resolved config runs: per-dataset max new tokens, length filter, aggregation."""
    agg = config["scores"]["aggregation"]
    cap = config["data"]["max_new_tokens"]
    lines = [
        f"# config: {' + '.join(sources)} (scale {config['scale']})",
        f"# length filter: {length_filter(config)}",
        *(
            f"# length filter of family {family}: {_measure(tok)} ({_whose(config, tok)})"
            for family, tok in family_tokenizers(config).items()
        ),
        *(
            [f"# backend of every model: {config['backend']} (config backend)"]
            if config.get("backend")
            else []
        ),
        f"# aggregation: {agg}: {AGGREGATIONS[agg]}",
        "# max_new_tokens: "
        + ("each dataset's own (registry)" if cap is None else f"capped at {cap}"),
        "dataset\ttask\tgroup\tmax_new_tokens\tregistry_max_new_tokens",
    ]
    for r in resolved_rows(config):
        lines.append("\t".join(str(r[k]) for k in r))
    return "\n".join(lines) + "\n"


def _run(args: Any) -> int:
    config = load_configs(args.config)
    if args.out:
        write_config(config, args.out)
        print(f"config: {' + '.join(args.config)} is valid -> {args.out}")
    elif args.resolved:
        print(resolved_summary(config, args.config), end="")
    else:
        print(dump_config(config), end="")
    return 0


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "config",
        help="validate config files and print (or write) the resolved config",
        description="Merge CONFIG files as Snakemake's --configfile does (later ones update "
        "earlier ones), validate, and print the resolved config with every default filled in.",
    )
    p.add_argument(
        "config",
        nargs="+",
        help="experiment config(s) (YAML), e.g. config.yaml workflow/presets/paper.yaml",
    )
    p.add_argument("--out", help="write the resolved config here instead of printing it")
    p.add_argument(
        "--resolved",
        action="store_true",
        help="print what runs per dataset (max new tokens, task, aggregation group), the "
        "length filter's tokenizer and the task aggregation",
    )
    p.set_defaults(func=_run)
