"""The miniature world's model: a Llama-shaped decoder small enough to train on a CPU.

The math is transformers' ``LlamaForCausalLM`` (RMSNorm, rotary attention, gated MLP,
untied head) written as a few plain modules, because at ~100k parameters the per-module
overhead of the library dominates a training step. Parameter names match the library's,
so :func:`ctxscale.mini.export.save_pretrained` writes a checkpoint that the transformers
backend loads unchanged. Rotary frequencies and the attention scaling come from
transformers' own rope functions, so YaRN and positional interpolation mean exactly what
they mean at inference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ctxscale.config import default
from ctxscale.mini import corpus


@dataclass(frozen=True)
class MiniConfig:
    """Shape and rotary settings of one model (the ``LlamaConfig`` fields it maps to);
    the defaults are the config schema's ``miniworld.model`` and ``miniworld.train``."""

    vocab_size: int
    hidden_size: int = default("miniworld.model.hidden_size")
    num_hidden_layers: int = default("miniworld.model.num_hidden_layers")
    num_attention_heads: int = default("miniworld.model.num_attention_heads")
    intermediate_size: int = default("miniworld.model.intermediate_size")
    rope_theta: float = default("miniworld.train.rope_theta")
    max_position_embeddings: int = default("miniworld.train.n_ctx")
    rope_type: str = "default"  # default | yarn | linear
    rope_factor: float = 1.0
    original_max_position_embeddings: int | None = None
    rms_norm_eps: float = 1e-5
    hidden_act: str = "gelu"

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def rope_parameters(self) -> dict:
        """The ``rope_parameters`` block of the transformers config."""
        params: dict = {"rope_type": self.rope_type, "rope_theta": self.rope_theta}
        if self.rope_type != "default":
            params["factor"] = float(self.rope_factor)
        if self.rope_type == "yarn":
            params["original_max_position_embeddings"] = self.original_max_position_embeddings
        return params

    def hf_config(self):
        """The equivalent ``transformers.LlamaConfig``."""
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            rope_parameters=self.rope_parameters(),
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
            bos_token_id=corpus.BOS,
            eos_token_id=corpus.EOS,
            pad_token_id=corpus.PAD,
        )

    def as_dict(self) -> dict:
        return asdict(self)


def rope_tables(cfg: MiniConfig) -> tuple[torch.Tensor, float]:
    """(inverse frequencies, attention scaling) exactly as transformers computes them."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf = cfg.hf_config()
    if cfg.rope_type == "default":
        dim = cfg.head_dim
        inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        return inv, 1.0
    inv, scale = ROPE_INIT_FUNCTIONS[cfg.rope_type](hf, "cpu")
    return inv.float(), float(scale)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class Attention(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        d, self.h, self.hd = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (
            p(x).view(b, t, self.h, self.hd).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        d, m = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(d, m, bias=False)
        self.up_proj = nn.Linear(d, m, bias=False)
        self.down_proj = nn.Linear(m, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    """``model.*`` of the checkpoint: embeddings, blocks, final norm."""

    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class MiniLM(nn.Module):
    """Decoder LM; ``forward(idx)`` returns logits of shape (batch, time, vocab)."""

    def __init__(self, cfg: MiniConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = Body(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.set_rope(cfg)

    def set_rope(self, cfg: MiniConfig) -> None:
        """Switch the rotary settings (context extension keeps the weights)."""
        self.cfg = cfg
        inv, self.attention_scaling = rope_tables(cfg)
        self.register_buffer("inv_freq", inv, persistent=False)

    def rotary(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos() * self.attention_scaling, emb.sin() * self.attention_scaling

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        cos, sin = self.rotary(idx.shape[1])
        x = self.model.embed_tokens(idx)
        for block in self.model.layers:
            x = block(x, cos, sin)
        return self.lm_head(self.model.norm(x))

    def num_params(self, non_embedding: bool = True) -> int:
        """N as the paper counts it: parameters without the input and output embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.model.embed_tokens.weight.numel() + self.lm_head.weight.numel()
        return n
