"""Observation standardization from a dataset (sb3_elmur.common.normalization, ElmurBC(normalize_observations=True))."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from envs import RecallEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from test_data import CueOracle

from sb3_elmur import ElmurBC, ElmurPPO
from sb3_elmur.common.normalization import StandardizedFlattenExtractor
from sb3_elmur.data import collect_trajectories

ELMUR = {"d_model": 32, "n_layers": 1, "n_heads": 4, "segment_len": 4, "n_slots": 3}
#: The cue at a thousandth of the scale of the other feature (as a cube's start position beside joint angles).
SCALE = np.array([1e-3, 1.0], dtype=np.float32)


def scaled_recall(length: int = 14) -> gym.Env:
    space = gym.spaces.Box(-SCALE, SCALE, (2,), np.float32)
    return gym.wrappers.TransformObservation(RecallEnv(length), lambda o: (o * SCALE).astype(np.float32), space)


def model_and_data(normalize: bool, n_episodes: int = 64):
    env = make_vec_env(scaled_recall, n_envs=4, seed=0)
    data = collect_trajectories(env, CueOracle(), n_episodes)
    policy_kwargs = {"elmur_kwargs": ELMUR, "net_arch": [32]}
    if normalize:
        policy_kwargs["features_extractor_class"] = StandardizedFlattenExtractor
    return ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs=policy_kwargs), data


@pytest.mark.parametrize("normalize", [False, True])
def test_standardized_inputs_let_bc_learn_a_cue_a_thousand_times_smaller_than_its_neighbour(normalize):
    """The same data, model, seed and 60 updates: raw inputs stay at chance, standardized ones learn the recall."""
    model, data = model_and_data(normalize)
    trainer = ElmurBC(model, data, segments_per_sample=2, batch_size=32, learning_rate=2e-3, warmup_steps=5, seed=0,
                      normalize_observations=normalize)  # fmt: skip
    trainer.learn(60, progress_bar=False)
    success, _ = evaluate_policy(model, make_vec_env(scaled_recall, n_envs=4, seed=9), 32)
    assert success == 1.0 if normalize else success < 0.75


def test_statistics_come_from_the_data_and_are_saved_with_the_model(tmp_path):
    model, data = model_and_data(True, n_episodes=8)
    ElmurBC(model, data, batch_size=8, seed=0, normalize_observations=True).learn(2, progress_bar=False)
    extractor = model.policy.features_extractor
    assert isinstance(extractor, StandardizedFlattenExtractor)
    np.testing.assert_allclose(extractor.mean.numpy(), data.observations.mean(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(extractor.std.numpy(), np.sqrt(data.observations.var(0) + 1e-8), rtol=1e-5)
    # The forward is clip((obs - mean) / std, -10, 10), flattened.
    obs = th.tensor([[5e-4, 1.0], [1.0, -1.0]])
    expected = th.clamp((obs - extractor.mean) / extractor.std, -10, 10)
    assert th.allclose(extractor(obs), expected)
    model.save(tmp_path / "model.zip")
    loaded = ElmurPPO.load(tmp_path / "model.zip")
    assert th.equal(loaded.policy.features_extractor.mean, extractor.mean)
    assert th.equal(loaded.policy.features_extractor.std, extractor.std)
    raw = data.observations[:4]
    starts = np.ones(4, dtype=bool)
    a, _ = model.predict(raw, episode_start=starts, deterministic=True)
    b, _ = loaded.predict(raw, episode_start=starts, deterministic=True)
    np.testing.assert_array_equal(a, b)


def test_normalize_observations_needs_the_standardizing_extractor():
    model, data = model_and_data(False, n_episodes=4)
    with pytest.raises(ValueError, match=r"StandardizedFlattenExtractor.*FlattenExtractor"):
        ElmurBC(model, data, batch_size=4, normalize_observations=True)
    with pytest.raises(TypeError, match="Box"):
        StandardizedFlattenExtractor(gym.spaces.Discrete(3))
    extractor = StandardizedFlattenExtractor(gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(ValueError, match="positive std"):
        extractor.set_statistics(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        extractor.set_statistics(np.zeros(3), np.ones(3))


@pytest.mark.parametrize("name", ["elmur", "bc-lstm", "bc-mlp"])
def test_registry_models_standardize_on_request(name):
    from sb3_elmur.registry import get_model

    env = make_vec_env(scaled_recall, n_envs=1, seed=0)
    plain = get_model(name).build(env, 0, {})
    assert not plain.settings["normalize_observations"]
    assert not isinstance(plain.model.policy.features_extractor, StandardizedFlattenExtractor)
    agent = get_model(name).build(env, 0, {"normalize_observations": True})
    assert agent.settings["normalize_observations"]
    assert isinstance(agent.model.policy.features_extractor, StandardizedFlattenExtractor)
