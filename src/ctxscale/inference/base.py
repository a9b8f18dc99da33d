"""The backend interface: one prompts file in, one generation per instance out.

A prompts file (``results/prompts/{dataset}/{n_shots}.json``, or under
``results/prompts/by_tokenizer/{slug}/`` for a family's own length-filter tokenizer:
:func:`ctxscale.artifacts.prompts_for`) holds a ``prefix`` shared by
every instance (instruction + demonstrations) and one ``suffix`` per instance. Backends
tokenise each full prompt ``prefix + suffix`` as one text (as the original evaluation did:
the tokenizer may merge across the boundary, e.g. the ``\n\n`` separator with the next
word) with BOS once in front, and reuse the longest run of leading tokens that all prompts
of the file share (:func:`shared_prefix_len`): its KV cache is computed once. ``n_pmt`` is
the prompt length in tokens, BOS included.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctxscale.errors import CtxscaleError

if TYPE_CHECKING:
    from ctxscale.inference.fetch import ModelSource
    from ctxscale.models import ModelSpec

# Status of a record: the prompt ran ...
STATUS_OK = "ok"
# ... or it did not fit in the backend's maximum sequence length (max_model_len).
STATUS_OVER_MAX_LEN = "over_max_model_len"

_PROMPT_KEYS = ("dataset", "n_shots", "prefix", "stop", "max_new_tokens", "metric", "instances")


@dataclass(frozen=True)
class Instance:
    """One evaluation instance of a prompts file: its full prompt is ``prefix + suffix``."""

    id: str
    suffix: str
    reference: Any


@dataclass(frozen=True)
class PromptFile:
    """The content of one prompts file, validated."""

    dataset: str
    task: str
    n_shots: int
    seed: int
    prefix: str
    stop: tuple[str, ...]
    max_new_tokens: int
    metric: str
    instances: tuple[Instance, ...]


@dataclass(frozen=True)
class Generation:
    """What a backend returns for one instance."""

    n_pmt: int  # prompt tokens: BOS + prefix + suffix
    output: str  # generated text, cut before the first stop string
    n_gen: int  # generated tokens, up to and including the one that ended generation
    status: str = STATUS_OK


def load_prompts(path: str | Path) -> PromptFile:
    """Read and check a prompts file; a bad one gives a CtxscaleError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CtxscaleError(f"prompts file {path} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CtxscaleError(f"prompts file {path} is not valid JSON: {exc}") from None
    return prompts_from_dict(raw, where=str(path))


def prompts_from_dict(raw: Any, where: str = "prompts") -> PromptFile:
    """Validate the dict form of a prompts file (see :func:`load_prompts`)."""
    if not isinstance(raw, dict):
        raise CtxscaleError(f"{where}: expected a JSON object")
    missing = [k for k in _PROMPT_KEYS if k not in raw]
    if missing:
        raise CtxscaleError(f"{where}: missing key(s) {', '.join(missing)}")
    stop = raw["stop"]
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise CtxscaleError(f"{where}: 'stop' must be a list of non-empty strings")
    if not isinstance(raw["max_new_tokens"], int) or raw["max_new_tokens"] < 1:
        raise CtxscaleError(f"{where}: 'max_new_tokens' must be a positive integer")
    if not isinstance(raw["prefix"], str):
        raise CtxscaleError(f"{where}: 'prefix' must be a string")
    instances = []
    seen: set[str] = set()
    for i, inst in enumerate(raw["instances"]):
        if not isinstance(inst, dict) or "id" not in inst or "suffix" not in inst:
            raise CtxscaleError(f"{where}: instances[{i}] needs 'id' and 'suffix'")
        if not isinstance(inst["suffix"], str):
            raise CtxscaleError(f"{where}: instances[{i}] 'suffix' must be a string")
        iid = str(inst["id"])
        if iid in seen:
            raise CtxscaleError(f"{where}: instance id {iid!r} appears twice")
        seen.add(iid)
        instances.append(Instance(id=iid, suffix=inst["suffix"], reference=inst.get("reference")))
    return PromptFile(
        dataset=str(raw["dataset"]),
        task=str(raw.get("task", "")),
        n_shots=int(raw["n_shots"]),
        seed=int(raw.get("seed", 0)),
        prefix=raw["prefix"],
        stop=tuple(stop),
        max_new_tokens=int(raw["max_new_tokens"]),
        metric=str(raw["metric"]),
        instances=tuple(instances),
    )


def leading_bos(tokenizer: Any) -> list[int]:
    """``[BOS]`` if the tokenizer puts one in front of a text by default, else ``[]``."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and len(with_special) > len(plain) and with_special[0] == bos:
        return [bos]
    return []


def encode_prompts(tokenizer: Any, prefix: str, suffixes: Sequence[str]) -> list[list[int]]:
    """Token ids of each full prompt: BOS (if the model uses one) + ``prefix + suffix``.

    One batched tokenizer call: the same ids as a call per prompt, in 40-60% of its time
    (a call per prompt was about a tenth of a miniature model's evaluation job).
    """
    if not suffixes:
        return []
    bos = leading_bos(tokenizer)
    ids = tokenizer([prefix + s for s in suffixes], add_special_tokens=False)["input_ids"]
    return [bos + list(row) for row in ids]


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Leading tokens common to every prompt, leaving each prompt at least one token of its own.

    Computed over all instances of a prompts file (not just those left to run), so a resumed
    run splits every prompt where an unbroken run did.
    """
    if not prompts:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first occurrence of any stop string, and whether one occurred.

    The stop string itself is not part of the output (as in vLLM and the original).
    """
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


class StopChecker:
    """Finds the first stop string in a growing generation without decoding it whole each step.

    :meth:`check` is called after every new token. It decodes only the last ``window``
    tokens (four per character of the longest stop string, as a byte-level token holds one
    byte or more, plus a margin for merged or partial characters at the window's head): a
    stop string that first appears with the newest token lies inside that tail. A hit in the
    tail is confirmed on the whole decoded generation, so the verdict, and :meth:`final`'s
    text (``cut_at_stop`` of the whole decoded generation), are those of decoding it whole.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.window = 4 * max((len(s) for s in self.stop), default=0) + 8

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def check(self, ids: Sequence[int]) -> bool:
        """Whether the decoded ``ids`` hold a stop string."""
        if not self.stop:
            return False
        tail = self._decode(ids[-self.window :])
        if not any(s in tail for s in self.stop):
            return False
        return len(ids) <= self.window or cut_at_stop(self._decode(ids), self.stop)[1]

    def final(self, ids: Sequence[int]) -> str:
        """The output: the decoded ``ids`` up to the first stop string."""
        return cut_at_stop(self._decode(ids), self.stop)[0]


@dataclass(frozen=True)
class Capabilities:
    """What an engine runs, declared beside it (``Backend.capabilities``) and checked before a
    model loads, so a model the engine cannot run fails in one line, not deep inside it."""

    devices: tuple[str, ...]
    #: sliding-window attention (Gemma-2/3) with batched outputs equal to unbatched ones
    sliding_window: bool
    #: how prompts past the model's n_ctx run ("" where they cannot)
    past_n_ctx: str
    #: the activations of a Llama model's gated MLP it runs (None: any)
    llama_activations: tuple[str, ...] | None = None
    #: the Python package the engine needs (None: ctxscale's own dependencies)
    package: str | None = None


class Backend(ABC):
    """An inference engine for one model. Subclasses are constructed once per shard, by
    :meth:`from_config`; :data:`BACKENDS` registers them by name."""

    name: str = ""
    capabilities: Capabilities
    #: The model's Hugging Face tokenizer; every backend tokenises prompts the same way.
    tokenizer: Any = None

    def encode(self, prefix: str, suffixes: Sequence[str]) -> list[list[int]]:
        """Token ids of each full prompt (see :func:`encode_prompts`)."""
        return encode_prompts(self.tokenizer, prefix, suffixes)

    def close(self) -> None:
        """Free what the loaded model holds before another loads in the same process (a
        no-op where garbage collection is enough)."""
        return None

    @classmethod
    def check_available(cls) -> None:
        """Raise CtxscaleError if the engine cannot run here (called before any work)."""
        return None

    @classmethod
    def check_model(cls, model: str, hf_config: dict[str, Any]) -> None:
        """Refuse, before loading, a model whose ``config.json`` (``hf_config``) asks for what
        the engine does not run; one line naming the model, the engine and the way out."""
        acts = cls.capabilities.llama_activations
        act = hf_config.get("hidden_act")
        if acts is not None and hf_config.get("model_type") == "llama" and act not in acts:
            raise CtxscaleError(
                f"model {model!r}: backend {cls.name!r} runs Llama MLPs with "
                f"{', '.join(acts)} only, the model's is {act!r}; use backend 'transformers'"
            )

    @classmethod
    def from_config(
        cls,
        source: ModelSource,
        spec: ModelSpec,
        opts: dict[str, Any],
        seed: int,
        batch_size: int | None = None,
    ) -> Backend:
        """Load the model with the resolved inference settings ``opts`` (config, family,
        checkpoint); ``batch_size`` overrides ``opts['batch_size']`` where it applies. Every
        registered engine defines it; :func:`ctxscale.inference.cli.make_backend` calls it."""
        raise CtxscaleError(f"backend {cls.name!r} does not define from_config")

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """The settings that determine the outputs (dtype, device, ...), for the shard header."""

    @abstractmethod
    def generate(
        self,
        prefix: str,
        suffixes: Sequence[str],
        stop: Sequence[str],
        max_new_tokens: int,
        start: int = 0,
    ) -> Iterator[Generation]:
        """Greedy generations for ``prefix + suffix`` of ``suffixes[start:]``, in order.

        All suffixes are given even when resuming at ``start``, so batching and the shared
        prefix are those of an unbroken run (byte-identical shards after a restart).
        """


# Registered backends: name -> "module:Class". Modules are imported only when used, so a
# machine without vLLM never imports it.
BACKENDS: dict[str, str] = {
    "transformers": "ctxscale.inference.hf:TransformersBackend",
    "vllm": "ctxscale.inference.vllm_backend:VLLMBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as ``name``; unknown names list the known ones."""
    if name not in BACKENDS:
        raise CtxscaleError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
