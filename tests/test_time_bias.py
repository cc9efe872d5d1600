"""Time-distance buckets and the relative position bias."""

import torch as th

from sb3_elmur.elmur import bucket_boundaries, time_buckets
from sb3_elmur.elmur.time_bias import SegmentPositionBias, TimeDistanceBias, distance_buckets


def test_small_distances_are_exact_and_large_ones_log_spaced():
    edges = bucket_boundaries(32, 2**24)
    assert edges.numel() == 31
    small = th.arange(16)
    assert th.equal(time_buckets(small, edges), small)
    buckets = time_buckets(th.tensor([10**3, 10**4, 10**5, 10**6, 10**7]), edges)
    assert len(set(buckets.tolist())) == 5, "10^3 .. 10^7 must be told apart"
    assert time_buckets(th.tensor([2**24, 10**12]), edges).tolist() == [31, 31]


def test_buckets_are_monotone():
    edges = bucket_boundaries(24, 10**6)
    distance = th.arange(0, 2 * 10**6, 97)
    buckets = time_buckets(distance, edges)
    assert (buckets[1:] >= buckets[:-1]).all()
    assert buckets.min() == 0 and buckets.max() == 23


def test_empty_slots_get_their_own_bucket():
    bias = TimeDistanceBias(n_towers=1, n_heads=2, n_buckets=8)
    with th.no_grad():
        bias.table.weight.copy_(th.arange(18, dtype=th.float32).view(1, 9, 2))
    # [batch, layers, tokens, slots]
    bucket = distance_buckets(th.tensor([[10]]), th.tensor([[[-1, 9]]]), bucket_boundaries(8, 100))
    out = bias(bucket[:, 0])  # [towers, batch, tokens, slots, heads]
    assert out[0, 0, 0, 0].tolist() == [16.0, 17.0]  # the "empty" row
    assert out[0, 0, 0, 1].tolist() == [2.0, 3.0]  # distance 1 -> bucket 1
    write = bias(bucket[:, 0], slots_are_queries=True)  # [towers, batch, slots, tokens, heads]
    assert th.equal(write[0, 0, :, 0], out[0, 0, 0, :])


def test_position_bias_is_causal_and_relative():
    bias = SegmentPositionBias(n_towers=1, n_heads=1, segment_len=4)
    with th.no_grad():
        bias.table.weight.copy_(th.tensor([[[0.0], [1.0], [2.0], [3.0]]]))
    out = bias()[0, :, :, 0]  # [query, key]
    assert out[3, 1] == 2.0 and out[2, 0] == 2.0 and out[1, 1] == 0.0
    upper = th.ones(4, 4, dtype=th.bool).triu(1)
    assert (out[upper] < -1e30).all() and (out[~upper] > -1e30).all()


def test_position_bias_cache_follows_parameter_updates():
    """Without gradients the causal bias is cached; an in-place update of the table (an optimizer step) renews it."""
    bias = SegmentPositionBias(n_towers=1, n_heads=1, segment_len=3)
    with th.no_grad():
        first = bias()
        assert bias() is first, "cached while the table is unchanged"
        bias.table.weight.add_(1.0)
        second = bias()
    assert second is not first and second[0, 1, 0, 0] == first[0, 1, 0, 0] + 1.0
    assert bias().requires_grad, "with gradients on, the bias is computed (and differentiable)"
