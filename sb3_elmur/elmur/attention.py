"""The three attentions of an ELMUR layer: segment self-attention, read (mem2tok) and write (tok2mem)."""

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_elmur.elmur.time_bias import SegmentPositionBias, TimeDistanceBias
from sb3_elmur.elmur.towers import TowerLinear


class MultiHeadAttention(nn.Module):
    """
    Multi-head attention with an additive float bias (which also carries the masks), for G towers at once.

    Keys and values can be projected separately (:meth:`project_kv`) so that the streaming path can
    cache them; :meth:`attend` is the one place where attention is computed, for training and acting.
    Tensors are towers-first: ``[G, batch, n, d_model]``; biases are heads-last, ``[G, batch, n_queries, n_keys, heads]``.

    :param n_towers: G.
    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param dropout: Dropout on the attention weights (training only).
    """

    def __init__(self, n_towers: int, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.q_proj = TowerLinear(n_towers, d_model, d_model)
        self.kv_proj = TowerLinear(n_towers, d_model, 2 * d_model)
        self.out_proj = TowerLinear(n_towers, d_model, d_model)
        #: When a list, :meth:`attend` appends its attention weights to it (detached; for pictures of the memory).
        self.captured_weights: list[th.Tensor] | None = None

    def project_kv(self, source: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Keys and values ``[G, batch, n, d_model]`` (heads not yet split) of ``source`` ``[G, batch, n, d_model]``."""
        key, value = self.kv_proj(source).chunk(2, dim=-1)
        return key, value

    def attend(self, query_source: th.Tensor, key: th.Tensor, value: th.Tensor, bias: th.Tensor) -> th.Tensor:
        """
        Scaled dot-product attention, written with broadcast products and sums instead of batched matmuls:
        with a handful of keys per query (K or M), tiny batched matmuls cost far more than their
        arithmetic on a CPU, and this layout needs no head transposes (the biases are heads-last too).

        :param query_source: ``[G, batch, n_queries, d_model]`` states that form the queries.
        :param key: ``[G, batch, n_keys, d_model]`` from :meth:`project_kv`.
        :param value: ``[G, batch, n_keys, d_model]`` from :meth:`project_kv`.
        :param bias: ``[G, batch, n_queries, n_keys, heads]`` (or broadcastable) additive logits bias
            (masked keys: very negative).
        :return: ``[G, batch, n_queries, d_model]``.
        """
        g, b, n_queries, d = query_source.shape
        n_keys = key.shape[2]
        query = self.q_proj(query_source).view(g, b, n_queries, 1, self.n_heads, self.head_dim)
        logits = (query * key.view(g, b, 1, n_keys, self.n_heads, self.head_dim)).sum(-1) * self.head_dim**-0.5
        weights = th.softmax(logits + bias, dim=-2)  # [G, batch, queries, keys, heads]
        if self.captured_weights is not None:
            self.captured_weights.append(weights.detach())
        if self.dropout and self.training:
            weights = F.dropout(weights, self.dropout, training=True)
        out = (weights.unsqueeze(-1) * value.view(g, b, 1, n_keys, self.n_heads, self.head_dim)).sum(3)
        return self.out_proj(out.view(g, b, n_queries, d))


class SegmentSelfAttention(MultiHeadAttention):
    """
    Causal self-attention over the tokens of the current segment, with a learned bias of the
    relative position inside the segment (no absolute positions).

    :param n_towers: G.
    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param segment_len: K.
    :param dropout: Attention dropout.
    """

    def __init__(
        self, n_towers: int, d_model: int, n_heads: int, segment_len: int, dropout: float = 0.0, bias_init: str = "zero"
    ) -> None:
        super().__init__(n_towers, d_model, n_heads, dropout)
        self.position_bias = SegmentPositionBias(n_towers, n_heads, segment_len, bias_init)


class ReadAttention(MultiHeadAttention):
    """
    Read (mem2tok): tokens query the layer's memory slots, with a learned bias of the time distance
    between token and slot. Empty slots are masked out; a token that finds no written slot reads
    exactly zero (the residual passes through unchanged).

    :param n_towers: G.
    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param n_buckets: Time-distance buckets.
    :param dropout: Attention dropout.
    """

    def __init__(self, n_towers: int, d_model: int, n_heads: int, n_buckets: int, dropout: float = 0.0) -> None:
        super().__init__(n_towers, d_model, n_heads, dropout)
        self.time_bias = TimeDistanceBias(n_towers, n_heads, n_buckets)

    def bias(self, bucket: th.Tensor, occupied: th.Tensor) -> th.Tensor:
        """
        :param bucket: ``[..., n_tokens, n_slots]`` distance buckets of this layer.
        :param occupied: ``[..., n_slots]`` bool, written slots.
        :return: ``[G, ..., n_tokens, n_slots, heads]``, empty slots masked.
        """
        bias = self.time_bias(bucket)
        return bias.masked_fill(~occupied.unsqueeze(-2).unsqueeze(-1), th.finfo(bias.dtype).min)

    def forward(self, x: th.Tensor, slots: th.Tensor, occupied: th.Tensor, bias: th.Tensor, any_slot: th.Tensor) -> th.Tensor:
        """
        :param x: ``[G, batch, n_tokens, d_model]`` token states.
        :param slots: ``[G, batch, n_slots, d_model]`` memory vectors.
        :param occupied: ``[batch, n_slots]`` bool, written slots.
        :param bias: From :meth:`bias`, ``[G, batch, n_tokens, n_slots, heads]``.
        :param any_slot: ``[batch, 1, 1]`` float, 1 where at least one slot is written.
        """
        # Zero the vectors of empty slots too: whatever they hold can never reach a token.
        key, value = self.project_kv(slots.masked_fill(~occupied.unsqueeze(-1), 0.0))
        return self.attend(x, key, value, bias) * any_slot


class WriteAttention(MultiHeadAttention):
    """
    Write (tok2mem): the memory slots query the layer's final token states of a completed segment,
    with the mirrored time-distance bias.

    :param n_towers: G.
    :param d_model: Model width.
    :param n_heads: Number of heads.
    :param n_buckets: Time-distance buckets.
    :param dropout: Attention dropout.
    """

    def __init__(self, n_towers: int, d_model: int, n_heads: int, n_buckets: int, dropout: float = 0.0) -> None:
        super().__init__(n_towers, d_model, n_heads, dropout)
        self.time_bias = TimeDistanceBias(n_towers, n_heads, n_buckets)

    def bias(self, bucket: th.Tensor, token_valid: th.Tensor | None = None) -> th.Tensor:
        """
        :param bucket: ``[..., n_tokens, n_slots]`` distance buckets of this layer.
        :param token_valid: ``[..., n_tokens]`` optional mask of real tokens.
        :return: ``[G, ..., n_slots, n_tokens, heads]``.
        """
        bias = self.time_bias(bucket, slots_are_queries=True)
        if token_valid is None:
            return bias
        return bias.masked_fill(~token_valid.unsqueeze(-2).unsqueeze(-1), th.finfo(bias.dtype).min)

    def forward(self, slots: th.Tensor, tokens: th.Tensor, bias: th.Tensor) -> th.Tensor:
        """
        :param slots: ``[G, batch, n_slots, d_model]`` slot states (queries).
        :param tokens: ``[G, batch, K, d_model]`` the segment's final token states of this layer.
        :param bias: From :meth:`bias`.
        """
        key, value = self.project_kv(tokens)
        return self.attend(slots, key, value, bias)
