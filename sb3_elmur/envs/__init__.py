"""Environments and wrappers for memory tasks; importing this module registers their gymnasium ids."""

import gymnasium as gym

from sb3_elmur.envs.masked_velocity import NO_VELOCITY_IDS, MaskVelocityWrapper, make_cartpole_no_velocity, make_no_velocity
from sb3_elmur.envs.popgym import POPGYM_IDS, make_popgym, make_popgym_env
from sb3_elmur.envs.tmaze import TMazeEnv, TMazeOracle, TMazeVecEnv, evaluate_tmaze, tmaze_oracle, tmaze_step
from sb3_elmur.envs.tmaze_parallel import ParallelEvaluation, evaluate_tmaze_parallel


def register_no_velocity_envs(override: bool = False) -> None:
    """
    Register the ``<Name>NoVel-v<version>`` ids (positions only, see :data:`NO_VELOCITY_IDS`).

    :param override: Replace registrations of the same ids made elsewhere (rl_zoo3 registers its own, which zero
        the velocities instead of removing them).
    """
    for no_vel_id, full_id in NO_VELOCITY_IDS.items():
        if override or no_vel_id not in gym.registry:
            gym.registry.pop(no_vel_id, None)
            gym.register(no_vel_id, entry_point="sb3_elmur.envs.masked_velocity:make_no_velocity", kwargs={"env_id": full_id})


register_no_velocity_envs()
if "TMaze-v0" not in gym.registry:
    gym.register(
        "TMaze-v0", entry_point="sb3_elmur.envs.tmaze:TMazeEnv", max_episode_steps=None, kwargs={"corridor_length": 10}
    )

__all__ = [
    "NO_VELOCITY_IDS",
    "POPGYM_IDS",
    "MaskVelocityWrapper",
    "ParallelEvaluation",
    "TMazeEnv",
    "TMazeOracle",
    "TMazeVecEnv",
    "evaluate_tmaze",
    "evaluate_tmaze_parallel",
    "make_cartpole_no_velocity",
    "make_no_velocity",
    "make_popgym",
    "make_popgym_env",
    "register_no_velocity_envs",
    "tmaze_oracle",
    "tmaze_step",
]
