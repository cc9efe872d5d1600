"""Layer-local memory: the slot vectors, their timestamps, and the LRU update/rewrite rule."""

from dataclasses import dataclass

import torch as th

#: Timestamp of a slot that has never been written.
EMPTY = -1


def _rows(mask: th.Tensor, like: th.Tensor) -> th.Tensor:
    """``mask [batch]`` viewed to broadcast over the trailing dimensions of ``like``."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


@dataclass
class MemoryState:
    """
    The memory of every layer (and every tower: actor, critic) for a batch of episodes.

    :param vectors: Slot vectors, shape ``[batch, n_towers, n_layers, S, d_model]``, ``S`` =
        ``config.slots_per_layer``: the M memory slots, then (with ``read_previous_segment``) the previous
        segment's K token states. The vector of an empty slot is never read and carries no information (it is
        kept at zero).
    :param timestamps: ``[batch, n_layers, S]`` int64, ``-1`` for an empty slot: for a memory slot the absolute
        step of the last step of the segment that last wrote it, for a previous-segment token its own step.
        They depend on steps and commit times only, so every tower has the same timestamps.
    """

    vectors: th.Tensor
    timestamps: th.Tensor

    @classmethod
    def empty(
        cls,
        batch_size: int,
        n_towers: int,
        n_layers: int,
        n_slots: int,
        d_model: int,
        device: th.device | None = None,
        dtype: th.dtype = th.float32,
    ) -> "MemoryState":
        """
        Memory with every slot empty (the state at an episode start).

        :param batch_size: Number of episodes (environments).
        :param n_towers: Number of towers (backbones evaluated together: 2 for actor + critic).
        :param n_layers: Number of layers.
        :param n_slots: Slots per layer.
        :param d_model: Slot width.
        :param device: Torch device.
        :param dtype: Floating dtype of the vectors.
        """
        return cls(
            vectors=th.zeros(batch_size, n_towers, n_layers, n_slots, d_model, device=device, dtype=dtype),
            timestamps=th.full((batch_size, n_layers, n_slots), EMPTY, device=device, dtype=th.long),
        )

    @property
    def batch_size(self) -> int:
        return self.vectors.shape[0]

    @property
    def occupied(self) -> th.Tensor:
        """Boolean mask of written slots, ``[batch, n_layers, n_slots]``."""
        return self.timestamps >= 0

    def layer(self, index: int) -> th.Tensor:
        """Slot vectors of one layer in the towers-first compute layout, ``[n_towers, batch, n_slots, d_model]``."""
        return self.vectors[:, :, index].transpose(0, 1)

    def reset(self, mask: th.Tensor) -> "MemoryState":
        """
        Empty the memory of the flagged episodes and leave the others untouched.

        :param mask: Boolean ``[batch]``; True empties that episode's memory.
        """
        return MemoryState(
            vectors=self.vectors.masked_fill(_rows(mask, self.vectors), 0.0),
            timestamps=self.timestamps.masked_fill(_rows(mask, self.timestamps), EMPTY),
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
            vectors=th.where(_rows(mask, self.vectors), self.vectors, other.vectors),
            timestamps=th.where(_rows(mask, self.timestamps), self.timestamps, other.timestamps),
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


@dataclass
class LruPlan:
    """
    What the LRU rule does to the slots at a segment end, decided from the timestamps alone (no slot
    vector is needed), so the plan is computed once and applied to every tower:
    ``new_vector = keep * vector + take * candidate``.

    :param keep: ``[..., n_slots, 1]`` float: 1 for untouched slots, ``1 - lambda`` for a blended
        target, 0 for a replaced one.
    :param take: ``[..., n_slots, 1]`` float: 0, ``lambda`` or 1 likewise.
    :param timestamps: ``[..., n_slots]`` int64 timestamps after the update.
    """

    keep: th.Tensor
    take: th.Tensor
    timestamps: th.Tensor


def lru_plan(
    timestamps: th.Tensor,
    commit_time: th.Tensor,
    lru_lambda: float,
    use_lru: bool = True,
    complete: th.Tensor | None = None,
    dtype: th.dtype = th.float32,
) -> LruPlan:
    """
    The update/rewrite rule of one layer's memory at the end of a segment.

    With ``use_lru`` one slot per episode is written: the target from :func:`lru_target`. An empty
    target is replaced (``m <- u``); an occupied one is blended (``m <- lambda * u + (1 - lambda) * m``).
    Its timestamp becomes ``commit_time``; every other slot keeps vector and timestamp.
    Without ``use_lru`` (ablation) every slot is rewritten: ``m <- u`` and its timestamp set.

    :param timestamps: ``[batch, ..., n_slots]`` int64, ``-1`` = empty.
    :param commit_time: ``[batch]`` int64, absolute index of the segment's last step.
    :param lru_lambda: Blend factor for occupied slots.
    :param use_lru: Whether to use the LRU rule (True) or rewrite every slot (False).
    :param complete: ``[batch]`` bool, the episodes whose segment is complete (the others commit nothing);
        default: all.
    :param dtype: Floating dtype of ``keep`` and ``take``.
    """
    commit = commit_time.view(-1, *([1] * (timestamps.dim() - 1)))
    if use_lru:
        slots = th.arange(timestamps.shape[-1], device=timestamps.device)
        write = slots == lru_target(timestamps).unsqueeze(-1)
    else:
        write = th.ones_like(timestamps, dtype=th.bool)
    if complete is not None:
        write = write & _rows(complete, timestamps)
    blend = write & (timestamps >= 0) if use_lru else th.zeros_like(write)
    take = th.where(blend, lru_lambda, write.to(dtype))
    keep = th.where(blend, 1.0 - lru_lambda, (~write).to(dtype))
    return LruPlan(keep.unsqueeze(-1), take.unsqueeze(-1), th.where(write, commit, timestamps))


def apply_lru(vectors: th.Tensor, candidates: th.Tensor, plan: LruPlan) -> th.Tensor:
    """
    New slot vectors ``keep * vectors + take * candidates`` (exactly the old vector where ``keep`` is 1
    and ``take`` 0, exactly the candidate where ``keep`` is 0 and ``take`` 1).

    :param vectors: ``[..., batch, n_slots, d]`` current vectors (leading tower dimensions broadcast).
    :param candidates: Candidate vectors u from the write path, same shape.
    :param plan: From :func:`lru_plan`.
    """
    return th.addcmul(vectors * plan.keep, candidates, plan.take)


def lru_update(
    vectors: th.Tensor,
    timestamps: th.Tensor,
    candidates: th.Tensor,
    commit_time: th.Tensor,
    lru_lambda: float,
    use_lru: bool = True,
) -> tuple[th.Tensor, th.Tensor]:
    """
    :func:`lru_plan` and :func:`apply_lru` in one call, for one layer.

    :param vectors: ``[batch, n_slots, d]`` current slot vectors.
    :param timestamps: ``[batch, n_slots]`` int64, ``-1`` = empty.
    :param candidates: ``[batch, n_slots, d]`` candidate vectors u from the write path.
    :param commit_time: ``[batch]`` int64, absolute index of the segment's last step.
    :param lru_lambda: Blend factor for occupied slots.
    :param use_lru: Whether to use the LRU rule (True) or rewrite every slot (False).
    :return: New ``(vectors, timestamps)``.
    """
    plan = lru_plan(timestamps, commit_time, lru_lambda, use_lru, dtype=vectors.dtype)
    return apply_lru(vectors, candidates, plan), plan.timestamps
