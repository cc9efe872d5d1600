"""POPGym expert datasets: deterministic collection, resumable per task, .npz and Minari, validation on loading."""

import numpy as np
import pytest

pytest.importorskip("popgym")

from sb3_elmur.data import DatasetError, TrajectoryDataset
from sb3_elmur.envs.popgym import make_popgym_env
from sb3_elmur.envs.popgym.datasets import (
    FIRST_SEED,
    collect_expert_dataset,
    collect_popgym_datasets,
    dataset_path,
    episode_seeds,
    load_expert_dataset,
    minari_id,
    with_previous_action,
)

TASK = "popgym-RepeatPreviousEasy-v0"


def returns(dataset: TrajectoryDataset) -> np.ndarray:
    return np.add.reduceat(dataset.rewards, dataset.episode_starts)


def test_collection_is_deterministic_and_never_uses_evaluation_seeds():
    a, b = collect_expert_dataset(TASK, 4, seed=3), collect_expert_dataset(TASK, 4, seed=3)
    for name in ("observations", "actions", "rewards", "episode_lengths", "terminated", "final_observations"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    c = collect_expert_dataset(TASK, 4, seed=4)
    assert not np.array_equal(a.observations, c.observations)
    assert episode_seeds(3000, 0).min() >= FIRST_SEED > 99 and len(set(episode_seeds(5, 0)) & set(episode_seeds(5, 1))) == 0
    assert np.allclose(returns(a), 1.0), "the RepeatPrevious expert is perfect"
    a.validate(make_popgym_env(TASK).observation_space, make_popgym_env(TASK).action_space)


def test_episodes_replay_in_the_env():
    """The recorded actions, replayed from the recorded seed, give the recorded observations, rewards and ends."""
    env_id = "popgym-BattleshipEasy-v0"  # MultiDiscrete actions, episodes of varying length
    data = collect_expert_dataset(env_id, 3, seed=0)
    env = make_popgym_env(env_id)
    for index, seed in enumerate(episode_seeds(3, 0).tolist()):
        episode = data.episode(index)
        observation, _ = env.reset(seed=seed)
        for t, action in enumerate(episode["actions"]):
            assert np.array_equal(observation, episode["observations"][t])
            observation, reward, terminated, truncated, _ = env.step(action)
            assert np.float32(reward) == episode["rewards"][t]
            assert (terminated or truncated) == (t == len(episode["actions"]) - 1)
        assert np.array_equal(observation, data.final_observations[index])


def test_previous_action_variant_matches_the_wrapper():
    env_id = "popgym-BattleshipEasy-v0"
    data = collect_expert_dataset(env_id, 2, seed=0)
    env = make_popgym_env(env_id, previous_action=True)
    variant = with_previous_action(data, env.action_space)
    variant.validate(env.observation_space)
    observation, _ = env.reset(seed=int(episode_seeds(1, 0)[0]))
    for t, action in enumerate(data.episode(0)["actions"]):
        for key in ("observation", "previous_action", "previous_reward"):
            assert np.array_equal(observation[key], variant.observations[key][t]), (key, t)
        observation, *_ = env.step(action)


def test_collection_resumes_per_task_and_writes_minari(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    tasks = [TASK, "popgym-CountRecallEasy-v0"]
    done = collect_popgym_datasets(tasks, tmp_path / "data", n_episodes=3, progress_bar=False)
    assert sorted(s["env_id"] for s in done) == sorted(tasks) and all(s["episodes"] == 3 for s in done)
    assert set(minari.list_local_datasets()) == {minari_id(t) for t in tasks}
    from sb3_elmur.data import from_minari

    from_file, from_store = load_expert_dataset(dataset_path(tmp_path / "data", TASK)), from_minari(minari_id(TASK))
    assert np.array_equal(from_file.observations, from_store.observations)
    assert np.array_equal(from_file.actions, from_store.actions)
    assert collect_popgym_datasets(tasks, tmp_path / "data", n_episodes=3, progress_bar=False) == [], "nothing left to do"
    dataset_path(tmp_path / "data", TASK).write_bytes(b"truncated")  # a corrupt file is collected again
    again = collect_popgym_datasets(tasks, tmp_path / "data", n_episodes=3, progress_bar=False)
    assert [s["env_id"] for s in again] == [TASK]
    more = collect_popgym_datasets(tasks, tmp_path / "data", n_episodes=4, progress_bar=False)
    assert len(more) == 2, "a different episode count is a different dataset"


def test_malformed_minari_namespace_fails_before_writing(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    with pytest.raises(ValueError, match="Malformed"):
        collect_popgym_datasets([TASK], tmp_path / "data", n_episodes=2, namespace="bad namespace!", progress_bar=False)
    assert not (tmp_path / "data").exists() and not (tmp_path / "minari").exists()
    from sb3_elmur.data import to_minari

    data = collect_expert_dataset(TASK, 2)
    env = make_popgym_env(TASK)
    with pytest.raises(DatasetError, match="malformed Minari dataset id"):
        to_minari(data, "no version", env.observation_space, env.action_space)
    assert not (tmp_path / "minari").exists()


def test_loading_names_the_problem(tmp_path):
    data = collect_expert_dataset(TASK, 2)
    path = tmp_path / "a.npz"
    data.save_npz(path)
    assert load_expert_dataset(path, TASK).n_episodes == 2
    with pytest.raises(DatasetError, match="not of popgym-RepeatFirstEasy-v0"):
        load_expert_dataset(path, "popgym-RepeatFirstEasy-v0")
    bad = TrajectoryDataset(**{**data.__dict__, "actions": np.where(np.arange(data.n_steps) == 5, 7, data.actions)})
    bad.save_npz(path)
    with pytest.raises(DatasetError, match=r"1 actions lie outside .* \(first at step 5\)"):
        load_expert_dataset(path)
    bad = TrajectoryDataset(**{**data.__dict__, "observations": data.observations + 4})
    bad.save_npz(path)
    with pytest.raises(DatasetError, match="observations lie outside"):
        load_expert_dataset(path)
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(DatasetError, match="not a readable"):
        load_expert_dataset(path)
    unnamed = TrajectoryDataset(**{**data.__dict__, "metadata": {}})
    unnamed.save_npz(path)
    with pytest.raises(DatasetError, match="no env_id"):
        load_expert_dataset(path)
