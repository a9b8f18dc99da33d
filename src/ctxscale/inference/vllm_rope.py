"""A YaRN rotary table that reaches ``max_model_len``: a vLLM plugin, loaded in every process.

vLLM builds a YaRN rotary embedding's cos/sin cache for
``original_max_position_embeddings * factor`` positions (the checkpoint's ``n_ctx``),
whatever ``max_model_len`` is, so a prompt past ``n_ctx`` reads past the table. The
paper's runs go past ``n_ctx`` on purpose (the penalty region), as the original does for
base models by patching their RoPE cache. This module extends the YaRN table the same way:
the same YaRN frequencies and magnitude scale, at every position up to ``max_model_len``.

vLLM runs the model in worker processes, so the patch is a vLLM *general plugin* (entry
point group ``vllm.general_plugins`` in ``pyproject.toml``), which vLLM loads in each of
them. It patches only when ``CTXSCALE_ROPE_MAX_POSITIONS`` is set; the vLLM backend sets
it, and refuses to run YaRN past ``n_ctx`` when the plugin is not installed.
"""

from __future__ import annotations

import math
import os
from importlib import metadata
from typing import Any

#: Positions the patched YaRN tables cover (set by the vLLM backend for its engine).
ENV_MAX_POSITIONS = "CTXSCALE_ROPE_MAX_POSITIONS"
#: The plugin's name (entry point in group ``vllm.general_plugins``).
PLUGIN_NAME = "ctxscale_rope"
PLUGIN_GROUP = "vllm.general_plugins"
_YARN_MODULES = (
    "vllm.model_executor.layers.rotary_embedding",
    "vllm.model_executor.layers.rotary_embedding.yarn_scaling_rope",
)


def yarn_table_positions(rotary: Any) -> int:
    """Positions vLLM's own YaRN table covers: original max positions x scaling factor."""
    return math.ceil(rotary.max_position_embeddings * rotary.scaling_factor)


def extended_cos_sin_cache(rotary: Any, max_positions: int) -> Any:
    """YaRN's cos/sin cache (cos | sin, scaled by ``mscale``) for ``max_positions`` positions
    or vLLM's own count, whichever is larger; rows vLLM has are unchanged."""
    import torch

    inv_freq = rotary._compute_inv_freq(rotary.scaling_factor)
    n = max(yarn_table_positions(rotary), int(max_positions))
    t = torch.arange(n, dtype=torch.float32)
    freqs = torch.einsum("i,j -> ij", t, inv_freq)
    return torch.cat((freqs.cos() * rotary.mscale, freqs.sin() * rotary.mscale), dim=-1)


def patch_yarn_class(cls: type, max_positions: int) -> None:
    """Make every new ``cls`` (vLLM's ``YaRNScalingRotaryEmbedding``) build its table for
    ``max_positions`` positions. Idempotent; the largest request wins."""
    if max_positions < 1:
        raise ValueError(f"{ENV_MAX_POSITIONS} must be a positive integer, got {max_positions}")
    current = getattr(cls, "_ctxscale_max_positions", 0)
    cls._ctxscale_max_positions = max(current, int(max_positions))
    if current:
        return

    def _compute_cos_sin_cache(self: Any) -> Any:
        return extended_cos_sin_cache(self, type(self)._ctxscale_max_positions)

    cls._compute_cos_sin_cache = _compute_cos_sin_cache


def _yarn_class() -> type | None:
    import importlib

    for name in _YARN_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        cls = getattr(module, "YaRNScalingRotaryEmbedding", None)
        if cls is not None:
            return cls
    return None


def register() -> None:
    """vLLM plugin entry point: patch the YaRN table when the backend asked for it."""
    wanted = os.environ.get(ENV_MAX_POSITIONS)
    if not wanted:
        return
    cls = _yarn_class()
    if cls is None:
        raise RuntimeError(
            f"{ENV_MAX_POSITIONS} is set but this vLLM has no YaRNScalingRotaryEmbedding to patch"
        )
    patch_yarn_class(cls, int(wanted))


def plugin_installed(name: str = PLUGIN_NAME) -> bool:
    """Whether vLLM will load the plugin ``name`` (this one by default): its entry point is
    installed and ``VLLM_PLUGINS`` (vLLM's allow-list, when set) names it."""
    names = {ep.name for ep in metadata.entry_points(group=PLUGIN_GROUP)}
    allowed = os.environ.get("VLLM_PLUGINS")
    if allowed is not None and name not in allowed.split(","):
        return False
    return name in names
