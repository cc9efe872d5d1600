"""The chunked (speculative) T-Maze evaluation reproduces step-by-step acting exactly."""

import functools

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import DQN, PPO

from sb3_elmur import ElmurPPO
from sb3_elmur.envs.tmaze import OBS_NOISE, TMazeEnv, TMazeVecEnv
from sb3_elmur.envs.tmaze_parallel import evaluate_tmaze_parallel


def _models() -> dict[str, object]:
    env = TMazeVecEnv(4, corridor_length=12, seed=0)
    elmur = {"d_model": 16, "n_layers": 2, "n_heads": 2, "segment_len": 5, "n_slots": 2}
    return {
        "elmur": ElmurPPO("MlpElmurPolicy", env, seed=3, policy_kwargs={"elmur_kwargs": elmur, "net_arch": [16]}),
        "lstm": RecurrentPPO("MlpLstmPolicy", env, seed=3, policy_kwargs={"lstm_hidden_size": 16, "ortho_init": False}),
        "mlp": PPO("MlpPolicy", env, seed=3, policy_kwargs={"ortho_init": False}),
    }


def _sharpen(model) -> None:
    """Make an untrained policy's greedy action depend strongly on the observation (so that it wanders)."""
    with th.no_grad():
        model.policy.action_net.weight.mul_(50.0)


@pytest.mark.parametrize("name", ["elmur", "lstm", "mlp"])
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunked_evaluation_equals_step_by_step_acting(name: str, chunk: int):
    """
    Untrained policies wander left, right and up/down in the corridor, so the first guess (go right) is often
    wrong and several rounds are needed. Every recorded action must be the policy's greedy action when the
    recorded observations are fed one step at a time through ``predict``, and the observations must follow the
    single-env TMazeEnv dynamics under those actions.
    """
    model = _models()[name]
    _sharpen(model)
    k = model.policy.segment_len if name == "elmur" else 4
    result = evaluate_tmaze_parallel(model, (3, 12), n_episodes=24, seed=5, batch_size=10, chunk_len=chunk * k, record=True)
    assert result.forward_passes > result.chunks, "the test needs policies that leave the speculated path"
    assert len(result.trajectories) == 3
    episode = 0
    for observations, actions in result.trajectories:
        n, steps = actions.shape
        state, starts = None, np.ones(n, dtype=bool)
        for i in range(steps):
            greedy, state = model.predict(observations[:, i], state, starts, deterministic=True)
            starts = np.zeros(n, dtype=bool)
            running = actions[:, i] >= 0
            np.testing.assert_array_equal(greedy[running], actions[running, i])
        for row in range(n):
            length = result.episode_lengths[episode]
            assert (actions[row] >= 0).sum() == length
            episode += 1
    assert episode == 24


def test_observations_follow_the_single_env_dynamics():
    """Replay the recorded actions in TMazeEnv (an independent implementation of the rules)."""
    model = _models()["elmur"]
    _sharpen(model)
    result = evaluate_tmaze_parallel(model, (3, 12), n_episodes=10, seed=2, batch_size=10, record=True)
    ((observations, actions),) = result.trajectories
    batch = TMazeVecEnv(10, (3, 12), seed=2)
    batch.reset()
    lengths, goals = batch.corridor_lengths, batch.goals
    assert result.forward_passes > result.chunks
    for row in range(10):
        env = TMazeEnv(int(lengths[row]))
        env.reset(seed=0)
        env.goal = int(goals[row])
        np.testing.assert_array_equal(observations[row, 0, :OBS_NOISE], [0.0, goals[row], 0.0])
        success = False
        for i in range(int(result.episode_lengths[row])):
            obs, reward, terminated, truncated, _ = env.step(int(actions[row, i]))
            if terminated or truncated:
                success = reward == 1.0
                assert i == result.episode_lengths[row] - 1
                break
            np.testing.assert_array_equal(obs[:OBS_NOISE], observations[row, i + 1, :OBS_NOISE])
        assert success == result.successes[row]


def test_same_success_rate_as_stepwise_evaluation_without_noise():
    """Without noise both evaluations see the same mazes (goals and lengths from the same seeded VecEnv)."""
    from sb3_elmur.envs.tmaze import evaluate_tmaze

    for model in _models().values():
        _sharpen(model)
        fast = evaluate_tmaze_parallel(model, (1, 15), n_episodes=30, seed=4, batch_size=16, noise=False)
        predict = functools.partial(model.predict, deterministic=True)
        slow = evaluate_tmaze(predict, (1, 15), n_episodes=30, seed=4, batch_size=16, noise=False)
        assert fast.success_rate == slow


def test_rejects_bad_arguments():
    model = _models()["elmur"]
    with pytest.raises(ValueError, match="multiple of K"):
        evaluate_tmaze_parallel(model, 10, chunk_len=7)
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_tmaze_parallel(model, 10, n_episodes=0)
    with pytest.raises(TypeError, match="ELMUR policy"):
        evaluate_tmaze_parallel(DQN("MlpPolicy", TMazeVecEnv(2), buffer_size=10), 10)
