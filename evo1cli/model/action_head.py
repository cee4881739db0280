"""The action head: a cross-modulated diffusion transformer that predicts a flow-matching velocity.

Shapes: B batch, T context tokens, E = embed_dim (896), H = horizon (50), D = action_dim (24).

    context c   = [backbone tokens (B, T, E) ; state token (B, 1, E)]       state token = MLP(state)
    x           = ActionEncoder(x_t)                                     (B, H, E)
    8 blocks:     x <- x + MHA(q = LN1(x), k = v = c)                    cross-attention only
                  x <- x + FF(LN2(x) + time_emb(t))                      time modulates every block
    velocity    = MLP(seq_pool_proj(flatten(LN(x))))                     (B, H * D) -> (B, H, D)

Parameter names and shapes are the authors' (`transformer_blocks.{i}.attn.in_proj_weight`,
`seq_pool_proj`, `mlp_head.fc1.linear`, ...), so their head state dict loads with `strict=True`.

Unlike the authors' head, cross-attention takes a key-padding mask: padding and absent-view tokens
never reach an action. The context's key/value projections depend only on the context, so
`prepare_context` computes them once per chunk and every Euler step reuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from evo1cli.errors import Evo1Error
from evo1cli.model.config import Evo1Config

TIME_TABLE_SIZE = 1000


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """pe[p, 2i] = sin(p * 10000^(-2i/dim)), pe[p, 2i+1] = cos(same); shape (1, length, dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return pe[None]


class SinusoidalTable(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(length, dim))


class Projection(nn.Module):
    """A linear layer stored as `<name>.linear`, the authors' single-embodiment layout."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """fc1 -> ReLU -> fc2 (the state encoder and the output head)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc1 = Projection(d_in, d_hidden)
        self.fc2 = Projection(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class ActionEncoder(nn.Module):
    """Per step: W1 -> ReLU -> + position -> W2 -> ReLU -> W3.  (B, H, D) -> (B, H, E)."""

    def __init__(self, action_dim: int, embed_dim: int, horizon: int):
        super().__init__()
        self.W1 = Projection(action_dim, embed_dim)
        self.W2 = Projection(embed_dim, embed_dim)
        self.W3 = Projection(embed_dim, embed_dim)
        self.pos_encoding = SinusoidalTable(horizon, embed_dim)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.W1(actions)) + self.pos_encoding.pe[:, : actions.shape[1]]
        return self.W3(F.relu(self.W2(x)))


@dataclass
class HeadContext:
    """What every Euler step of one chunk shares: per-block keys/values and the key mask."""

    keys: list[torch.Tensor]  # per block (B, heads, T + 1, E / heads)
    values: list[torch.Tensor]
    key_mask: torch.Tensor  # (B, 1, 1, T + 1) bool, True where a token may be attended

    def repeat_interleave(self, k: int) -> HeadContext:
        """Each sample's projections k times in a row: (B, ...) -> (B * k, ...), as `Tensor.repeat_interleave`."""
        return HeadContext(
            [x.repeat_interleave(k, dim=0) for x in self.keys],
            [x.repeat_interleave(k, dim=0) for x in self.values],
            self.key_mask.repeat_interleave(k, dim=0),
        )


@dataclass
class Masks:
    context: torch.Tensor  # (B, T) bool: valid backbone tokens (the state token is always valid)
    action: torch.Tensor  # (B, D) or (B, H, D) bool: active action dims


def expand_action_mask(mask: torch.Tensor, horizon: int, dim: int) -> torch.Tensor:
    """An action mask of shape (B, D) or (B, H, D) -> (B, H, D) bool."""
    if mask.ndim == 2 and mask.shape[1] == dim:
        mask = mask[:, None, :].expand(-1, horizon, -1)
    if mask.ndim != 3 or tuple(mask.shape[1:]) != (horizon, dim):
        raise Evo1Error(
            f"expected shape (B, {dim}) or (B, {horizon}, {dim}), got {tuple(mask.shape)}", field="action_mask"
        )
    return mask.bool()


class CrossAttentionBlock(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(embed_dim)
        # Used as a container of in_proj_weight / in_proj_bias / out_proj (the authors' names);
        # the attention itself is computed below so that keys and values can be cached.
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ff = nn.Sequential(nn.Linear(embed_dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, embed_dim))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, heads, L, E / heads)
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def keys_values(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project the context (B, T + 1, E) once: the rows E:3E of in_proj hold W_k and W_v."""
        e = context.shape[-1]
        kv = F.linear(context, self.attn.in_proj_weight[e:], self.attn.in_proj_bias[e:])
        k, v = kv.chunk(2, dim=-1)
        return self._split_heads(k), self._split_heads(v)

    def forward(
        self, x: torch.Tensor, time_emb: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
        backend: str,
    ) -> torch.Tensor:  # fmt: skip
        e = x.shape[-1]
        q = self._split_heads(F.linear(self.norm1(x), self.attn.in_proj_weight[:e], self.attn.in_proj_bias[:e]))
        p = self.dropout if self.training else 0.0
        if backend == "sdpa":
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=p)
        else:  # eager: the same softmax attention, written out
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
            weights = F.dropout(scores.masked_fill(~key_mask, float("-inf")).softmax(-1), p, self.training)
            a = weights @ v
        x = x + self.attn.out_proj(a.transpose(1, 2).flatten(2))
        return x + self.ff(self.norm2(x) + time_emb[:, None, :])


class ActionHead(nn.Module):
    def __init__(self, config: Evo1Config):
        super().__init__()
        e, h, d = config.embed_dim, config.horizon, config.action_dim
        self.horizon, self.action_dim, self.state_dim = h, d, config.state_dim
        self.time_index_scale = config.time_index_scale
        self.attn_implementation = config.attn_implementation
        self.time_pos_enc = SinusoidalTable(TIME_TABLE_SIZE, e)
        self.state_encoder = MLP(config.state_dim, config.state_hidden_dim, e)
        self.action_encoder = ActionEncoder(d, e, h)
        self.transformer_blocks = nn.ModuleList(
            CrossAttentionBlock(e, config.num_heads, config.ff_dim, config.dropout) for _ in range(config.num_layers)
        )
        self.norm_out = nn.LayerNorm(e)
        self.seq_pool_proj = nn.Linear(h * e, e)
        self.mlp_head = MLP(e, config.hidden_dim, h * d)

    @property
    def dtype(self) -> torch.dtype:
        return self.seq_pool_proj.weight.dtype

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """t (B,) in [0, 1] -> (B, E): row floor(t * scale) of the sinusoid table."""
        index = (t.float() * self.time_index_scale).floor().long().clamp(0, TIME_TABLE_SIZE - 1)
        return self.time_pos_enc.pe[0, index]

    def prepare_context(self, context: torch.Tensor, state: torch.Tensor, masks: Masks) -> HeadContext:
        """Append the state token and project keys/values for every block, once per chunk."""
        dtype = self.dtype
        state_token = self.state_encoder(state.to(dtype))[:, None, :]  # (B, 1, E)
        tokens = torch.cat([context.to(dtype), state_token], dim=1)  # (B, T + 1, E)
        valid = torch.cat([masks.context.bool(), masks.context.new_ones(context.shape[0], 1, dtype=torch.bool)], 1)
        keys, values = zip(*(block.keys_values(tokens) for block in self.transformer_blocks), strict=True)
        return HeadContext(list(keys), list(values), valid[:, None, None, :])

    def velocity(
        self, x_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor, state: torch.Tensor, masks: Masks,
        cache: HeadContext | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """The velocity field v(x_t, t | context, state): (B, H, D), zero on inactive action dims.

        x_t (B, H, D) noisy actions, t (B,) times in [0, 1], context (B, T, E) backbone tokens,
        state (B, state_dim). Pass `cache` (from `prepare_context`) to skip the context projections.
        """
        if cache is None:
            cache = self.prepare_context(context, state, masks)
        action_mask = expand_action_mask(masks.action, self.horizon, self.action_dim)
        x = self.action_encoder((x_t * action_mask).to(self.dtype))  # (B, H, E)
        time_emb = self.time_embedding(t).to(self.dtype)  # (B, E)
        for block, k, v in zip(self.transformer_blocks, cache.keys, cache.values, strict=True):
            x = block(x, time_emb, k, v, cache.key_mask, self.attn_implementation)
        pooled = self.seq_pool_proj(self.norm_out(x).flatten(1))  # (B, H * E) -> (B, E)
        v = self.mlp_head(pooled).view(-1, self.horizon, self.action_dim)
        return v * action_mask
