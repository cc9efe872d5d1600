"""Containers passed between the ELMUR policy, its rollout buffer and the algorithms."""

from dataclasses import dataclass
from typing import NamedTuple

import torch as th

from sb3_elmur.elmur import MemoryState

TensorObs = th.Tensor | dict[str, th.Tensor]


@dataclass
class SegmentBatch:
    """
    A minibatch of training samples laid out in blocks of K steps for the backbone's parallel path.

    :param observations: ``[batch, n_blocks * K, *obs_shape]`` (a dict of those for Dict spaces).
    :param timesteps: ``[batch, n_blocks * K]`` absolute episode step, -1 = padding.
    :param mask: ``[batch, n_blocks * K]`` bool, True for the steps that enter the loss.
    :param memory: Memory (every tower: actor, and critic with a critic backbone) at the start of each sample.
    :param action_masks: ``[n_masked_steps, mask_dims]`` valid-action masks of the masked steps (in ``mask`` order)
        the policy acted with, or None without action masking (see :class:`~sb3_elmur.MaskableElmurPPO`).
    """

    observations: TensorObs
    timesteps: th.Tensor
    mask: th.Tensor
    memory: MemoryState
    action_masks: th.Tensor | None = None


class ElmurRolloutBufferSamples(NamedTuple):
    """What :meth:`ElmurRolloutBuffer.get` yields: the fields of SB3's ``RolloutBufferSamples``, with the
    per-step fields flattened to the masked steps (in ``mask`` order) and the layout in ``observations``."""

    observations: SegmentBatch
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
