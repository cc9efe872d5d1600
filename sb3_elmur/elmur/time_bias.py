"""Learned attention biases: time distance between tokens and memory slots, and relative position in a segment."""

import itertools
import math

import torch as th
from torch import nn

from sb3_elmur.elmur.towers import TowerTable


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


def distance_buckets(token_time: th.Tensor, slot_time: th.Tensor, boundaries: th.Tensor) -> th.Tensor:
    """
    Bucket of the time distance ``token_time - slot_time`` of every (token, slot) pair of every layer;
    empty slots (timestamp -1) get the extra bucket ``len(boundaries) + 1``.

    Computed once per segment and shared by all layers, read and write, and towers.

    :param token_time: ``[..., n_tokens]`` int64 absolute step of each token.
    :param slot_time: ``[..., n_layers, n_slots]`` int64 slot timestamps (-1 = empty).
    :param boundaries: Edges from :func:`bucket_boundaries`.
    :return: ``[..., n_layers, n_tokens, n_slots]`` int64.
    """
    slot_time = slot_time.unsqueeze(-2)  # [..., layers, 1, slots]
    bucket = time_buckets(token_time.unsqueeze(-2).unsqueeze(-1) - slot_time, boundaries)
    return bucket.masked_fill(slot_time < 0, boundaries.numel() + 1)


class TimeDistanceBias(nn.Module):
    """
    Learned per-head bias of the time distance between a token and a memory slot (one table per tower).

    :param n_towers: G.
    :param n_heads: Attention heads.
    :param n_buckets: Number of distance buckets (see :func:`time_buckets`); one more row for empty slots.
    """

    def __init__(self, n_towers: int, n_heads: int, n_buckets: int) -> None:
        super().__init__()
        self.table = TowerTable(n_towers, n_buckets + 1, n_heads)  # last row: empty slot

    def forward(self, bucket: th.Tensor, slots_are_queries: bool = False) -> th.Tensor:
        """
        :param bucket: ``[..., n_tokens, n_slots]`` from :func:`distance_buckets` (one layer).
        :param slots_are_queries: False for the read (tokens query slots): bias ``[G, ..., tokens, slots, heads]``;
            True for the write (slots query tokens): bias ``[G, ..., slots, tokens, heads]``.
        :return: Float bias to add to the attention logits.
        """
        bias = self.table(bucket)
        return bias.transpose(-2, -3) if slots_are_queries else bias


class SegmentPositionBias(nn.Module):
    """
    Learned per-head bias of the relative position ``i - j`` of query ``i`` and key ``j`` inside one
    segment (0 .. K-1), causal. Self-attention sees no absolute position, so the result cannot depend
    on where the segment lies in the episode.

    :param n_towers: G.
    :param n_heads: Attention heads.
    :param segment_len: K.
    :param init: ``"zero"``: every key of the segment weighs the same at first; ``"recency"``: head ``h`` starts
        with the bias ``-2**(1 - h) * distance`` (slopes 2, 1, 1/2, ...: as ALiBi, a prior for recent steps that
        training can change), so that the previous step is at hand from the first update.
    """

    def __init__(self, n_towers: int, n_heads: int, segment_len: int, init: str = "zero") -> None:
        super().__init__()
        self.table = TowerTable(n_towers, segment_len, n_heads)
        if init == "recency":
            slopes = 2.0 ** (1 - th.arange(n_heads, dtype=th.float32))
            with th.no_grad():
                self.table.weight.copy_(-th.arange(segment_len, dtype=th.float32)[:, None] * slopes)
        elif init != "zero":
            raise ValueError(f"position bias init must be 'zero' or 'recency', got {init!r}")
        positions = th.arange(segment_len)
        relative = positions.unsqueeze(-1) - positions
        self.register_buffer("relative", relative.clamp(min=0), persistent=False)
        self.register_buffer("future", relative < 0, persistent=False)
        self._cache: tuple | None = None  # (parameter storage and version, bias) while gradients are off

    def forward(self) -> th.Tensor:
        """
        :return: Float bias ``[G, K, K, heads]`` (query position, key position, head); keys after the query
            get a large negative value. Keys of a segment that lie after the query are the only ones that can
            be padding (valid steps form a prefix of each segment), so this is also the padding mask.
        """
        # Acting, eager: the table changes only in updates (a compiled step computes it in its graph instead). A table
        # made in inference mode has no version counter to tell a change: it is not cached.
        weight = self.table.weight
        cached = not th.is_grad_enabled() and not th.compiler.is_compiling() and not weight.is_inference()
        if cached:
            key = (weight.data_ptr(), weight.device, weight._version, self.table.active_towers)
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        bias = self.table(self.relative)
        bias = bias.masked_fill(self.future.unsqueeze(-1), th.finfo(bias.dtype).min)
        self._cache = (key, bias) if cached else None
        return bias
