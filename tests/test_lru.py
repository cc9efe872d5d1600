"""LRU update/rewrite rule on hand-made cases."""

import pytest
import torch as th

from sb3_elmur.elmur import EMPTY, MemoryState, lru_target, lru_update


def test_target_is_first_empty_slot_even_after_filled_ones():
    timestamps = th.tensor([[5, EMPTY, 3, EMPTY], [EMPTY, EMPTY, EMPTY, EMPTY], [9, 4, 7, 12]])
    assert lru_target(timestamps).tolist() == [1, 0, 1]


def test_ties_go_to_the_lowest_index():
    timestamps = th.tensor([[8, 3, 3, 5], [2, 2, 2, 2]])
    assert lru_target(timestamps).tolist() == [1, 0]


def test_fill_order_then_least_recently_written():
    n_slots, d = 3, 2
    vectors = th.zeros(1, n_slots, d)
    timestamps = th.full((1, n_slots), EMPTY)
    written = []
    for segment in range(7):
        commit = th.tensor([segment * 10 + 9])
        candidates = th.full((1, n_slots, d), float(segment + 1))
        before = timestamps.clone()
        vectors, timestamps = lru_update(vectors, timestamps, candidates, commit, lru_lambda=0.5)
        changed = (timestamps != before).nonzero()[:, 1].tolist()
        assert len(changed) == 1, "exactly one slot per segment"
        written.append(changed[0])
        assert timestamps[0, changed[0]].item() == segment * 10 + 9
    # Empty slots fill in order 0, 1, 2; then the oldest (0, 1, 2, ...) is rewritten.
    assert written == [0, 1, 2, 0, 1, 2, 0]


def test_empty_slot_is_replaced_not_blended():
    vectors = th.tensor([[[7.0, 7.0], [3.0, -3.0]]])  # slot 0 holds junk but is empty
    timestamps = th.tensor([[EMPTY, 4]])
    candidates = th.tensor([[[1.0, 2.0], [100.0, 100.0]]])
    new_vectors, new_timestamps = lru_update(vectors, timestamps, candidates, th.tensor([9]), lru_lambda=0.1)
    assert th.equal(new_vectors[0, 0], th.tensor([1.0, 2.0]))
    assert th.equal(new_vectors[0, 1], th.tensor([3.0, -3.0])), "non-target slot keeps its vector"
    assert new_timestamps.tolist() == [[9, 4]]


@pytest.mark.parametrize("lam", [0.0, 0.1, 0.5, 1.0])
def test_occupied_slot_is_blended_with_lambda(lam):
    vectors = th.tensor([[[1.0, -1.0], [2.0, 4.0], [0.5, 0.5]]])
    timestamps = th.tensor([[19, 9, 29]])  # slot 1 is the least recently written
    candidates = th.tensor([[[9.0, 9.0], [10.0, 20.0], [9.0, 9.0]]])
    new_vectors, new_timestamps = lru_update(vectors, timestamps, candidates, th.tensor([39]), lru_lambda=lam)
    expected = lam * th.tensor([10.0, 20.0]) + (1 - lam) * th.tensor([2.0, 4.0])
    assert th.allclose(new_vectors[0, 1], expected)
    assert th.equal(new_vectors[0, [0, 2]], vectors[0, [0, 2]])
    assert new_timestamps.tolist() == [[19, 39, 29]]


def test_rows_are_independent():
    vectors = th.zeros(2, 2, 1)
    timestamps = th.tensor([[EMPTY, EMPTY], [3, 1]])
    candidates = th.ones(2, 2, 1)
    _, new_timestamps = lru_update(vectors, timestamps, candidates, th.tensor([5, 7]), lru_lambda=0.5)
    assert new_timestamps.tolist() == [[5, EMPTY], [3, 7]]


def test_without_lru_every_slot_is_rewritten():
    vectors = th.randn(2, 3, 4)
    timestamps = th.tensor([[EMPTY, 2, 5], [1, 1, 1]])
    candidates = th.randn(2, 3, 4)
    new_vectors, new_timestamps = lru_update(vectors, timestamps, candidates, th.tensor([9, 19]), 0.1, use_lru=False)
    assert th.equal(new_vectors, candidates)
    assert new_timestamps.tolist() == [[9, 9, 9], [19, 19, 19]]


def test_memory_state_reset_touches_only_flagged_rows():
    memory = MemoryState(th.randn(3, 2, 2, 4), th.tensor([[[1, 2], [3, 4]]] * 3))
    reset = memory.reset(th.tensor([False, True, False]))
    assert th.equal(reset.vectors[[0, 2]], memory.vectors[[0, 2]])
    assert th.equal(reset.timestamps[[0, 2]], memory.timestamps[[0, 2]])
    assert (reset.timestamps[1] == EMPTY).all() and (reset.vectors[1] == 0).all()
