"""Environments and wrappers for memory tasks; importing this module registers their gymnasium ids."""

import gymnasium as gym

from sb3_elmur.envs.masked_velocity import MaskVelocityWrapper, make_cartpole_no_velocity
from sb3_elmur.envs.popgym import make_popgym

if "CartPoleNoVel-v1" not in gym.registry:
    gym.register("CartPoleNoVel-v1", entry_point="sb3_elmur.envs.masked_velocity:make_cartpole_no_velocity")

__all__ = ["MaskVelocityWrapper", "make_cartpole_no_velocity", "make_popgym"]
