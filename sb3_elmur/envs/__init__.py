"""Environments and wrappers for memory tasks; importing this module registers their gymnasium ids."""

import gymnasium as gym

from sb3_elmur.envs.masked_velocity import MaskVelocityWrapper, make_cartpole_no_velocity
from sb3_elmur.envs.popgym import POPGYM_IDS, make_popgym, make_popgym_env
from sb3_elmur.envs.tmaze import TMazeEnv, TMazeOracle, TMazeVecEnv, evaluate_tmaze, tmaze_oracle, tmaze_step
from sb3_elmur.envs.tmaze_parallel import ParallelEvaluation, evaluate_tmaze_parallel

if "CartPoleNoVel-v1" not in gym.registry:
    gym.register("CartPoleNoVel-v1", entry_point="sb3_elmur.envs.masked_velocity:make_cartpole_no_velocity")
if "TMaze-v0" not in gym.registry:
    gym.register(
        "TMaze-v0", entry_point="sb3_elmur.envs.tmaze:TMazeEnv", max_episode_steps=None, kwargs={"corridor_length": 10}
    )

__all__ = [
    "MaskVelocityWrapper",
    "ParallelEvaluation",
    "TMazeEnv",
    "TMazeOracle",
    "TMazeVecEnv",
    "evaluate_tmaze",
    "evaluate_tmaze_parallel",
    "make_cartpole_no_velocity",
    "POPGYM_IDS",
    "make_popgym",
    "make_popgym_env",
    "tmaze_oracle",
    "tmaze_step",
]
