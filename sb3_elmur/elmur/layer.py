"""One ELMUR layer: the token track (self-attention, read, feed-forward) and the memory track (write, LRU)."""

from collections.abc import Callable

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_elmur.elmur.attention import ReadAttention, SegmentSelfAttention, WriteAttention
from sb3_elmur.elmur.config import ElmurConfig
from sb3_elmur.elmur.feedforward import make_feedforward
from sb3_elmur.elmur.memory import lru_update

#: Hook that receives a segment's new keys and values and returns the keys, values and key-validity
#: mask over the whole segment (identity in the parallel path; a key/value cache when streaming).
KVHook = Callable[[th.Tensor, th.Tensor], tuple[th.Tensor, th.Tensor, th.Tensor]]


class Sublayer(nn.Module):
    """
    Residual connection with layer norm, pre-norm (``x + f(norm(x))``) or post-norm (``norm(x + f(x))``).

    :param d_model: Model width.
    :param norm_first: Pre-norm when True.
    :param dropout: Dropout on the sublayer output.
    """

    def __init__(self, d_model: int, norm_first: bool, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.norm_first = norm_first
        self.dropout = dropout

    def _norm(self, x: th.Tensor) -> th.Tensor:
        return F.layer_norm(x, self.norm.normalized_shape, self.norm.weight, self.norm.bias, self.norm.eps)

    def inputs(self, x: th.Tensor) -> th.Tensor:
        """What the sublayer function sees."""
        return self._norm(x) if self.norm_first else x

    def add(self, x: th.Tensor, delta: th.Tensor) -> th.Tensor:
        """Combine the residual stream with the sublayer output."""
        if self.dropout and self.training:
            delta = F.dropout(delta, self.dropout, training=True)
        out = x + delta
        return out if self.norm_first else self._norm(out)


class ElmurLayer(nn.Module):
    """
    One layer with its own memory. The token track runs for every token; the memory track runs
    once per completed segment and returns the layer's updated slots.

    :param config: Backbone settings.
    """

    def __init__(self, config: ElmurConfig) -> None:
        super().__init__()
        self.config = config
        d, h, p = config.d_model, config.n_heads, config.dropout
        # Token track.
        self.self_attn = SegmentSelfAttention(d, h, config.segment_len, p)
        self.self_attn_block = Sublayer(d, config.norm_first, p)
        self.read = ReadAttention(d, h, config.n_time_buckets, config.max_time_distance, p) if config.use_read else None
        self.read_block = Sublayer(d, config.norm_first, p)
        self.ffn = make_feedforward(config)
        self.ffn_block = Sublayer(d, config.norm_first, p)
        # Memory track.
        self.write = WriteAttention(d, h, config.n_time_buckets, config.max_time_distance, p) if config.use_write else None
        self.write_block = Sublayer(d, config.norm_first, p)
        self.write_token_norm = nn.LayerNorm(d) if config.norm_first else nn.Identity()
        self.memory_ffn = make_feedforward(config)
        self.memory_ffn_block = Sublayer(d, config.norm_first, p)
        # Candidates always leave through a norm, so the convex LRU blend keeps memory bounded over any horizon.
        self.candidate_norm = nn.LayerNorm(d) if config.norm_first else nn.Identity()
        # Query of a slot that has never been written (learned, identical for every episode).
        self.slot_init = nn.Parameter(th.randn(config.n_slots, d))

    def token_track(
        self,
        x: th.Tensor,
        token_time: th.Tensor,
        query_pos: th.Tensor,
        kv_hook: KVHook,
        slots: th.Tensor,
        slot_time: th.Tensor,
    ) -> th.Tensor:
        """
        :param x: ``[batch, n_tokens, d_model]`` token states entering the layer.
        :param token_time: ``[batch, n_tokens]`` absolute step of each token in its episode.
        :param query_pos: ``[batch, n_tokens]`` position of each token inside its segment.
        :param kv_hook: Maps the tokens' keys and values to those of the whole segment (see :data:`KVHook`).
        :param slots: ``[batch, n_slots, d_model]`` this layer's memory, committed before the segment.
        :param slot_time: ``[batch, n_slots]`` their timestamps.
        :return: ``[batch, n_tokens, d_model]`` token states leaving the layer.
        """
        h = self.self_attn_block.inputs(x)
        key, value, key_valid = kv_hook(*self.self_attn.project_kv(h))
        x = self.self_attn_block.add(x, self.self_attn(h, key, value, query_pos, key_valid))
        if self.read is not None:
            x = self.read_block.add(x, self.read(self.read_block.inputs(x), token_time, slots, slot_time))
        return self.ffn_block.add(x, self.ffn(self.ffn_block.inputs(x)))

    def memory_track(
        self,
        slots: th.Tensor,
        slot_time: th.Tensor,
        tokens: th.Tensor,
        token_time: th.Tensor,
        commit_time: th.Tensor,
        token_valid: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Write a completed segment into this layer's memory: write attention, feed-forward, LRU.

        :param slots: ``[batch, n_slots, d_model]`` memory vectors.
        :param slot_time: ``[batch, n_slots]`` timestamps (-1 = empty).
        :param tokens: ``[batch, K, d_model]`` this layer's final token states of the segment.
        :param token_time: ``[batch, K]`` their absolute steps.
        :param commit_time: ``[batch]`` absolute step of the segment's last step.
        :param token_valid: ``[batch, K]`` optional mask of real tokens.
        :return: New ``(slots, slot_time)``.
        """
        if self.write is None:
            return slots, slot_time
        occupied = (slot_time >= 0).unsqueeze(-1)
        queries = th.where(occupied, slots, self.slot_init.to(slots.dtype))
        u = self.write_block.add(
            queries,
            self.write(self.write_block.inputs(queries), slot_time, self.write_token_norm(tokens), token_time, token_valid),
        )
        u = self.memory_ffn_block.add(u, self.memory_ffn(self.memory_ffn_block.inputs(u)))
        u = self.candidate_norm(u)
        return lru_update(slots, slot_time, u, commit_time, self.config.lru_lambda, self.config.use_lru)
