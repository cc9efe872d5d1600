"""Trajectory datasets for behaviour cloning: in memory, collected from an expert, stored as .npz."""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

NumpyObs = np.ndarray | dict[str, np.ndarray]
NPZ_FORMAT = "sb3_elmur.trajectories/1"


class DatasetError(ValueError):
    """A dataset is malformed; the message says exactly what is wrong."""


def outside_space(space: spaces.Space, values: np.ndarray) -> np.ndarray:
    """
    Indices of the rows of ``values`` (one element of ``space`` per row) that ``space`` does not contain; vectorized
    for Discrete, MultiDiscrete, MultiBinary and Box, row by row for other spaces.

    :param space: The space.
    :param values: ``[n, *space.shape]`` (``[n]`` or ``[n, 1]`` for Discrete).
    """
    n = values.shape[0]
    flat = values.reshape(n, -1)
    integral = np.issubdtype(flat.dtype, np.integer) or bool(np.all(flat == np.round(flat)))
    if isinstance(space, spaces.Discrete):
        ok = (flat[:, 0] >= space.start) & (flat[:, 0] < space.start + space.n) & integral
    elif isinstance(space, spaces.MultiDiscrete):
        start = np.asarray(space.start).reshape(-1)
        ok = ((flat >= start) & (flat < start + np.asarray(space.nvec).reshape(-1))).all(axis=1) & integral
    elif isinstance(space, spaces.MultiBinary):
        ok = ((flat == 0) | (flat == 1)).all(axis=1)
    elif isinstance(space, spaces.Box):
        box = flat.astype(space.dtype) if np.issubdtype(space.dtype, np.floating) else flat
        ok = ((box >= space.low.reshape(-1)) & (box <= space.high.reshape(-1))).all(axis=1)
    else:
        ok = np.array([space.contains(values[i].astype(space.dtype)) for i in range(n)], dtype=bool)
    return np.flatnonzero(~ok)


@dataclass
class TrajectoryDataset:
    """
    Episodes stored back to back, with the length of each.

    :param observations: ``[n_steps, *obs_shape]`` (a dict of those for Dict observations): the
        observation each action was taken on.
    :param actions: ``[n_steps, *action_shape]``.
    :param rewards: ``[n_steps]``.
    :param episode_lengths: ``[n_episodes]``, positive, summing to ``n_steps``.
    :param terminated: ``[n_episodes]`` bool, True where the episode ended by termination (not a time limit).
    :param metadata: Free-form JSON-serialisable information (env id, expert, ...).
    :param final_observations: ``[n_episodes, *obs_shape]`` (or a dict), the observation after each
        episode's last action, when known (needed to write Minari datasets).
    """

    observations: NumpyObs
    actions: np.ndarray
    rewards: np.ndarray
    episode_lengths: np.ndarray
    terminated: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    final_observations: NumpyObs | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def episode_starts(self) -> np.ndarray:
        """Index of the first step of every episode."""
        return np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]]).astype(np.int64)

    def observation_arrays(self) -> dict[str, np.ndarray]:
        return self.observations if isinstance(self.observations, dict) else {"": self.observations}

    def validate(self, observation_space: spaces.Space | None = None, action_space: spaces.Space | None = None) -> None:
        """
        Check shapes, dtypes, lengths and values; raise :class:`DatasetError` naming the problem.

        :param observation_space: If given, observations must match its shape.
        :param action_space: If given, actions must match its shape and lie inside it.
        """
        lengths = np.asarray(self.episode_lengths)
        if lengths.ndim != 1 or lengths.size == 0:
            raise DatasetError(f"episode_lengths must be a non-empty 1-D array, got shape {lengths.shape}")
        if not np.issubdtype(lengths.dtype, np.integer) or (lengths <= 0).any():
            raise DatasetError("episode_lengths must be positive integers")
        total = int(lengths.sum())
        fields = {"actions": self.actions, "rewards": self.rewards}
        fields.update({f"observations{'/' + k if k else ''}": v for k, v in self.observation_arrays().items()})
        for name, array in fields.items():
            if not isinstance(array, np.ndarray):
                raise DatasetError(f"{name} must be a numpy array, got {type(array).__name__}")
            if array.shape[:1] != (total,):
                raise DatasetError(
                    f"{name} has {array.shape[0] if array.ndim else 0} steps but episode_lengths sum to {total}"
                )
            if array.dtype.kind not in "biuf":
                raise DatasetError(f"{name} has unsupported dtype {array.dtype}")
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                bad = int(np.argwhere(~np.isfinite(array.reshape(total, -1)))[0, 0])
                raise DatasetError(f"{name} contains NaN or infinite values (first at step {bad})")
        if self.rewards.ndim != 1:
            raise DatasetError(f"rewards must have shape [n_steps], got {self.rewards.shape}")
        if np.asarray(self.terminated).shape != lengths.shape:
            raise DatasetError(f"terminated must have one entry per episode ({lengths.size}), got {np.shape(self.terminated)}")
        if self.final_observations is not None:
            finals = self.final_observations if isinstance(self.final_observations, dict) else {"": self.final_observations}
            for key, array in self.observation_arrays().items():
                final = finals.get(key)
                if final is None or np.shape(final) != (lengths.size, *array.shape[1:]):
                    raise DatasetError(
                        f"final_observations{'/' + key if key else ''} must have shape {(lengths.size, *array.shape[1:])}, "
                        f"got {None if final is None else np.shape(final)}"
                    )
        if observation_space is not None:
            expected = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"": observation_space}
            arrays = self.observation_arrays()
            if set(expected) != set(arrays):
                raise DatasetError(f"observation keys {sorted(arrays)} do not match the space's {sorted(expected)}")
            for key, space in expected.items():
                shape = (1,) if isinstance(space, spaces.Discrete) else space.shape
                got = arrays[key].shape[1:] or (1,)
                if tuple(got) != tuple(shape):
                    raise DatasetError(f"observations{'/' + key if key else ''} have shape {got}, the space has {shape}")
                outside = outside_space(space, arrays[key])
                if outside.size:
                    raise DatasetError(
                        f"{outside.size} observations{'/' + key if key else ''} lie outside the observation space {space} "
                        f"(first at step {outside[0]})"
                    )
        if action_space is not None:
            actions = self.actions.reshape(total, *(action_space.shape or ()))
            outside = outside_space(action_space, actions)
            if outside.size:
                raise DatasetError(
                    f"{outside.size} actions lie outside the action space {action_space} (first at step {outside[0]})"
                )

    def episode(self, index: int) -> dict[str, Any]:
        """Observations, actions and rewards of one episode."""
        start = int(self.episode_starts[index])
        window = slice(start, start + int(self.episode_lengths[index]))
        obs = (
            {k: v[window] for k, v in self.observations.items()}
            if isinstance(self.observations, dict)
            else self.observations[window]
        )
        return {"observations": obs, "actions": self.actions[window], "rewards": self.rewards[window]}

    def select(self, episodes: np.ndarray) -> "TrajectoryDataset":
        """
        A dataset of some of the episodes, in their order (e.g. the successful demonstrations:
        ``data.select(data.terminated)`` where success terminates the episode).

        :param episodes: Episode indices, or a ``[n_episodes]`` boolean mask.
        :return: A new dataset (the arrays are copies; the metadata is shared).
        """
        episodes = np.asarray(episodes)
        if episodes.dtype == bool:
            if episodes.shape != (self.n_episodes,):
                raise ValueError(f"a mask of episodes needs shape ({self.n_episodes},), not {episodes.shape}")
            episodes = np.flatnonzero(episodes)
        if episodes.size == 0:
            raise ValueError("no episode selected")
        if episodes.min() < -self.n_episodes or episodes.max() >= self.n_episodes:
            raise IndexError(f"episode indices must lie in [0, {self.n_episodes}); got {episodes.min()}..{episodes.max()}")
        starts, lengths = self.episode_starts[episodes], self.episode_lengths[episodes]
        steps = np.concatenate([np.arange(start, start + length) for start, length in zip(starts, lengths, strict=True)])

        def take(values: NumpyObs | None, index: np.ndarray) -> NumpyObs | None:
            if values is None:
                return None
            return {k: v[index] for k, v in values.items()} if isinstance(values, dict) else values[index]

        return TrajectoryDataset(
            observations=take(self.observations, steps),
            actions=self.actions[steps],
            rewards=self.rewards[steps],
            episode_lengths=lengths.copy(),
            terminated=self.terminated[episodes],
            metadata=self.metadata,
            final_observations=take(self.final_observations, episodes),
        )

    # ------------------------------------------------------------------ .npz
    def save_npz(self, path: str | Path) -> None:
        """Write the dataset to a compressed ``.npz`` file (no pickled objects)."""
        arrays = {f"observations{'/' + k if k else ''}": v for k, v in self.observation_arrays().items()}
        if self.final_observations is not None:
            finals = self.final_observations if isinstance(self.final_observations, dict) else {"": self.final_observations}
            arrays.update({f"final_observations{'/' + k if k else ''}": v for k, v in finals.items()})
        arrays.update(
            actions=self.actions,
            rewards=self.rewards,
            episode_lengths=self.episode_lengths,
            terminated=self.terminated,
            format=np.array(NPZ_FORMAT),
            metadata=np.array(json.dumps(self.metadata)),
        )
        np.savez_compressed(path, **arrays)

    @classmethod
    def load_npz(cls, path: str | Path) -> "TrajectoryDataset":
        """
        Read a dataset written by :meth:`save_npz`, validating it.

        :param path: File path.
        :raises DatasetError: for a file that is not such a dataset or is inconsistent.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError) as error:
            raise DatasetError(f"{path}: not a readable .npz file ({error})") from error
        if contents.get("format") is None or str(contents["format"]) != NPZ_FORMAT:
            raise DatasetError(f"{path}: not an sb3_elmur trajectory file (missing format tag {NPZ_FORMAT!r})")
        missing = [k for k in ("actions", "rewards", "episode_lengths", "terminated") if k not in contents]
        if missing:
            raise DatasetError(f"{path}: missing arrays {missing}")

        def observations_named(prefix: str) -> NumpyObs | None:
            keys = sorted(k for k in contents if k == prefix or k.startswith(prefix + "/"))
            if not keys:
                return None
            return contents[prefix] if keys == [prefix] else {k.split("/", 1)[1]: contents[k] for k in keys}

        observations = observations_named("observations")
        if observations is None:
            raise DatasetError(f"{path}: missing observations")
        return cls(
            observations=observations,
            actions=contents["actions"],
            rewards=contents["rewards"],
            episode_lengths=contents["episode_lengths"],
            terminated=contents["terminated"].astype(bool),
            metadata=json.loads(str(contents.get("metadata", "{}"))),
            final_observations=observations_named("final_observations"),
        )


Expert = Callable[[NumpyObs, np.ndarray], np.ndarray] | Any


def collect_trajectories(
    env: VecEnv, expert: Expert, n_episodes: int, deterministic: bool = True, progress_bar: bool = False
) -> TrajectoryDataset:
    """
    Run an expert on a vectorized env and record ``n_episodes`` complete episodes.

    :param env: SB3 VecEnv (auto-resetting).
    :param expert: An object with SB3's recurrent ``predict(obs, state, episode_start, deterministic)``
        (an SB3 model, an oracle), or a callable ``expert(observations, episode_starts) -> actions``.
    :param n_episodes: Episodes to record (episodes still running at the end are discarded, never cut).
    :param deterministic: Passed to ``predict``.
    :param progress_bar: Show a tqdm progress bar.
    """
    n_envs = env.num_envs
    running: list[list[tuple[Any, np.ndarray, float]]] = [[] for _ in range(n_envs)]
    finished: list[tuple[list[tuple[Any, np.ndarray, float]], bool, Any]] = []
    obs = env.reset()
    starts = np.ones(n_envs, dtype=bool)
    state = None
    progress = None
    if progress_bar:
        from tqdm.auto import tqdm

        progress = tqdm(total=n_episodes, unit="episode", desc="collecting")
    while len(finished) < n_episodes:
        if hasattr(expert, "predict"):
            actions, state = expert.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
        else:
            actions = expert(obs, starts)
        actions = np.asarray(actions)
        new_obs, rewards, dones, infos = env.step(actions)
        for i in range(n_envs):
            step_obs = {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]
            running[i].append((step_obs, actions[i], float(rewards[i])))
            if dones[i]:
                final = infos[i].get("terminal_observation")
                finished.append((running[i], not infos[i].get("TimeLimit.truncated", False), final))
                running[i] = []
                if progress is not None:
                    progress.update(1)
        obs, starts = new_obs, dones
    if progress is not None:
        progress.close()
    episodes = finished[:n_episodes]
    steps = [step for episode, _, _ in episodes for step in episode]
    first = steps[0][0]

    def stack(items: list[Any]) -> NumpyObs:
        if isinstance(first, dict):
            return {k: np.stack([item[k] for item in items]) for k in first}
        return np.stack(items)

    observations = stack([s[0] for s in steps])
    finals = [final for _, _, final in episodes]
    final_observations = stack(finals) if all(final is not None for final in finals) else None
    return TrajectoryDataset(
        observations=observations,
        actions=np.stack([s[1] for s in steps]),
        rewards=np.array([s[2] for s in steps], dtype=np.float32),
        episode_lengths=np.array([len(e) for e, _, _ in episodes], dtype=np.int64),
        terminated=np.array([t for _, t, _ in episodes], dtype=bool),
        metadata={"n_envs": n_envs, "expert": type(expert).__name__},
        final_observations=final_observations,
    )
