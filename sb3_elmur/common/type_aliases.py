"""Containers passed between the ELMUR policy, its rollout buffer and the algorithms."""

from dataclasses import dataclass
from typing import NamedTuple

import torch as th

from sb3_elmur.elmur import MemoryState, StreamState

TensorObs = th.Tensor | dict[str, th.Tensor]


@dataclass
class ElmurStates:
    """
    Live acting state of a policy for a batch of envs.

    :param pi: Streaming state of the actor backbone.
    :param vf: Streaming state of the critic backbone, or None when the critic has none of its own
        (shared backbone, or a critic without memory).
    """

    pi: StreamState
    vf: StreamState | None = None

    def map(self, fn) -> "ElmurStates":
        """Apply ``fn`` to each streaming state."""
        return ElmurStates(fn(self.pi), None if self.vf is None else fn(self.vf))

    def clone(self) -> "ElmurStates":
        return self.map(lambda state: state.clone())

    def rows(self, index: th.Tensor | slice) -> "ElmurStates":
        """The states of some envs (a copy)."""
        return self.map(lambda state: StreamState.from_tensors(tuple(t[index].clone() for t in state.tensors())))


@dataclass
class SegmentBatch:
    """
    A minibatch of training samples laid out in blocks of K steps for the backbone's parallel path.

    :param observations: ``[batch, n_blocks * K, *obs_shape]`` (a dict of those for Dict spaces).
    :param timesteps: ``[batch, n_blocks * K]`` absolute episode step, -1 = padding.
    :param mask: ``[batch, n_blocks * K]`` bool, True for the steps that enter the loss.
    :param memory_pi: Actor memory at the start of each sample.
    :param memory_vf: Critic memory at the start of each sample (None without a critic backbone).
    """

    observations: TensorObs
    timesteps: th.Tensor
    mask: th.Tensor
    memory_pi: MemoryState
    memory_vf: MemoryState | None = None


class ElmurRolloutBufferSamples(NamedTuple):
    """What :meth:`ElmurRolloutBuffer.get` yields: the fields of SB3's ``RolloutBufferSamples``, with the
    per-step fields flattened to the masked steps (in ``mask`` order) and the layout in ``observations``."""

    observations: SegmentBatch
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
