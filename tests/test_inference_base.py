"""Prompts files, stop strings, the backend registry and the vLLM request construction."""

from __future__ import annotations

import json

import pytest

from ctxscale.errors import CtxscaleError
from ctxscale.inference import backend_class, cut_at_stop, load_prompts
from ctxscale.inference.fetch import ModelSource
from ctxscale.inference.vllm_backend import (
    VLLMBackend,
    engine_env,
    engine_kwargs,
    plan_requests,
    sampling_kwargs,
)
from ctxscale.models import ModelSpec

PROMPTS = {
    "dataset": "dm_math_add",
    "task": "arithmetic",
    "n_shots": 1,
    "seed": 31337,
    "prefix": "Question: 1+1?\nAnswer: 2\n\n",
    "stop": ["\n\n"],
    "max_new_tokens": 8,
    "metric": "math_equivalence",
    "instances": [{"id": "a", "suffix": "Question: 2+2?\nAnswer:", "reference": "4"}],
}


def write(tmp_path, obj):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_load_prompts(tmp_path):
    p = load_prompts(write(tmp_path, PROMPTS))
    assert p.stop == ("\n\n",) and p.instances[0].reference == "4" and p.n_shots == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"prefix": None}, "'prefix' must be a string"),
        ({"stop": [""]}, "'stop' must be a list"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"instances": [{"id": "a"}]}, "needs 'id' and 'suffix'"),
        ({"instances": [{"id": "a", "suffix": ""}, {"id": "a", "suffix": ""}]}, "twice"),
    ],
)
def test_bad_prompts_are_named(tmp_path, patch, message):
    with pytest.raises(CtxscaleError, match=message):
        load_prompts(write(tmp_path, {**PROMPTS, **patch}))


def test_missing_key_and_bad_json(tmp_path):
    with pytest.raises(CtxscaleError, match="missing key.*metric"):
        load_prompts(write(tmp_path, {k: v for k, v in PROMPTS.items() if k != "metric"}))
    with pytest.raises(CtxscaleError, match="not valid JSON"):
        load_prompts(write(tmp_path, "{"))
    with pytest.raises(CtxscaleError, match="does not exist"):
        load_prompts(tmp_path / "nope.json")


def test_cut_at_stop_takes_earliest_stop():
    assert cut_at_stop(" 4\n\nQuestion", ["\n\n"]) == (" 4", True)
    assert cut_at_stop("a.b;c", [";", "."]) == ("a", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
    assert cut_at_stop("abc", []) == ("abc", False)


def test_unknown_backend_lists_known():
    with pytest.raises(CtxscaleError, match="unknown backend 'tgi'; known backends: transformers"):
        backend_class("tgi")


def test_vllm_missing_is_one_clear_error(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(CtxscaleError, match="needs the vllm package"):
        backend_class("vllm").check_available()
    assert backend_class("vllm") is VLLMBackend


def spec(n_ctx=4096, **settings):
    return ModelSpec(
        name="llama-2-7b",
        family="llama-2-7b-yarn",
        role="fit",
        N=6.476e9,
        D=2e12,
        n_ctx=n_ctx,
        backend="vllm",
        hub_id="meta/llama",
        settings=settings,
    )


def test_engine_kwargs_paper_settings():
    opts = {"tensor_parallel_size": 2, "max_model_len": 131072, "dtype": "auto"}
    kw = engine_kwargs(ModelSource("meta/llama", revision="abc"), spec(), opts, seed=31337)
    assert kw["dtype"] == "bfloat16" and kw["tensor_parallel_size"] == 2
    assert kw["max_model_len"] == 131072 and kw["enable_prefix_caching"] is True
    assert kw["seed"] == 31337 and kw["revision"] == "abc" and kw["model"] == "meta/llama"
    assert kw["enforce_eager"] is False  # compiled unless asked (a CPU check asks)
    assert engine_kwargs(ModelSource("m"), spec(), {"enforce_eager": True}, 1)["enforce_eager"]
    # A base 4k model run to 128k: long max length allowed, rotary table extended (unscaled).
    assert kw["hf_overrides"] == {"max_position_embeddings": 131072}
    assert engine_env(spec(), opts) == {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}


def test_engine_kwargs_within_limit_and_rope_override():
    kw = engine_kwargs(ModelSource("m"), spec(n_ctx=8192), {}, seed=1)
    assert kw["max_model_len"] == 8192 and "hf_overrides" not in kw
    assert engine_env(spec(n_ctx=8192), {}) == {}
    rope = {"rope_type": "linear", "factor": 2.0}
    kw = engine_kwargs(ModelSource("m"), spec(), {"rope_parameters": rope}, seed=1)
    assert kw["hf_overrides"] == {"rope_parameters": rope}
    kw = engine_kwargs(
        ModelSource("m"), spec(), {"max_model_len": 9000, "extend_rope": False}, seed=1
    )
    assert "hf_overrides" not in kw


def test_engine_kwargs_refuses_gguf_file():
    with pytest.raises(CtxscaleError, match="not a GGUF file"):
        engine_kwargs(ModelSource("/m", gguf_file="x.gguf"), spec(), {}, seed=1)


def test_engine_kwargs_refuses_kv_dtype():
    assert engine_kwargs(ModelSource("m"), spec(), {"kv_dtype": None}, seed=1)
    with pytest.raises(CtxscaleError, match="kv_dtype is a transformers-backend setting"):
        engine_kwargs(ModelSource("m"), spec(), {"kv_dtype": "float8_e4m3fn"}, seed=1)


def test_sampling_is_greedy_with_stops():
    kw = sampling_kwargs(["\n\n"], 400, seed=31337)
    assert kw["temperature"] == 0.0 and kw["max_tokens"] == 400 and kw["stop"] == ["\n\n"]
    assert kw["include_stop_str_in_output"] is False and kw["n"] == 1


def test_shared_prefix_len():
    from ctxscale.inference.base import shared_prefix_len

    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # each keeps one token of its own
    assert shared_prefix_len([[1, 2, 3]]) == 2
    assert shared_prefix_len([[4], [4, 5]]) == 0
    assert shared_prefix_len([]) == 0


def test_plan_requests_caps_at_max_model_len():
    assert plan_requests([10, 95, 100, 150], 8, 100) == [8, 5, None, None]


@pytest.mark.slow
def test_vllm_generate_with_a_fake_engine(tmp_path):
    """Requests, chunking, over-length records and token counts, with vLLM replaced by a fake."""
    from types import SimpleNamespace

    from _inference_tiny import build_tiny_model
    from transformers import AutoTokenizer

    from ctxscale.inference.hf import TransformersBackend

    path = build_tiny_model(tmp_path / "tiny", bos=True)
    tok = AutoTokenizer.from_pretrained(str(path))
    calls = []

    def completion(n_pmt: int) -> SimpleNamespace:
        # vLLM's text decodes in the prompt's context (a leading space here); the record
        # must hold the ids decoded on their own, cut at the stop string
        ids = tok(f"out{n_pmt}\n\nmore", add_special_tokens=False)["input_ids"]
        return SimpleNamespace(text=f" out{n_pmt}", token_ids=ids)

    class FakeLLM:
        def generate(self, prompts, params, use_tqdm):
            calls.append((prompts, params))
            return [
                SimpleNamespace(outputs=[completion(len(p["prompt_token_ids"]))]) for p in prompts
            ]

    backend = object.__new__(VLLMBackend)  # no engine: only what generate() uses
    backend.tokenizer = tok
    backend.llm, backend._sampling, backend.seed, backend.chunk = FakeLLM(), dict, 5, 2
    backend.kwargs = {"max_model_len": 40}
    prefix = "Question: What is 3 + 4?\nAnswer: 7\n\n"
    suffixes = ["Question: x?\nAnswer:", "Q " * 30, "Q", "Question: What is 2 * 9?\nAnswer:"]
    gens = list(backend.generate(prefix, suffixes, ["\n\n"], max_new_tokens=8))
    # Same ids as the transformers backend: BOS once, each full prompt tokenised as one text.
    hf = TransformersBackend(ModelSource(str(path)), threads=1)
    prompts = hf.encode(prefix, suffixes)
    n_pmts = [len(p) for p in prompts]
    assert [g.n_pmt for g in gens] == n_pmts
    assert n_pmts[1] >= 40 and gens[1].status == "over_max_model_len" and gens[1].n_gen == 0
    for g in (gens[0], gens[2], gens[3]):
        assert g.status == "ok" and g.output == f"out{g.n_pmt}"
        assert g.n_gen == len(completion(g.n_pmt).token_ids)
    assert [len(p) for p, _ in calls] == [1, 2]  # chunks of 2; the long prompt never sent
    sent = [(p, sp) for ps, sps in calls for p, sp in zip(ps, sps, strict=True)]
    assert all(sp["max_tokens"] == min(8, 40 - len(p["prompt_token_ids"])) for p, sp in sent)
    assert calls[0][0][0]["prompt_token_ids"] == prompts[0]
    assert calls[0][1][0]["temperature"] == 0.0 and calls[0][1][0]["stop"] == ["\n\n"]


def test_every_registered_backend_declares_what_it_runs_and_how_it_is_built():
    import inspect

    from ctxscale.inference.base import BACKENDS, Backend, Capabilities

    for name in BACKENDS:
        cls = backend_class(name)
        assert cls.name == name
        assert isinstance(cls.capabilities, Capabilities) and cls.capabilities.devices
        assert not inspect.isabstract(cls), f"{name} leaves an abstract method"
        assert cls.from_config.__func__ is not Backend.from_config.__func__, name


def test_a_new_engine_is_one_class_and_one_registry_entry(monkeypatch, tmp_path):
    """make_backend builds whatever BACKENDS names, with the resolved settings."""
    import sys
    import types

    from ctxscale.inference import cli as infer_cli
    from ctxscale.inference.base import BACKENDS, Backend, Capabilities

    class Echo(Backend):
        name = "echo"
        capabilities = Capabilities(devices=("cpu",), sliding_window=False, past_n_ctx="")

        def __init__(self, spec, opts, seed):
            self.spec, self.opts, self.seed = spec, opts, seed

        @classmethod
        def from_config(cls, source, spec, opts, seed, batch_size=None):
            return cls(spec, {**opts, "batch_size": batch_size or opts["batch_size"]}, seed)

        def settings(self):
            return {}

        def generate(self, prefix, suffixes, stop, max_new_tokens, start=0):
            return iter(())

    module = types.ModuleType("echo_engine")
    module.Echo = Echo
    monkeypatch.setitem(sys.modules, "echo_engine", module)
    monkeypatch.setitem(BACKENDS, "echo", "echo_engine:Echo")
    model = ModelSpec(
        name="tiny",
        family="tiny",
        role="fit",
        N=1e6,
        D=1e9,
        n_ctx=64,
        backend="echo",
        path=str(tmp_path),
        settings={"batch_size": 4},
    )
    config = {"seed": 7, "inference": {"batch_size": 2, "dtype": "float32"}}
    made = infer_cli.make_backend("echo", model, config, tmp_path)
    assert isinstance(made, Echo) and made.seed == 7
    assert made.opts["batch_size"] == 4 and made.opts["dtype"] == "float32"  # checkpoint wins
    assert infer_cli.make_backend("echo", model, config, tmp_path, 16).opts["batch_size"] == 16


@pytest.mark.parametrize("act", ["relu", "gelu_new"])
def test_vllm_refuses_a_llama_mlp_it_cannot_run_before_loading(tmp_path, act):
    from ctxscale.inference import cli as infer_cli

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_act": act}))
    source = ModelSource(str(tmp_path))
    with pytest.raises(CtxscaleError) as err:
        infer_cli.check_model_runs("vllm", spec(), source)
    assert str(err.value) == (
        f"model 'llama-2-7b': backend 'vllm' runs Llama MLPs with silu, gelu, "
        f"gelu_pytorch_tanh only, the model's is {act!r}; use backend 'transformers'"
    )
    infer_cli.check_model_runs("transformers", spec(), source)  # any activation
    for ok in ("silu", "gelu", "gelu_pytorch_tanh"):  # vLLM's own; ctxscale's plugin
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_act": ok}))
        infer_cli.check_model_runs("vllm", spec(), source)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma2", "hidden_act": act}))
    infer_cli.check_model_runs("vllm", spec(), source)  # not a Llama MLP: vLLM's own choice


def test_a_gated_gelu_llama_runs_as_ctxscales_vllm_architecture():
    from ctxscale.inference.vllm_backend import engine_kwargs
    from ctxscale.inference.vllm_models import GELU_LLAMA, architecture_overrides

    gelu = {"model_type": "llama", "hidden_act": "gelu"}
    assert architecture_overrides(gelu) == {"architectures": [GELU_LLAMA]}
    assert architecture_overrides({"model_type": "llama", "hidden_act": "silu"}) == {}
    assert architecture_overrides({"model_type": "gemma2", "hidden_act": "gelu"}) == {}
    kw = engine_kwargs(ModelSource("m"), spec(), {}, 0, gelu)
    assert kw["hf_overrides"] == {"architectures": [GELU_LLAMA]}
    assert "hf_overrides" not in engine_kwargs(ModelSource("m"), spec(), {}, 0, {})
    # the config's own hf_overrides are merged last and win
    mine = {"hf_overrides": {"architectures": ["LlamaForCausalLM"]}}
    assert engine_kwargs(ModelSource("m"), spec(), mine, 0, gelu)["hf_overrides"] == {
        "architectures": ["LlamaForCausalLM"]
    }


def test_backends_command_lists_each_engine_with_what_it_runs(capsys):
    from ctxscale.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert out.count("  devices: ") == 2
    assert "transformers (ctxscale.inference.hf:TransformersBackend)" in out
    assert "  Llama MLP activations: silu, gelu, gelu_pytorch_tanh" in out
    assert "  runs here: yes" in out


def test_a_gelu_llama_is_refused_without_the_models_plugin(tmp_path, monkeypatch):
    from transformers import LlamaConfig

    from ctxscale.inference import vllm_backend as vb

    LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        hidden_act="gelu",
    ).save_pretrained(tmp_path)
    monkeypatch.setattr(vb.VLLMBackend, "check_available", classmethod(lambda cls: None))
    monkeypatch.setattr(vb, "models_plugin_installed", lambda: False)
    with pytest.raises(CtxscaleError, match="Llama MLP is 'gelu'.*'ctxscale_models' plugin"):
        vb.VLLMBackend(ModelSource(str(tmp_path)), spec(), {}, 0)
