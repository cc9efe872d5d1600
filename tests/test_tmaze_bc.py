"""Behaviour cloning learns the passive T-Maze from the oracle and generalizes to 10x longer corridors."""

import functools

import numpy as np

from sb3_elmur import ElmurPPO
from sb3_elmur.bc import ElmurBC
from sb3_elmur.data import collect_trajectories
from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv, evaluate_tmaze


def test_bc_learns_tmaze_at_20_and_still_succeeds_at_200():
    """Paper protocol in small: K = 10, S = 3, corridors 1..28 in training, 2 slots (fewer than the 21 segments at L = 200)."""
    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=0)
    data = collect_trajectories(env, TMazeOracle(), 1000)
    elmur = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2, "lru_lambda": 0.1}
    model = ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs={"elmur_kwargs": elmur, "net_arch": [32]})
    ElmurBC(model, data, segments_per_sample=3, batch_size=64, learning_rate=1e-3, warmup_steps=20, seed=0).learn(
        600, progress_bar=False
    )
    predict = functools.partial(model.predict, deterministic=True)
    assert evaluate_tmaze(predict, 20, n_episodes=100, seed=0) == 1.0
    assert evaluate_tmaze(predict, 200, n_episodes=100, seed=1) == 1.0


def test_the_same_trainer_trains_the_bc_mlp_and_bc_lstm_baselines():
    """BC-MLP (no memory) stays at chance on T-Maze; BC-LSTM (sb3-contrib's recurrent policy) learns it."""
    from sb3_contrib import RecurrentPPO
    from stable_baselines3 import PPO

    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=0)
    data = collect_trajectories(env, TMazeOracle(), 1000)
    mlp = PPO("MlpPolicy", env, seed=0, policy_kwargs={"net_arch": [64, 64]})
    trainer = ElmurBC(mlp, data, segments_per_sample=3, batch_size=64, learning_rate=1e-3, warmup_steps=20, seed=0)
    first = trainer.train_step(np.arange(64))["bc/nll"]
    trainer.learn(300, progress_bar=False)
    last = trainer.train_step(np.arange(64))["bc/nll"]
    assert last < 0.5 * first, "the MLP learns the corridor part"
    assert 0.35 < evaluate_tmaze(functools.partial(mlp.predict, deterministic=True), 20, n_episodes=100) < 0.65
    lstm_kwargs = {"lstm_hidden_size": 32, "net_arch": [32], "ortho_init": False}
    lstm = RecurrentPPO("MlpLstmPolicy", env, seed=0, policy_kwargs=lstm_kwargs)
    ElmurBC(lstm, data, segments_per_sample=3, batch_size=64, learning_rate=3e-3, warmup_steps=20, seed=0).learn(
        1000, progress_bar=False
    )
    assert evaluate_tmaze(functools.partial(lstm.predict, deterministic=True), 20, n_episodes=100) == 1.0
