"""Write a trained miniature model as a transformers checkpoint (weights, config, tokenizer).

The directory holds ``config.json`` (a ``LlamaConfig``), ``model.safetensors`` (parameter
names as transformers' Llama), ``tokenizer.json`` and its config (a word-level tokenizer
over :func:`ctxscale.mini.corpus.vocab`, BOS added), and ``ctxscale-mini.json`` with N,
D and the training settings, so the model describes itself. The transformers backend
loads the directory like any hub checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ctxscale.mini import corpus
from ctxscale.mini.model import MiniConfig, MiniLM

INFO = "ctxscale-mini.json"


def tokenizer():
    """The miniature world's tokenizer: one token per whitespace-separated symbol."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    v = corpus.vocab()
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(v.tokens)}, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", corpus.BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<pad>",
        add_bos_token=True,
        clean_up_tokenization_spaces=False,
    )


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_pretrained(model: MiniLM, out_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write the checkpoint directory; byte-identical for identical weights and info."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hf = model.cfg.hf_config()
    hf.architectures = ["LlamaForCausalLM"]
    hf.save_pretrained(out)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "model.safetensors")
    tokenizer().save_pretrained(out)
    _write_json(out / INFO, {**info, "config": model.cfg.as_dict()})
    return out


def load(out_dir: str | Path) -> tuple[MiniLM, dict]:
    """The model and its info back from a checkpoint directory (to extend it)."""
    from safetensors.torch import load_file

    info = json.loads((Path(out_dir) / INFO).read_text(encoding="utf-8"))
    model = MiniLM(MiniConfig(**info["config"]))
    model.load_state_dict(load_file(str(Path(out_dir) / "model.safetensors")))
    return model, info
