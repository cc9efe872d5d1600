"""The three attentions of an ELMUR layer: segment self-attention, read (mem2tok) and write (tok2mem)."""

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_elmur.elmur.time_bias import SegmentPositionBias, TimeDistanceBias


class MultiHeadAttention(nn.Module):
    """
    Multi-head attention with an additive float bias (which also carries the masks).

    Keys and values can be projected separately (:meth:`project_kv`) so that the streaming path can
    cache them; :meth:`attend` is the one place where attention is computed, for training and acting.

    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param dropout: Dropout on the attention weights (training only).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def project_kv(self, source: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Keys and values ``[batch, n, d_model]`` (heads not yet split) of ``source`` ``[batch, n, d_model]``."""
        # F.linear on the modules' parameters: same numbers, without nn.Module call overhead on the
        # per-step acting path (it matters at RL model sizes).
        key, value = F.linear(source, self.kv_proj.weight, self.kv_proj.bias).chunk(2, dim=-1)
        return key, value

    def _heads(self, x: th.Tensor) -> th.Tensor:
        return x.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

    def attend(self, query_source: th.Tensor, key: th.Tensor, value: th.Tensor, bias: th.Tensor) -> th.Tensor:
        """
        :param query_source: ``[batch, n_queries, d_model]`` states that form the queries.
        :param key: ``[batch, n_keys, d_model]`` from :meth:`project_kv`.
        :param value: ``[batch, n_keys, d_model]`` from :meth:`project_kv`.
        :param bias: ``[batch, heads, n_queries, n_keys]`` additive logits bias (masked keys: very negative).
        :return: ``[batch, n_queries, d_model]``.
        """
        query = self._heads(F.linear(query_source, self.q_proj.weight, self.q_proj.bias))
        out = F.scaled_dot_product_attention(
            query,
            self._heads(key),
            self._heads(value),
            attn_mask=bias.to(query.dtype),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return F.linear(out.transpose(1, 2).flatten(-2), self.out_proj.weight, self.out_proj.bias)


class SegmentSelfAttention(MultiHeadAttention):
    """
    Causal self-attention over the tokens of the current segment, with a learned bias of the
    relative position inside the segment (no absolute positions).

    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param segment_len: K.
    :param dropout: Attention dropout.
    """

    def __init__(self, d_model: int, n_heads: int, segment_len: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, n_heads, dropout)
        self.position_bias = SegmentPositionBias(n_heads, segment_len)

    def forward(self, x: th.Tensor, key: th.Tensor, value: th.Tensor, query_pos: th.Tensor, key_valid: th.Tensor) -> th.Tensor:
        """
        :param x: ``[batch, n_queries, d_model]`` query states.
        :param key: ``[batch, K, d_model]`` keys of the segment's positions 0..K-1.
        :param value: ``[batch, K, d_model]`` values of the segment's positions.
        :param query_pos: ``[batch, n_queries]`` position of each query in the segment.
        :param key_valid: ``[batch, K]`` which key positions hold real tokens.
        """
        return self.attend(x, key, value, self.position_bias(query_pos, key_valid))


class ReadAttention(MultiHeadAttention):
    """
    Read (mem2tok): tokens query the layer's memory slots, with a learned bias of the time distance
    between token and slot. Empty slots are masked out; a token that finds no written slot reads
    exactly zero (the residual passes through unchanged).

    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param n_buckets: Time-distance buckets.
    :param max_distance: Distance of the last bucket.
    :param dropout: Attention dropout.
    """

    def __init__(self, d_model: int, n_heads: int, n_buckets: int, max_distance: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, n_heads, dropout)
        self.time_bias = TimeDistanceBias(n_heads, n_buckets, max_distance)

    def forward(self, x: th.Tensor, token_time: th.Tensor, slots: th.Tensor, slot_time: th.Tensor) -> th.Tensor:
        """
        :param x: ``[batch, n_tokens, d_model]`` token states.
        :param token_time: ``[batch, n_tokens]`` absolute step of each token.
        :param slots: ``[batch, n_slots, d_model]`` memory vectors.
        :param slot_time: ``[batch, n_slots]`` slot timestamps (-1 = empty).
        """
        occupied = slot_time >= 0
        bias = self.time_bias(token_time, slot_time)
        bias = bias.masked_fill(~occupied[:, None, None, :], th.finfo(bias.dtype).min)
        # Zero the vectors of empty slots too: whatever they hold can never reach a token.
        key, value = self.project_kv(slots.masked_fill(~occupied.unsqueeze(-1), 0.0))
        out = self.attend(x, key, value, bias)
        return out * occupied.any(dim=-1).view(-1, 1, 1).to(out.dtype)


class WriteAttention(MultiHeadAttention):
    """
    Write (tok2mem): the memory slots query the layer's final token states of a completed segment,
    with the mirrored time-distance bias.

    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param n_buckets: Time-distance buckets.
    :param max_distance: Distance of the last bucket.
    :param dropout: Attention dropout.
    """

    def __init__(self, d_model: int, n_heads: int, n_buckets: int, max_distance: int, dropout: float = 0.0) -> None:
        super().__init__(d_model, n_heads, dropout)
        self.time_bias = TimeDistanceBias(n_heads, n_buckets, max_distance)

    def forward(
        self,
        slots: th.Tensor,
        slot_time: th.Tensor,
        tokens: th.Tensor,
        token_time: th.Tensor,
        token_valid: th.Tensor | None = None,
    ) -> th.Tensor:
        """
        :param slots: ``[batch, n_slots, d_model]`` slot states (queries).
        :param slot_time: ``[batch, n_slots]`` slot timestamps (-1 = empty).
        :param tokens: ``[batch, K, d_model]`` the segment's final token states of this layer.
        :param token_time: ``[batch, K]`` absolute step of each token.
        :param token_valid: ``[batch, K]`` optional mask of real tokens.
        """
        bias = self.time_bias(token_time, slot_time, slots_are_queries=True)
        if token_valid is not None:
            bias = bias.masked_fill(~token_valid[:, None, None, :], th.finfo(bias.dtype).min)
        key, value = self.project_kv(tokens)
        return self.attend(slots, key, value, bias)
