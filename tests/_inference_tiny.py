"""A tiny random-weight Llama with a byte-level BPE tokenizer, built offline for tests."""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Question: What is 3 + 4?\nAnswer: 7\n\n",
    "Question: Calculate 12 - 5.\nAnswer: 7\n\n",
    "Question: What is the value of 2 * 9?\nAnswer: 18\n\n",
    "Solve 4*x + 8 = 0 for x. The answer is -2.",
] * 20


def build_tiny_model(
    path: Path,
    max_position_embeddings: int = 64,
    seed: int = 0,
    bos: bool = False,
    arch: str = "llama",
) -> Path:
    """Save a 2-layer Llama (hidden 32) and its tokenizer under ``path``; return ``path``.

    With ``bos`` the tokenizer puts ``<s>`` in front of every text, as Llama's does.
    ``arch="gemma3"`` builds a Gemma-3 text model instead: sliding-window layers (window 8)
    between full-attention ones, as Gemma-3-270M has (window 512).
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        CORPUS, vocab_size=300, min_frequency=1, special_tokens=["<pad>", "<s>", "</s>"]
    )
    if bos:
        from tokenizers.processors import TemplateProcessing

        bpe.post_processor = TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))]
        )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if arch == "gemma3":
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        config = Gemma3TextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=8,
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            max_position_embeddings=max_position_embeddings,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        model = Gemma3ForCausalLM(config)
    else:
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path
