"""POPGym support: all 48 ids work out of the box with ElmurPPO, RecurrentPPO and PPO, and leak no hidden state."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env

pytest.importorskip("popgym")

from sb3_elmur import ElmurPPO
from sb3_elmur.envs.popgym import (
    LEAKING_INFO_KEYS,
    POPGYM_IDS,
    PUZZLE_FAMILIES,
    REACTIVE_FAMILIES,
    category,
    make_popgym_env,
    parse_task,
)

TINY = {"elmur_kwargs": {"d_model": 8, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}, "net_arch": [8]}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # popgym's own deprecation and env-checker warnings
        yield


def test_the_48_ids_are_popgym_1_0_7s_registry():
    import popgym  # noqa: F401

    assert set(POPGYM_IDS) == {env_id for env_id in gym.registry if env_id.startswith("popgym-")}
    assert len(POPGYM_IDS) == 48 and len(PUZZLE_FAMILIES) * 3 == 33 and len(REACTIVE_FAMILIES) * 3 == 15
    assert parse_task("popgym-NoisyPositionOnlyPendulumHard-v0") == ("NoisyPositionOnlyPendulum", "Hard")
    assert category("popgym-MineSweeperEasy-v0") == "puzzle" and category("popgym-VelocityOnlyCartpoleEasy-v0") == "reactive"


def test_unknown_ids_name_the_close_matches():
    with pytest.raises(ValueError, match="popgym-RepeatPreviousEasy-v0"):
        make_popgym_env("popgym-RepeatPrevEasy-v0")
    with pytest.raises(ValueError, match="Unknown POPGym task"):
        make_popgym_env("CartPole-v1")


@pytest.mark.parametrize("env_id", POPGYM_IDS)
def test_every_task_steps_and_trains_one_elmur_ppo_update(env_id):
    env = make_popgym_env(env_id)
    assert not isinstance(env.observation_space, (spaces.Tuple, spaces.Dict))
    observation, info = env.reset(seed=0)
    assert info == {} and env.observation_space.contains(observation)
    env.action_space.seed(0)
    for _ in range(20):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(observation) and np.isfinite(reward)
        assert not set(info) & set(LEAKING_INFO_KEYS)
        if terminated or truncated:
            env.reset()
    th.manual_seed(0)
    model = ElmurPPO(
        "MlpElmurPolicy",
        make_vec_env(make_popgym_env, 2, 0, env_kwargs={"env_id": env_id}),
        n_steps=8,
        batch_size=16,
        n_epochs=1,
        policy_kwargs=TINY,
        seed=0,
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(16)
    assert model.num_timesteps == 16
    changed = [not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True)]
    assert any(changed), f"{env_id}: one update changed no parameter"
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize(
    "env_id, key",
    [
        ("popgym-MultiarmedBanditEasy-v0", "bandits"),
        ("popgym-CountRecallEasy-v0", "counts"),
        ("popgym-LabyrinthExploreEasy-v0", "position"),
        ("popgym-LabyrinthEscapeEasy-v0", "maze"),
    ],
)
def test_hidden_state_in_info_is_stripped(env_id, key):
    raw = gym.make(env_id)
    _, raw_info = raw.reset(seed=0)
    _, _, _, _, raw_step_info = raw.step(raw.action_space.sample())
    assert key in {**raw_info, **raw_step_info}, f"popgym no longer leaks {key!r}: update LEAKING_INFO_KEYS"
    env = make_popgym_env(env_id)
    assert env.reset(seed=0)[1] == {}
    assert env.step(env.action_space.sample())[4] == {}


@pytest.mark.parametrize(
    "env_id", ["popgym-AutoencodeEasy-v0", "popgym-BattleshipEasy-v0", "popgym-PositionOnlyPendulumEasy-v0"]
)
def test_previous_action_and_reward_are_observed(env_id):
    env = make_popgym_env(env_id, previous_action=True)
    check_env(env, warn=False)
    observation, _ = env.reset(seed=1)
    assert observation["previous_reward"][0] == 0.0
    assert not env.action_space.contains(observation["previous_action"]) or isinstance(env.action_space, spaces.Box)
    action = env.action_space.sample()
    observation, reward, *_ = env.step(action)
    assert np.allclose(observation["previous_action"], action) and observation["previous_reward"][0] == np.float32(reward)
    th.manual_seed(0)
    model = ElmurPPO(
        "MultiInputElmurPolicy",
        make_vec_env(make_popgym_env, 2, 0, env_kwargs={"env_id": env_id, "previous_action": True}),
        n_steps=8,
        batch_size=16,
        n_epochs=1,
        policy_kwargs=TINY,
        seed=0,
    )
    model.learn(16)


@pytest.mark.parametrize(
    "env_id", ["popgym-ConcentrationEasy-v0", "popgym-LabyrinthEscapeEasy-v0", "popgym-CountRecallEasy-v0"]
)
@pytest.mark.parametrize("previous_action", [False, True])
def test_one_hot_observations_train_recurrent_ppo_and_ppo(env_id, previous_action):
    env = make_popgym_env(env_id, previous_action=previous_action, one_hot=True)
    assert isinstance(env.observation_space, spaces.Box) and env.observation_space.dtype == np.float32
    observation, _ = env.reset(seed=0)
    assert set(np.unique(observation)) <= {0.0, 1.0} or previous_action  # one-hot (a reward may be any float)
    kwargs = {"env_id": env_id, "previous_action": previous_action, "one_hot": True}
    for algo, policy, extra in ((RecurrentPPO, "MlpLstmPolicy", {"lstm_hidden_size": 8}), (PPO, "MlpPolicy", {})):
        model = algo(
            policy,
            make_vec_env(make_popgym_env, 2, 0, env_kwargs=kwargs),
            n_steps=8,
            batch_size=16,
            n_epochs=1,
            policy_kwargs={"net_arch": [8], **extra},
            seed=0,
        )
        model.learn(16)


def test_task_selection():
    from sb3_elmur.envs.popgym.tasks import select_tasks

    assert select_tasks(["all"]) == list(POPGYM_IDS)
    assert len(select_tasks(["puzzle"])) == 33 and len(select_tasks(["reactive", "Easy"])) == 15 + 11
    mines = [f"popgym-MineSweeper{difficulty}-v0" for difficulty in ("Easy", "Medium", "Hard")]
    assert select_tasks(["MineSweeperHard", "MineSweeper"]) == mines
    with pytest.raises(ValueError, match="did you mean MineSweeper"):
        select_tasks(["MineSweper"])
