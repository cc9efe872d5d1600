"""One ELMUR layer: the token track (self-attention, read, feed-forward) and the memory track (write, LRU)."""

from collections.abc import Callable

import torch as th
from torch import nn

from sb3_elmur.elmur.attention import ReadAttention, SegmentSelfAttention, WriteAttention
from sb3_elmur.elmur.config import ElmurConfig
from sb3_elmur.elmur.feedforward import make_feedforward
from sb3_elmur.elmur.gating import make_gate
from sb3_elmur.elmur.memory import LruPlan, apply_lru
from sb3_elmur.elmur.towers import TowerLayerNorm, TowerLinear, TowerModule, tower_norm

#: Hook that receives a segment's new keys and values and returns the keys and values over the whole
#: segment (identity in the parallel path; a key/value cache when streaming).
KVHook = Callable[[th.Tensor, th.Tensor], tuple[th.Tensor, th.Tensor]]


class Sublayer(nn.Module):
    """
    Residual connection with layer norm, pre-norm (``x + f(norm(x))``) or post-norm (``norm(x + f(x))``).

    :param n_towers: G.
    :param d_model: Model width.
    :param norm_first: Pre-norm when True.
    :param dropout: Dropout on the sublayer output.
    :param gate: ``"none"`` (``x + delta``) or ``"gru"`` (a :class:`~sb3_elmur.elmur.gating.GruGate` combines them).
    :param gate_bias: The gate's initial closing bias.
    """

    def __init__(
        self, n_towers: int, d_model: int, norm_first: bool, dropout: float, gate: str = "none", gate_bias: float = 2.0
    ) -> None:
        super().__init__()
        self.norm = TowerLayerNorm(n_towers, d_model)
        self.norm_first = norm_first
        self.dropout = dropout
        self.gate = make_gate(n_towers, d_model, gate, gate_bias)

    def inputs(self, x: th.Tensor) -> th.Tensor:
        """What the sublayer function sees."""
        return self.norm(x) if self.norm_first else x

    def add(self, x: th.Tensor, delta: th.Tensor) -> th.Tensor:
        """Combine the residual stream with the sublayer output."""
        if self.dropout and self.training:
            delta = nn.functional.dropout(delta, self.dropout, training=True)
        out = x + delta if self.gate is None else self.gate(x, delta)
        return out if self.norm_first else self.norm(out)


class ElmurLayer(TowerModule):
    """
    One layer with its own memory, for G towers at once (tensors ``[G, batch, ...]``). The token track
    runs for every token; the memory track runs once per completed segment and returns the layer's
    updated slots. The attention biases and the LRU plan come precomputed (see
    :class:`~sb3_elmur.elmur.backbone.ElmurBackbone`): they depend on times only, not on the tokens.

    :param config: Backbone settings.
    :param n_towers: G.
    """

    def __init__(self, config: ElmurConfig, n_towers: int = 1) -> None:
        super().__init__()
        self.config = config
        d, h, p, g = config.d_model, config.n_heads, config.dropout, n_towers
        # Token shift: the layer's input of the previous step, projected; zero at the start, so the layer starts as
        # without it.
        self.shift_norm = TowerLayerNorm(g, d) if config.token_shift else None
        self.shift = TowerLinear(g, d, d) if config.token_shift else None
        if self.shift is not None:
            with th.no_grad():
                self.shift.weight.zero_()
                self.shift.bias.zero_()
        # Token track (its residuals may be gated; the memory track's never are).
        gated = "none" if config.residual_gate == "none" else "gru"
        gate = (gated, config.gate_bias)
        read_gate = ("gru" if config.residual_gate == "gru" else "none", config.gate_bias)
        self.self_attn = SegmentSelfAttention(g, d, h, config.segment_len, p, config.position_bias_init)
        self.self_attn_block = Sublayer(g, d, config.norm_first, p, *gate)
        self.read = ReadAttention(g, d, h, config.n_time_buckets, p) if config.use_read else None
        self.read_block = Sublayer(g, d, config.norm_first, p, *read_gate)
        self.ffn = make_feedforward(config, g)
        self.ffn_block = Sublayer(g, d, config.norm_first, p, *gate)
        # Memory track.
        self.write = WriteAttention(g, d, h, config.n_time_buckets, p) if config.use_write else None
        self.write_block = Sublayer(g, d, config.norm_first, p)
        self.write_token_norm = tower_norm(g, d, config.norm_first)
        self.memory_ffn = make_feedforward(config, g)
        self.memory_ffn_block = Sublayer(g, d, config.norm_first, p)
        # Candidates always leave through a norm, so the convex LRU blend keeps memory bounded over any horizon.
        self.candidate_norm = tower_norm(g, d, config.norm_first)
        # The previous segment's token states as the read sees them (normalised like the write's tokens).
        self.previous_norm = tower_norm(g, d, config.norm_first) if config.read_previous_segment else None
        # Query of a slot that has never been written (learned, identical for every episode).
        self.slot_init = nn.Parameter(th.randn(g, 1, config.n_slots, d))
        if config.zero_init_residual:
            outputs = [*self.self_attn.out_proj.parameters(), *self.ffn.output_parameters()]
            outputs += [*self.read.out_proj.parameters()] if self.read is not None else []
            with th.no_grad():
                for param in outputs:
                    param.zero_()

    def token_track(
        self,
        x: th.Tensor,
        kv_hook: KVHook,
        self_bias: th.Tensor,
        slots: th.Tensor,
        occupied: th.Tensor,
        read_bias: th.Tensor | None,
        any_slot: th.Tensor,
        previous: th.Tensor | None = None,
    ) -> th.Tensor:
        """
        :param x: ``[G, batch, n_tokens, d_model]`` token states entering the layer.
        :param kv_hook: Maps the tokens' keys and values to those of the whole segment (see :data:`KVHook`).
        :param self_bias: ``[G, batch or 1, n_tokens, K, heads]`` causal position bias.
        :param slots: ``[G, batch, n_slots, d_model]`` this layer's memory, committed before the segment.
        :param occupied: ``[batch, n_slots]`` bool, its written slots.
        :param read_bias: ``[G, batch, n_tokens, n_slots, heads]`` time-distance bias (None without read).
        :param any_slot: ``[batch, 1, 1]`` float, 1 where at least one slot is written.
        :param previous: With ``token_shift``: ``[G, batch, n_tokens, d_model]``, the layer's input at each token's
            previous step (zero at an episode start).
        :return: ``[G, batch, n_tokens, d_model]`` token states leaving the layer.
        """
        if self.shift is not None:
            assert self.shift_norm is not None and previous is not None
            x = x + self.shift(self.shift_norm(previous))
        h = self.self_attn_block.inputs(x)
        key, value = kv_hook(*self.self_attn.project_kv(h))
        x = self.self_attn_block.add(x, self.self_attn.attend(h, key, value, self_bias))
        if self.read is not None:
            assert read_bias is not None
            x = self.read_block.add(x, self.read(self.read_block.inputs(x), slots, occupied, read_bias, any_slot))
        return self.ffn_block.add(x, self.ffn(self.ffn_block.inputs(x)))

    def previous_segment(self, tokens: th.Tensor) -> th.Tensor:
        """
        The previous-segment slots a completed segment leaves (``read_previous_segment``).

        :param tokens: ``[G, batch, K, d_model]`` this layer's final token states of the segment.
        """
        assert self.previous_norm is not None
        return self.previous_norm(tokens)

    def memory_track(
        self, slots: th.Tensor, occupied: th.Tensor, tokens: th.Tensor, write_bias: th.Tensor | None, plan: LruPlan
    ) -> th.Tensor:
        """
        Write a segment into this layer's memory: write attention, feed-forward, LRU (the plan says which
        slots of which episodes change; an episode whose segment is incomplete keeps its memory).

        :param slots: ``[G, batch, n_slots, d_model]`` memory vectors.
        :param occupied: ``[batch, n_slots, 1]`` bool, written slots.
        :param tokens: ``[G, batch, K, d_model]`` this layer's final token states of the segment.
        :param write_bias: ``[G, batch, n_slots, K, heads]`` time-distance bias, invalid tokens masked.
        :param plan: This layer's LRU plan (``keep``/``take`` ``[batch, n_slots, 1]``).
        :return: New slot vectors.
        """
        if self.write is None or write_bias is None:
            return slots
        queries = th.where(occupied, slots, self.towers(self.slot_init))
        u = self.write_block.add(
            queries, self.write(self.write_block.inputs(queries), self.write_token_norm(tokens), write_bias)
        )
        u = self.memory_ffn_block.add(u, self.memory_ffn(self.memory_ffn_block.inputs(u)))
        return apply_lru(slots, self.candidate_norm(u), plan)
