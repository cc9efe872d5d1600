"""Partially observable classic control: hide the velocities so that they must be inferred from memory."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Observation indices that hold positions (kept) for the supported environments.
POSITION_INDICES = {
    "CartPole-v1": [0, 2],
    "CartPole-v0": [0, 2],
    "Pendulum-v1": [0, 1],
    "MountainCar-v0": [0],
    "MountainCarContinuous-v0": [0],
}
#: The ``<Name>NoVel-v<version>`` ids of rl_zoo3 (its ppo_lstm.yml recipes) that importing sb3_elmur.envs registers.
NO_VELOCITY_IDS = {
    "CartPoleNoVel-v1": "CartPole-v1",
    "PendulumNoVel-v1": "Pendulum-v1",
    "MountainCarNoVel-v0": "MountainCar-v0",
    "MountainCarContinuousNoVel-v0": "MountainCarContinuous-v0",
}


class MaskVelocityWrapper(gym.ObservationWrapper):
    """
    Keep only the position entries of the observation (e.g. cart position and pole angle for CartPole).

    :param env: A gymnasium env whose id is in :data:`POSITION_INDICES`, or any Box env with ``keep`` given.
    :param keep: Indices to keep (default: looked up from the env id).
    """

    def __init__(self, env: gym.Env, keep: list[int] | None = None) -> None:
        super().__init__(env)
        if keep is None:
            env_id = env.spec.id if env.spec is not None else None
            if env_id not in POSITION_INDICES:
                raise ValueError(f"No known velocity entries for {env_id!r}: pass keep=[...] explicitly")
            keep = POSITION_INDICES[env_id]
        box = env.observation_space
        if not isinstance(box, spaces.Box) or box.shape is None or len(box.shape) != 1:
            raise ValueError(f"MaskVelocityWrapper needs a 1-D Box observation space, got {box!r}")
        self.keep = np.asarray(keep, dtype=np.int64)
        self.observation_space = spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)  # type: ignore[arg-type]

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.keep]


def make_no_velocity(env_id: str, **kwargs: Any) -> gym.Env:
    """
    ``env_id`` observing only its positions. rl_zoo3's NoVel envs zero the velocity entries instead of
    dropping them: the same information, with fewer inputs here.

    :param env_id: A gymnasium id in :data:`POSITION_INDICES`.
    :param kwargs: Keyword arguments of ``gymnasium.make``.
    """
    return MaskVelocityWrapper(gym.make(env_id, **kwargs))


def make_cartpole_no_velocity(**kwargs: Any) -> gym.Env:
    """CartPole-v1 (500-step limit) observing only the cart position and the pole angle."""
    return MaskVelocityWrapper(gym.make("CartPole-v1", **kwargs))
