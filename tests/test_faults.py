"""Bad numbers are refused where they enter: non-finite env outputs during learn(), corrupted states in predict()."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from envs import RandomLengthEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_elmur import ElmurPPO

ELMUR = {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}


class BadValueAt(gym.Wrapper):
    """Returns NaN in the reward or the observation at the ``at``-th step of the wrapped env."""

    def __init__(self, env: gym.Env, at: int, what: str) -> None:
        super().__init__(env)
        self.at, self.what, self.count = at, what, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        if self.count == self.at:
            if self.what == "reward":
                reward = float("nan")
            else:
                obs = np.full_like(obs, np.inf)
        return obs, reward, terminated, truncated, info


class Snapshot(BaseCallback):
    """Copies the parameters and the optimizer state at the start of every rollout."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self.params = {k: v.clone() for k, v in self.model.policy.state_dict().items()}
        optimizer = self.model.policy.optimizer.state_dict()["state"]
        self.optimizer = {k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.items()}


@pytest.mark.parametrize("what", ["reward", "observation"])
def test_non_finite_env_output_is_refused_before_any_update(what):
    bad_env = 1
    env = DummyVecEnv(
        [lambda i=i: Monitor(BadValueAt(RandomLengthEnv(), 30, what) if i == bad_env else RandomLengthEnv()) for i in range(2)]
    )
    env.seed(0)
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=16, batch_size=32, n_epochs=2, seed=0, policy_kwargs={"elmur_kwargs": ELMUR}
    )
    snapshot = Snapshot()
    with pytest.raises(ValueError, match=rf"env {bad_env} returned a non-finite {what}.* at timestep 60 "):
        model.learn(200, callback=snapshot)
    assert snapshot.optimizer, "an update happened before the bad step (the test must cover that)"
    for key, value in model.policy.state_dict().items():
        assert th.equal(value, snapshot.params[key]), key
    for key, state in model.policy.optimizer.state_dict()["state"].items():
        for name, tensor in state.items():
            assert th.equal(tensor, snapshot.optimizer[key][name])


def test_tampered_states_are_refused_by_predict():
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0)
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=8, seed=0, policy_kwargs={"elmur_kwargs": ELMUR})
    obs = env.reset()
    state, starts = None, np.ones(2, dtype=bool)
    for _ in range(9):
        _, state = model.predict(obs, state=state, episode_start=starts)
        starts = np.zeros(2, dtype=bool)
    model.predict(obs, state=state)  # the untouched state is accepted

    def edited(index: int, change) -> tuple:
        arrays = [np.array(a) for a in state]
        change(arrays[index])
        return tuple(arrays)

    def put_nan(a):
        a.flat[0] = np.nan

    def negate(a):
        a[:] = -3

    def shift(a):
        a[a >= 0] += 1

    with pytest.raises(ValueError, match="memory_vectors contains NaN"):
        model.predict(obs, state=edited(0, put_nan))
    with pytest.raises(ValueError, match="keys contains NaN"):
        model.predict(obs, state=edited(3, put_nan))
    with pytest.raises(ValueError, match="negative step"):
        model.predict(obs, state=edited(2, negate))
    assert (state[1] >= 0).any(), "the test needs a written slot"
    with pytest.raises(ValueError, match="memory_timestamps"):
        model.predict(obs, state=edited(1, shift))


def test_tampered_previous_segment_timestamps_are_refused():
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0)
    elmur = {**ELMUR, "read_previous_segment": True}
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=8, seed=0, policy_kwargs={"elmur_kwargs": elmur})
    k, m = model.policy.segment_len, model.policy.elmur_config.n_slots
    obs, state = env.reset(), None
    for t in range(2 * k + 1):
        _, state = model.predict(obs, state=state, episode_start=np.full(2, t == 0))
    arrays = [np.array(a) for a in state]
    assert (arrays[1][..., m:] >= 0).all(), "the previous segment's slots are written"
    model.predict(obs, state=tuple(arrays))
    arrays[1][..., m:] -= k  # steps of an older segment
    with pytest.raises(ValueError, match="memory_timestamps"):
        model.predict(obs, state=tuple(arrays))


def test_tampered_token_shift_timestamps_are_refused():
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0)
    elmur = {**ELMUR, "token_shift": True}
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=8, seed=0, policy_kwargs={"elmur_kwargs": elmur})
    obs, state = env.reset(), None
    for t in range(model.policy.segment_len + 2):
        _, state = model.predict(obs, state=state, episode_start=np.full(2, t == 0))
    arrays = [np.array(a) for a in state]
    assert (arrays[1][..., -1] == arrays[2].reshape(-1, 1) - 1).all(), "the shift slot holds the last step"
    model.predict(obs, state=tuple(arrays))
    arrays[1][..., -1] -= 1  # an older step
    with pytest.raises(ValueError, match="memory_timestamps"):
        model.predict(obs, state=tuple(arrays))
