"""Inference: backends (transformers, vLLM) behind one interface, model fetching, shards.

``ctxscale.inference.base`` defines the interface and the prompts-file reader,
``hf`` the transformers backend, ``vllm_backend`` the vLLM one, ``fetch`` the GGUF-from-PyPI
model cache and ``shards`` the resumable shard writer; ``cli`` wires ``ctxscale infer`` and
``ctxscale fetch-model``.
"""

from ctxscale.inference.base import (
    BACKENDS,
    Backend,
    Generation,
    Instance,
    PromptFile,
    backend_class,
    cut_at_stop,
    load_prompts,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "Generation",
    "Instance",
    "PromptFile",
    "backend_class",
    "cut_at_stop",
    "load_prompts",
]
