"""Helpers for the ElmurPPO tests."""

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_elmur import ElmurPPO
from sb3_elmur.elmur import validate_segment_layout


def recompute(model: ElmurPPO) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Old and recomputed log-probs and values of every step of the last rollout."""
    old_lp, new_lp, old_v, new_v, n_steps = [], [], [], [], 0
    with th.no_grad():
        for batch in model.rollout_buffer.get(model.batch_size):
            validate_segment_layout(batch.observations.timesteps, model.policy.segment_len)
            actions = batch.actions.long().flatten() if isinstance(model.action_space, spaces.Discrete) else batch.actions
            values, log_prob, _ = model.policy.evaluate_actions(batch.observations, actions)
            old_lp.append(batch.old_log_prob.numpy())
            new_lp.append(log_prob.numpy())
            old_v.append(batch.old_values.numpy())
            new_v.append(values.flatten().numpy())
            n_steps += int(batch.observations.mask.sum())
    return (*(np.concatenate(x) for x in (old_lp, new_lp, old_v, new_v)), n_steps)


def learn_recording_kl_and_clipping(model: ElmurPPO, total_timesteps: int) -> list[tuple[float, float]]:
    """``model.learn`` with the ``(approx_kl, clip_fraction)`` logged by every ``train()`` call."""
    logged = []
    train = model.train

    def train_and_record() -> None:
        train()
        values = model.logger.name_to_value
        logged.append((values["train/approx_kl"], values["train/clip_fraction"]))

    model.train = train_and_record  # type: ignore[method-assign]
    model.learn(total_timesteps)
    return logged
