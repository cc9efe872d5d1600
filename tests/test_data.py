"""Trajectory datasets: collection from experts, .npz round trips, rejection of corrupt data."""

import numpy as np
import pytest
from envs import RecallEnv
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur.data import DatasetError, TrajectoryDataset, collect_trajectories


class CueOracle:
    """Remembers the cue of each env's first observation and answers it."""

    def __init__(self) -> None:
        self.cue: np.ndarray | None = None

    def __call__(self, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
        self.cue = np.where(starts, obs[:, 0], obs[:, 0] * 0 if self.cue is None else self.cue)
        return (self.cue > 0).astype(np.int64)


def make_dataset(n_episodes: int = 12) -> TrajectoryDataset:
    env = make_vec_env(RecallEnv, n_envs=3, seed=0, env_kwargs={"length": 6})
    return collect_trajectories(env, CueOracle(), n_episodes)


def test_collect_complete_episodes_from_a_callable_expert():
    data = make_dataset()
    assert data.n_episodes == 12 and (data.episode_lengths == 6).all() and data.n_steps == 72
    assert data.rewards.sum() == 12, "the oracle succeeds in every episode"
    assert data.terminated.all()
    first_obs = data.observations[data.episode_starts]
    assert (np.abs(first_obs[:, 0]) == 1).all(), "episodes start at their first step"


def test_collect_from_an_sb3_model_with_recurrent_predict():
    from sb3_elmur import ElmurPPO

    env = make_vec_env(RecallEnv, n_envs=2, seed=0, env_kwargs={"length": 5})
    tiny = {"elmur_kwargs": {"d_model": 8, "n_layers": 1, "n_heads": 2, "segment_len": 3, "n_slots": 2}}
    model = ElmurPPO("MlpElmurPolicy", env, policy_kwargs=tiny)
    data = collect_trajectories(env, model, 4)
    assert data.n_episodes == 4 and data.n_steps == 20
    data.validate(env.observation_space, env.action_space)


def test_select_keeps_the_chosen_episodes_whole_and_in_order():
    data = TrajectoryDataset(
        observations={"a": np.arange(9.0)[:, None], "b": np.arange(9)},
        actions=np.arange(9) % 2,
        rewards=np.arange(9.0),
        episode_lengths=np.array([2, 3, 4]),
        terminated=np.array([True, False, True]),
        final_observations={"a": np.array([[10.0], [11.0], [12.0]]), "b": np.array([10, 11, 12])},
    )
    kept = data.select(data.terminated)  # the episodes that ended by success
    assert kept.n_episodes == 2 and list(kept.episode_lengths) == [2, 4] and kept.terminated.all()
    assert list(kept.rewards) == [0, 1, 5, 6, 7, 8] and list(kept.observations["b"]) == [0, 1, 5, 6, 7, 8]
    assert list(kept.final_observations["b"]) == [10, 12]
    assert kept.episode(1)["rewards"].tolist() == data.episode(2)["rewards"].tolist()
    assert list(data.select(np.array([2, 0])).rewards) == [5, 6, 7, 8, 0, 1]
    with pytest.raises(ValueError, match="shape"):
        data.select(np.array([True, False]))
    with pytest.raises(ValueError, match="no episode"):
        data.select(np.zeros(3, bool))
    with pytest.raises(IndexError, match="0, 3"):
        data.select(np.array([3]))


def test_npz_round_trip(tmp_path):
    data = make_dataset()
    data.metadata["env_id"] = "Recall"
    data.save_npz(tmp_path / "data.npz")
    loaded = TrajectoryDataset.load_npz(tmp_path / "data.npz")
    for name in ("observations", "actions", "rewards", "episode_lengths", "terminated"):
        assert np.array_equal(getattr(loaded, name), getattr(data, name)), name
    assert loaded.metadata["env_id"] == "Recall"


def test_npz_round_trip_dict_observations(tmp_path):
    data = TrajectoryDataset(
        observations={"a": np.zeros((5, 2), np.float32), "b": np.arange(5)},
        actions=np.zeros((5, 1)),
        rewards=np.zeros(5, np.float32),
        episode_lengths=np.array([2, 3]),
        terminated=np.array([True, False]),
    )
    data.save_npz(tmp_path / "dict.npz")
    loaded = TrajectoryDataset.load_npz(tmp_path / "dict.npz")
    assert set(loaded.observations) == {"a", "b"} and np.array_equal(loaded.observations["b"], np.arange(5))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"episode_lengths": np.array([3, 3])}, "episode_lengths sum to 6"),
        ({"episode_lengths": np.array([8, 0])}, "positive"),
        ({"rewards": np.zeros(7, np.float32)}, "rewards has 7 steps"),
        ({"actions": np.full((8, 1), np.nan)}, "NaN"),
        ({"terminated": np.array([True])}, "one entry per episode"),
        ({"actions": np.array(["x"] * 8)}, "dtype"),
    ],
)
def test_corrupt_datasets_are_rejected_with_the_reason(change, message):
    fields = {
        "observations": np.zeros((8, 2), np.float32),
        "actions": np.zeros((8, 1), np.int64),
        "rewards": np.zeros(8, np.float32),
        "episode_lengths": np.array([5, 3]),
        "terminated": np.array([True, True]),
    }
    fields.update(change)
    with pytest.raises(DatasetError, match=message):
        TrajectoryDataset(**fields)


def test_validation_against_spaces():
    data = make_dataset(3)
    data.validate(spaces.Box(-1, 1, (2,)), spaces.Discrete(2))
    with pytest.raises(DatasetError, match="shape"):
        data.validate(spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    with pytest.raises(DatasetError, match="outside the action space"):
        data.validate(spaces.Box(-1, 1, (2,)), spaces.Discrete(1))


def test_corrupt_files_are_rejected(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DatasetError, match="not a readable"):
        TrajectoryDataset.load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="format tag"):
        TrajectoryDataset.load_npz(tmp_path / "other.npz")
    data = make_dataset(2)
    data.save_npz(tmp_path / "cut.npz")
    with np.load(tmp_path / "cut.npz") as archive:
        contents = {k: archive[k] for k in archive.files}
    contents["actions"] = contents["actions"][:-1]  # truncated: one step missing
    np.savez(tmp_path / "cut.npz", **contents)
    with pytest.raises(DatasetError, match="actions has 11 steps"):
        TrajectoryDataset.load_npz(tmp_path / "cut.npz")


def test_minari_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from sb3_elmur.data import from_minari, to_minari

    data = make_dataset(5)
    assert data.final_observations is not None and data.final_observations.shape == (5, 2)
    to_minari(data, "sb3_elmur/recall-test-v0", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2))
    loaded = from_minari("sb3_elmur/recall-test-v0")
    for name in ("observations", "actions", "rewards", "episode_lengths", "terminated", "final_observations"):
        assert np.array_equal(np.asarray(getattr(loaded, name)).reshape(-1), np.asarray(getattr(data, name)).reshape(-1)), name


def test_minari_needs_final_observations(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    from sb3_elmur.data import to_minari

    data = make_dataset(2)
    data.final_observations = None
    with pytest.raises(DatasetError, match="final_observations"):
        to_minari(data, "sb3_elmur/x-v0", spaces.Box(-1, 1, (2,), np.float32), spaces.Discrete(2))
