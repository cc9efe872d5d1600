"""ElmurPPO on every supported action and observation space (learning runs and stays exact), and clear errors."""

import gymnasium as gym
import numpy as np
import pytest
from envs import RandomLengthEnv
from gymnasium import spaces
from ppo_utils import recompute
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur import ElmurPPO

TINY = {"elmur_kwargs": {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}, "net_arch": [16]}
BOX = spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)

ACTION_SPACES = {
    "Discrete": spaces.Discrete(3),
    "Box": spaces.Box(-1.0, 1.0, (2,), dtype=np.float32),
    "MultiDiscrete": spaces.MultiDiscrete([2, 3]),
    "MultiBinary": spaces.MultiBinary(3),
}
OBSERVATION_SPACES = {
    "Box": (BOX, "MlpElmurPolicy"),
    "Discrete": (spaces.Discrete(5), "MlpElmurPolicy"),
    "MultiDiscrete": (spaces.MultiDiscrete([3, 4]), "MlpElmurPolicy"),
    "MultiBinary": (spaces.MultiBinary(4), "MlpElmurPolicy"),
    "image": (spaces.Box(0, 255, (36, 36, 1), dtype=np.uint8), "CnnElmurPolicy"),
    "Dict": (spaces.Dict({"vec": BOX, "flag": spaces.Discrete(2)}), "MultiInputElmurPolicy"),
}


def run(observation_space, action_space, policy="MlpElmurPolicy", **kwargs) -> ElmurPPO:
    env = make_vec_env(
        RandomLengthEnv, n_envs=2, seed=0, env_kwargs={"observation_space": observation_space, "action_space": action_space}
    )
    model = ElmurPPO(
        policy, env, n_steps=9, batch_size=16, n_epochs=1, learning_rate=0.0, seed=0, policy_kwargs=TINY, **kwargs
    )
    model.learn(3 * 9 * 2)
    return model


def assert_exact(model: ElmurPPO) -> None:
    old_lp, new_lp, old_v, new_v, n_steps = recompute(model)
    assert n_steps == model.n_steps * model.n_envs
    assert np.abs(old_lp - new_lp).max() < 1e-4
    assert np.abs(old_v - new_v).max() < 1e-4


@pytest.mark.parametrize("name", list(ACTION_SPACES))
def test_action_spaces(name):
    model = run(BOX, ACTION_SPACES[name])
    assert_exact(model)
    action, _ = model.predict(np.zeros(3, dtype=np.float32))
    assert ACTION_SPACES[name].contains(np.asarray(action, dtype=ACTION_SPACES[name].dtype))


def test_gsde_on_box_actions():
    model = run(BOX, ACTION_SPACES["Box"], use_sde=True, sde_sample_freq=4)
    assert_exact(model)


@pytest.mark.parametrize("name", list(OBSERVATION_SPACES))
def test_observation_spaces(name):
    space, policy = OBSERVATION_SPACES[name]
    model = run(space, spaces.Discrete(2), policy=policy)
    assert_exact(model)
    actions, state = model.predict(model.env.reset(), deterministic=True)
    assert actions.shape == (2,) and state[0].shape[0] == 2


@pytest.mark.parametrize(
    "space",
    [spaces.Tuple((BOX, spaces.Discrete(2))), spaces.Dict({"inner": spaces.Dict({"x": BOX})})],
    ids=["Tuple", "nested Dict"],
)
def test_unsupported_observation_space_is_rejected_at_construction(space):
    with pytest.raises((ValueError, NotImplementedError), match=r"(?i)observation"):
        env = make_vec_env(RandomLengthEnv, n_envs=1, env_kwargs={"observation_space": space})
        ElmurPPO("MultiInputElmurPolicy", env, policy_kwargs=TINY)


def test_unsupported_action_space_is_rejected_at_construction():
    env = make_vec_env(RandomLengthEnv, n_envs=1, env_kwargs={"action_space": spaces.Tuple((spaces.Discrete(2),))})
    with pytest.raises(AssertionError, match="action spaces"):
        ElmurPPO("MlpElmurPolicy", env, policy_kwargs=TINY)


def test_bad_policy_settings_are_rejected():
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match="Unknown ElmurConfig settings"):
        ElmurPPO("MlpElmurPolicy", env, policy_kwargs={"elmur_kwargs": {"n_slot": 3}})
    with pytest.raises(ValueError, match="not both"):
        ElmurPPO("MlpElmurPolicy", env, policy_kwargs={"shared_backbone": True, "enable_critic_backbone": True})
    with pytest.raises(ValueError, match="segments_per_sample"):
        ElmurPPO("MlpElmurPolicy", env, segments_per_sample=0)
