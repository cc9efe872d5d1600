"""Read and write Minari datasets (the Gymnasium ecosystem's offline-RL format)."""

from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_elmur.data.trajectories import DatasetError, NumpyObs, TrajectoryDataset


def _minari() -> Any:
    try:
        import minari
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ImportError('Minari is not installed: pip install "sb3_elmur[minari]"') from error
    return minari


def to_minari(
    dataset: TrajectoryDataset,
    dataset_id: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env: Any = None,
    **kwargs: Any,
) -> Any:
    """
    Write a dataset as a local Minari dataset (stored under ``MINARI_DATASETS_PATH``).

    :param dataset: The trajectories; they must include ``final_observations`` (Minari stores the
        observation after the last action), which :func:`collect_trajectories` records.
    :param dataset_id: Minari id, e.g. ``"sb3_elmur/tmaze-oracle-v0"``.
    :param observation_space: Observation space of the env.
    :param action_space: Action space of the env.
    :param env: Optional env id / env / spec stored with the dataset.
    :param kwargs: Further arguments of ``minari.create_dataset_from_buffers`` (author, description, ...).
    :return: The ``MinariDataset``.
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)  # before anything is written
    except ValueError as error:
        raise DatasetError(f"malformed Minari dataset id {dataset_id!r}: the form is [namespace/]name-v<version>") from error

    if dataset.final_observations is None:
        raise DatasetError(
            "Minari datasets need the observation after each episode's last action: final_observations is missing"
        )
    dataset.validate(observation_space, action_space)
    buffers = []
    for index in range(dataset.n_episodes):
        episode = dataset.episode(index)
        length = int(dataset.episode_lengths[index])

        def with_final(obs: np.ndarray, final: np.ndarray) -> np.ndarray:
            return np.concatenate([obs, final[None]])

        if isinstance(episode["observations"], dict):
            finals = dataset.final_observations
            observations: Any = {k: with_final(v, finals[k][index]) for k, v in episode["observations"].items()}  # type: ignore[index]
        else:
            observations = with_final(episode["observations"], dataset.final_observations[index])  # type: ignore[index]
        terminated = bool(dataset.terminated[index])
        buffers.append(
            EpisodeBuffer(
                id=index,
                observations=observations,
                actions=np.asarray(episode["actions"]).reshape(length, *(action_space.shape or ())),
                rewards=list(map(float, episode["rewards"])),
                terminations=[False] * (length - 1) + [terminated],
                truncations=[False] * (length - 1) + [not terminated],
            )
        )
    kwargs.setdefault("algorithm_name", str(dataset.metadata.get("expert", "expert")))
    return minari.create_dataset_from_buffers(
        dataset_id, buffers, env=env, observation_space=observation_space, action_space=action_space, **kwargs
    )


def from_minari(source: Any) -> TrajectoryDataset:
    """
    Read a Minari dataset into a :class:`TrajectoryDataset`, validating it.

    :param source: A ``MinariDataset`` or the id of a local Minari dataset.
    :raises DatasetError: for an inconsistent dataset (the message says what is wrong).
    """
    minari = _minari()
    data = minari.load_dataset(source) if isinstance(source, str) else source
    observations: list[Any] = []
    finals: list[Any] = []
    actions, rewards, lengths, terminated = [], [], [], []
    for episode in data.iterate_episodes():
        n = len(episode.actions) if not isinstance(episode.actions, dict) else len(next(iter(episode.actions.values())))
        obs = episode.observations
        n_obs = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        if n == 0 or n_obs != n + 1:
            raise DatasetError(f"Minari episode {episode.id}: {n_obs} observations for {n} actions (expected {n} + 1)")
        observations.append({k: v[:-1] for k, v in obs.items()} if isinstance(obs, dict) else obs[:-1])
        finals.append({k: v[-1] for k, v in obs.items()} if isinstance(obs, dict) else obs[-1])
        actions.append(np.asarray(episode.actions))
        rewards.append(np.asarray(episode.rewards, dtype=np.float32))
        lengths.append(n)
        terminated.append(bool(np.asarray(episode.terminations)[-1]))
    if not lengths:
        raise DatasetError("the Minari dataset holds no episodes")

    def join(items: list[Any], stacker: Any) -> NumpyObs:
        if isinstance(items[0], dict):
            return {k: stacker([item[k] for item in items]) for k in items[0]}
        return stacker(items)

    return TrajectoryDataset(
        observations=join(observations, np.concatenate),
        actions=np.concatenate(actions),
        rewards=np.concatenate(rewards),
        episode_lengths=np.array(lengths, dtype=np.int64),
        terminated=np.array(terminated, dtype=bool),
        metadata={"minari_id": getattr(data, "spec", None) and data.spec.dataset_id},
        final_observations=join(finals, np.stack),
    )
