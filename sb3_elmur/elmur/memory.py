"""Layer-local memory: the slot vectors, their timestamps, and the LRU update/rewrite rule."""

from dataclasses import dataclass

import torch as th

#: Timestamp of a slot that has never been written.
EMPTY = -1


@dataclass
class MemoryState:
    """
    The memory of every layer for a batch of episodes.

    :param vectors: Slot vectors, shape ``[batch, n_layers, n_slots, d_model]``. The vector of an
        empty slot is never read and carries no information (it is kept at zero).
    :param timestamps: Absolute step index of the last step of the segment that last wrote each slot,
        shape ``[batch, n_layers, n_slots]``, int64, ``-1`` for an empty slot.
    """

    vectors: th.Tensor
    timestamps: th.Tensor

    @classmethod
    def empty(
        cls,
        batch_size: int,
        n_layers: int,
        n_slots: int,
        d_model: int,
        device: th.device | None = None,
        dtype: th.dtype = th.float32,
    ) -> "MemoryState":
        """
        Memory with every slot empty (the state at an episode start).

        :param batch_size: Number of episodes (environments).
        :param n_layers: Number of layers.
        :param n_slots: Slots per layer.
        :param d_model: Slot width.
        :param device: Torch device.
        :param dtype: Floating dtype of the vectors.
        """
        return cls(
            vectors=th.zeros(batch_size, n_layers, n_slots, d_model, device=device, dtype=dtype),
            timestamps=th.full((batch_size, n_layers, n_slots), EMPTY, device=device, dtype=th.long),
        )

    @property
    def batch_size(self) -> int:
        return self.vectors.shape[0]

    @property
    def occupied(self) -> th.Tensor:
        """Boolean mask of written slots, ``[batch, n_layers, n_slots]``."""
        return self.timestamps >= 0

    def layer(self, index: int) -> tuple[th.Tensor, th.Tensor]:
        """Vectors ``[batch, n_slots, d_model]`` and timestamps ``[batch, n_slots]`` of one layer."""
        return self.vectors[:, index], self.timestamps[:, index]

    def reset(self, mask: th.Tensor) -> "MemoryState":
        """
        Empty the memory of the flagged episodes and leave the others untouched.

        :param mask: Boolean ``[batch]``; True empties that episode's memory.
        """
        return MemoryState(
            vectors=self.vectors.masked_fill(mask.view(-1, 1, 1, 1), 0.0),
            timestamps=self.timestamps.masked_fill(mask.view(-1, 1, 1), EMPTY),
        )

    def detach(self) -> "MemoryState":
        """The same memory, cut from the autograd graph."""
        return MemoryState(self.vectors.detach(), self.timestamps)

    def select(self, mask: th.Tensor, other: "MemoryState") -> "MemoryState":
        """
        Per-episode choice: this memory where ``mask`` is True, ``other`` elsewhere.

        :param mask: Boolean ``[batch]``.
        :param other: Memory of the same shape.
        """
        return MemoryState(
            vectors=th.where(mask.view(-1, 1, 1, 1), self.vectors, other.vectors),
            timestamps=th.where(mask.view(-1, 1, 1), self.timestamps, other.timestamps),
        )

    def to(self, device: th.device) -> "MemoryState":
        return MemoryState(self.vectors.to(device), self.timestamps.to(device))


def lru_target(timestamps: th.Tensor) -> th.Tensor:
    """
    Index of the slot the LRU rule writes: the first empty slot, otherwise the least recently
    written one (smallest timestamp; ties go to the lowest index).

    :param timestamps: ``[..., n_slots]`` int64, ``-1`` for empty slots.
    :return: ``[...]`` int64 slot indices.
    """
    # Empty slots carry -1, below every valid timestamp, and argmin returns the first minimum:
    # this is exactly "first empty slot, else least recently written, lowest index on ties".
    return th.argmin(timestamps, dim=-1)


def lru_update(
    vectors: th.Tensor,
    timestamps: th.Tensor,
    candidates: th.Tensor,
    commit_time: th.Tensor,
    lru_lambda: float,
    use_lru: bool = True,
) -> tuple[th.Tensor, th.Tensor]:
    """
    The update/rewrite rule of one layer's memory at the end of a segment.

    With ``use_lru`` one slot per episode is written: the target from :func:`lru_target`. An empty
    target is replaced (``m <- u``); an occupied one is blended (``m <- lambda * u + (1 - lambda) * m``).
    Its timestamp becomes ``commit_time``; every other slot keeps vector and timestamp.
    Without ``use_lru`` (ablation) every slot is rewritten: ``m <- u`` and its timestamp set.

    :param vectors: ``[batch, n_slots, d]`` current slot vectors.
    :param timestamps: ``[batch, n_slots]`` int64, ``-1`` = empty.
    :param candidates: ``[batch, n_slots, d]`` candidate vectors u from the write path.
    :param commit_time: ``[batch]`` int64, absolute index of the segment's last step.
    :param lru_lambda: Blend factor for occupied slots.
    :param use_lru: Whether to use the LRU rule (True) or rewrite every slot (False).
    :return: New ``(vectors, timestamps)``.
    """
    if not use_lru:
        return candidates, commit_time.view(-1, 1).expand_as(timestamps).clone()
    slots = th.arange(timestamps.shape[-1], device=timestamps.device)
    is_target = slots == lru_target(timestamps).unsqueeze(-1)  # [batch, n_slots]
    occupied = timestamps >= 0
    blended = th.where(occupied.unsqueeze(-1), lru_lambda * candidates + (1.0 - lru_lambda) * vectors, candidates)
    new_vectors = th.where(is_target.unsqueeze(-1), blended, vectors)
    new_timestamps = th.where(is_target, commit_time.view(-1, 1), timestamps)
    return new_vectors, new_timestamps
