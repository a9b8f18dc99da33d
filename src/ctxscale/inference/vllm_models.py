"""Llama with a gated GELU MLP for vLLM: a vLLM plugin, loaded in every process.

vLLM's Llama runs its gated MLP with SiLU only ("Unsupported activation"), but the
miniature world's checkpoints (:mod:`ctxscale.mini`) are Llama models whose MLP is
``down(gelu(gate(x)) * up(x))`` (``hidden_act: gelu``), as transformers runs them. This
module registers one more architecture with vLLM, :data:`GELU_LLAMA`: vLLM's own Llama
(attention, rotary tables, weight loading, the vllm_rope plugin's YaRN extension), with
the MLP's activation replaced by vLLM's ``GeluAndMul``. The vLLM backend asks for it with
``hf_overrides.architectures`` (:func:`architecture_overrides`) when a Llama checkpoint's
``hidden_act`` is a GELU.

Registering is a vLLM *general plugin* (entry point ``ctxscale_models`` in group
``vllm.general_plugins``), so the engine's worker processes know the architecture too;
the model class is named by its import path and imported only when vLLM builds it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ctxscale.inference.vllm_rope import plugin_installed

#: The architecture name the GELU Llama is registered under.
GELU_LLAMA = "CtxscaleGeluLlamaForCausalLM"
#: The plugin's name (entry point in group ``vllm.general_plugins``).
PLUGIN_NAME = "ctxscale_models"
#: transformers' ``hidden_act`` names of a GELU -> ``GeluAndMul``'s ``approximate``.
GELU_ACTS: dict[str, str] = {"gelu": "none", "gelu_pytorch_tanh": "tanh"}


def architecture_overrides(hf_config: dict[str, Any]) -> dict[str, Any]:
    """``hf_overrides`` that route a gated-GELU Llama checkpoint to :data:`GELU_LLAMA`;
    ``{}`` for every other model (vLLM's own class runs it)."""
    if hf_config.get("model_type") == "llama" and hf_config.get("hidden_act") in GELU_ACTS:
        return {"architectures": [GELU_LLAMA]}
    return {}


def models_plugin_installed() -> bool:
    """Whether vLLM will load this plugin (installed, and allowed by ``VLLM_PLUGINS``)."""
    return plugin_installed(PLUGIN_NAME)


def register() -> None:
    """vLLM plugin entry point: make :data:`GELU_LLAMA` known to vLLM's model registry."""
    from vllm import ModelRegistry

    if GELU_LLAMA not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(GELU_LLAMA, f"{__name__}:{GELU_LLAMA}")


def __getattr__(name: str) -> Any:
    # The vLLM classes are built on first use: importing this module must not need vLLM.
    if name == GELU_LLAMA:
        return _gelu_llama_class()
    raise AttributeError(name)


@cache
def _gelu_llama_class() -> type:
    import copy

    from vllm.model_executor.layers.activation import GeluAndMul
    from vllm.model_executor.models.llama import LlamaDecoderLayer, LlamaForCausalLM

    class GeluLlamaDecoderLayer(LlamaDecoderLayer):
        """vLLM's Llama decoder layer with ``GeluAndMul`` in its gated MLP."""

        def __init__(self, vllm_config: Any, prefix: str = "", config: Any = None) -> None:
            config = config or vllm_config.model_config.hf_config
            approximate = GELU_ACTS[config.hidden_act]
            silu = copy.copy(config)  # vLLM's LlamaMLP builds only with "silu"
            silu.hidden_act = "silu"
            super().__init__(vllm_config=vllm_config, prefix=prefix, config=silu)
            self.mlp.act_fn = GeluAndMul(approximate=approximate)

    class CtxscaleGeluLlamaForCausalLM(LlamaForCausalLM):
        """vLLM's Llama for causal LM, built from :class:`GeluLlamaDecoderLayer`."""

        def __init__(self, *, vllm_config: Any, prefix: str = "") -> None:
            super().__init__(
                vllm_config=vllm_config, prefix=prefix, layer_type=GeluLlamaDecoderLayer
            )

    return CtxscaleGeluLlamaForCausalLM
