"""Learned attention biases: time distance between tokens and memory slots, and relative position in a segment."""

import itertools
import math

import torch as th
from torch import nn


def bucket_boundaries(n_buckets: int, max_distance: int) -> th.Tensor:
    """
    Lower edges of the time-distance buckets 1 .. n_buckets-1 (bucket 0 starts at distance 0).

    Distances ``0 .. n_buckets/2 - 1`` get one bucket each; larger distances are spread over the
    other half on a log scale, the last bucket starting at ``max_distance``. Unlike a lookup table
    clamped at a small horizon, 10^3 and 10^6 steps fall into different buckets.

    :param n_buckets: Total number of buckets (even).
    :param max_distance: First distance of the last bucket.
    :return: int64 tensor of ``n_buckets - 1`` increasing edges.
    """
    n_exact = n_buckets // 2
    n_log = n_buckets - n_exact
    exact = list(range(1, n_exact + 1))
    ratio = (max_distance / n_exact) ** (1.0 / (n_log - 1))
    log_edges = [math.ceil(n_exact * ratio**i - 1e-9) for i in range(1, n_log)]
    edges = exact + log_edges
    edges[-1] = max_distance
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"max_distance={max_distance} is too small for {n_buckets} distinct buckets")
    return th.tensor(edges, dtype=th.long)


def time_buckets(distance: th.Tensor, boundaries: th.Tensor) -> th.Tensor:
    """
    Bucket index of each time distance.

    :param distance: int64 tensor of distances (negative values fall into bucket 0).
    :param boundaries: Edges from :func:`bucket_boundaries`.
    :return: int64 tensor of bucket indices in ``[0, len(boundaries)]``.
    """
    return th.bucketize(distance, boundaries, right=True)


class TimeDistanceBias(nn.Module):
    """
    Learned per-head bias of the time distance between a token and a memory slot.

    The distance is ``token_time - slot_timestamp`` (>= 1 for a slot written in an earlier segment).
    Empty slots (timestamp -1) get a bucket of their own.

    :param n_heads: Attention heads.
    :param n_buckets: Number of distance buckets (see :func:`time_buckets`).
    :param max_distance: Distance of the last bucket.
    """

    def __init__(self, n_heads: int, n_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.n_buckets = n_buckets
        self.register_buffer("boundaries", bucket_boundaries(n_buckets, max_distance), persistent=False)
        self.table = nn.Embedding(n_buckets + 1, n_heads)  # last row: empty slot
        nn.init.zeros_(self.table.weight)

    def forward(self, token_time: th.Tensor, slot_time: th.Tensor, slots_are_queries: bool = False) -> th.Tensor:
        """
        :param token_time: ``[batch, n_tokens]`` int64 absolute step of each token.
        :param slot_time: ``[batch, n_slots]`` int64 slot timestamps (-1 = empty).
        :param slots_are_queries: False for the read (tokens query slots): bias ``[batch, heads, tokens, slots]``;
            True for the write (slots query tokens): bias ``[batch, heads, slots, tokens]``.
        :return: Float bias to add to the attention logits.
        """
        distance = token_time.unsqueeze(-1) - slot_time.unsqueeze(-2)  # [batch, tokens, slots]
        bucket = time_buckets(distance, self.boundaries)
        bucket = th.where(slot_time.unsqueeze(-2) < 0, self.n_buckets, bucket)
        bias = self.table(bucket)  # [batch, tokens, slots, heads]
        if slots_are_queries:
            return bias.permute(0, 3, 2, 1)
        return bias.permute(0, 3, 1, 2)


class SegmentPositionBias(nn.Module):
    """
    Learned per-head bias of the relative position ``i - j`` of query ``i`` and key ``j`` inside one
    segment (0 .. K-1). Self-attention sees no absolute position, so the result cannot depend on
    where the segment lies in the episode.

    :param n_heads: Attention heads.
    :param segment_len: K.
    """

    def __init__(self, n_heads: int, segment_len: int) -> None:
        super().__init__()
        self.table = nn.Embedding(segment_len, n_heads)
        nn.init.zeros_(self.table.weight)

    def forward(self, query_pos: th.Tensor, key_valid: th.Tensor) -> th.Tensor:
        """
        :param query_pos: ``[batch, n_queries]`` int64 position of each query inside its segment.
        :param key_valid: ``[batch, n_keys]`` bool; key ``j`` sits at position ``j`` of the segment.
        :return: Float bias ``[batch, heads, n_queries, n_keys]``; non-causal and invalid keys get a
            large negative value.
        """
        n_keys = key_valid.shape[-1]
        relative = query_pos.unsqueeze(-1) - th.arange(n_keys, device=query_pos.device)  # [b, q, k]
        allowed = (relative >= 0) & key_valid.unsqueeze(-2)
        bias = self.table(relative.clamp(min=0)).permute(0, 3, 1, 2)
        return bias.masked_fill(~allowed.unsqueeze(1), th.finfo(bias.dtype).min)
