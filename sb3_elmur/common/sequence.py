"""
The actor of a policy run over whole sequences at once: ELMUR (parallel path), sb3-contrib's LSTM
policy, or a memoryless SB3 policy, behind one function.

Behaviour cloning (:class:`~sb3_elmur.bc.ElmurBC`) uses it to score expert actions; the parallel
T-Maze evaluation (:func:`~sb3_elmur.envs.tmaze_parallel.evaluate_tmaze_parallel`) uses it to act.
"""

from typing import Any

import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from sb3_elmur.common.policies import ElmurActorCriticPolicy, flatten_time
from sb3_elmur.common.type_aliases import SegmentBatch, TensorObs

#: What a policy carries from one chunk of a sequence to the next: ELMUR memory, LSTM (h, c), or None.
Carry = Any


def check_sequence_policy(policy: BasePolicy) -> None:
    """Raise a ``TypeError`` unless :func:`actor_sequence` supports ``policy`` (ELMUR and LSTM policies are ones too)."""
    if not isinstance(policy, ActorCriticPolicy):
        raise TypeError(
            "Expected an ELMUR policy, sb3-contrib's RecurrentActorCriticPolicy or SB3's ActorCriticPolicy, "
            f"got {type(policy).__name__}"
        )


def actor_sequence(
    policy: BasePolicy,
    observations: TensorObs,
    timesteps: th.Tensor,
    mask: th.Tensor,
    carry: Carry = None,
    memory_bptt: int | None = -1,
) -> tuple[Distribution, Carry]:
    """
    Action distribution of the masked steps of a batch of sequences, and the recurrent state after them.

    Row ``b`` holds consecutive steps of one episode that continue from ``carry`` (from the episode start
    when ``carry`` is None); an episode may end inside a row, the steps after its end being padding.

    :param policy: An :class:`ElmurActorCriticPolicy`, a ``RecurrentActorCriticPolicy`` or an ``ActorCriticPolicy``.
    :param observations: ``[batch, length, *obs_shape]`` (a dict of those for Dict spaces).
    :param timesteps: ``[batch, length]`` absolute step in the episode, -1 = padding. For ELMUR the rows must be
        laid out in blocks of K steps (see :mod:`sb3_elmur.elmur.segment`).
    :param mask: ``[batch, length]`` bool, the steps to return (real steps).
    :param carry: State after the previous chunk (None at the episode start): ELMUR memory, LSTM ``(h, c)``.
    :param memory_bptt: ELMUR only: override of the backbone's ``memory_bptt`` (-1: the config's).
    :return: The distribution over the masked steps, in row-major order, and the carry after the chunk
        (not detached).
    """
    check_sequence_policy(policy)
    batch, length = timesteps.shape
    if isinstance(policy, ElmurActorCriticPolicy):
        memory = policy.backbone.initial_memory(batch) if carry is None else carry
        distribution, memory = policy.actor_distribution(SegmentBatch(observations, timesteps, mask, memory), memory_bptt)
        return distribution, memory
    flat_obs = flatten_time(observations)
    flat_mask = mask.flatten()
    if isinstance(policy, RecurrentActorCriticPolicy):
        lstm = policy.lstm_actor
        if carry is None:
            zeros = th.zeros(lstm.num_layers, batch, lstm.hidden_size, device=policy.device)
            carry = (zeros, zeros.clone())
        starts = th.zeros(batch * length, device=policy.device)  # rows continue from ``carry``
        features = BasePolicy.extract_features(policy, flat_obs, policy.pi_features_extractor)
        latent, carry = policy._process_sequence(features, carry, starts, lstm)
        latent = policy.mlp_extractor.forward_actor(latent[flat_mask])
        return policy._get_action_dist_from_latent(latent), carry
    step_obs = {k: v[flat_mask] for k, v in flat_obs.items()} if isinstance(flat_obs, dict) else flat_obs[flat_mask]
    return policy.get_distribution(step_obs), None


def detach_carry(carry: Carry) -> Carry:
    """The carry with gradient cut (truncated backpropagation through time between chunks)."""
    if carry is None:
        return None
    if isinstance(carry, tuple):
        return tuple(c.detach() for c in carry)
    return carry.detach()
