"""Environment adapters: velocity masking and POPGym."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

import sb3_elmur.envs  # noqa: F401
from sb3_elmur.envs import MaskVelocityWrapper, make_popgym


def test_cartpole_no_velocity_keeps_positions_only():
    env = gym.make("CartPoleNoVel-v1")
    full = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    full_obs, _ = full.reset(seed=3)
    assert env.observation_space.shape == (2,)
    assert np.array_equal(obs, full_obs[[0, 2]])
    for _ in range(5):
        obs, *_ = env.step(1)
        full_obs, *_ = full.step(1)
        assert np.array_equal(obs, full_obs[[0, 2]])
    assert env.spec.max_episode_steps == 500 or env.unwrapped.spec.max_episode_steps == 500
    check_env(env, warn=False)


def test_mask_velocity_needs_known_env_or_indices():
    with pytest.raises(ValueError, match="keep"):
        MaskVelocityWrapper(gym.make("Acrobot-v1"))
    assert MaskVelocityWrapper(gym.make("Acrobot-v1"), keep=[0, 1, 2, 3]).observation_space.shape == (4,)


@pytest.mark.parametrize("env_id", ["popgym-RepeatPreviousEasy-v0", "popgym-AutoencodeEasy-v0", "popgym-CountRecallEasy-v0"])
def test_popgym_envs_pass_sb3_checks(env_id):
    pytest.importorskip("popgym")
    env = make_popgym(env_id)
    assert not isinstance(env.observation_space, gym.spaces.Tuple)
    check_env(env, warn=False)
