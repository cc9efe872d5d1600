"""
Offline datasets of the POPGym history-based experts: collected deterministically, written as .npz and as Minari
datasets, one file per task (an interrupted collection resumes at the first missing task), validated on loading.
"""

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_elmur.data import DatasetError, TrajectoryDataset
from sb3_elmur.envs.popgym.adapter import make_popgym_env, previous_action_space
from sb3_elmur.envs.popgym.experts import make_expert
from sb3_elmur.envs.popgym.tasks import check_task, parse_task, select_tasks

#: Episode ``i`` of a collection with seed ``s`` resets its env with seed ``FIRST_SEED + s * SEEDS_PER_COLLECTION + i``
#: (and seeds the expert with it): datasets never contain the evaluation seeds 0..99.
FIRST_SEED = 10_000
SEEDS_PER_COLLECTION = 1_000_000
DEFAULT_EPISODES = 3000  # per task, as in the ELMUR paper


def episode_seeds(n_episodes: int, seed: int = 0) -> np.ndarray:
    """
    The env seeds of the episodes of a collection.

    :param n_episodes: Number of episodes (at most :data:`SEEDS_PER_COLLECTION`).
    :param seed: Seed of the collection.
    """
    if not 0 < n_episodes <= SEEDS_PER_COLLECTION:
        raise ValueError(f"n_episodes must be in 1..{SEEDS_PER_COLLECTION}, got {n_episodes}")
    return FIRST_SEED + seed * SEEDS_PER_COLLECTION + np.arange(n_episodes)


def collect_expert_dataset(
    env_id: str, n_episodes: int = DEFAULT_EPISODES, seed: int = 0, progress: Callable[[int], None] | None = None
) -> TrajectoryDataset:
    """
    Play ``n_episodes`` episodes of a POPGym task with its history-based expert (greedy) and record them.

    The observations are those of :func:`make_popgym_env` (``previous_action=False``); the actions and rewards
    recorded with them give the previous-action variant (:func:`with_previous_action`).

    :param env_id: One of the 48 POPGym ids.
    :param n_episodes: Episodes to record.
    :param seed: Seed of the collection (see :data:`FIRST_SEED`); the same seed gives the same dataset.
    :param progress: Called with 1 after every episode (e.g. ``tqdm.update``).
    """
    env = make_popgym_env(env_id)
    observations: list[Any] = []
    finals: list[Any] = []
    actions: list[Any] = []
    rewards: list[float] = []
    lengths: list[int] = []
    terminated: list[bool] = []
    for episode_seed in episode_seeds(n_episodes, seed).tolist():
        expert = make_expert(env_id, seed=episode_seed)
        observation, _ = env.reset(seed=episode_seed)
        expert.reset(observation)
        length, done = 0, False
        while not done:
            action = expert.act()
            observations.append(observation)
            observation, reward, term, trunc, _ = env.step(action)
            expert.observe(action, float(reward), observation)
            actions.append(action)
            rewards.append(float(reward))
            length += 1
            done = term or trunc
        finals.append(observation)
        lengths.append(length)
        terminated.append(bool(term))
        if progress is not None:
            progress(1)
    env.close()
    return TrajectoryDataset(
        observations=np.asarray(observations),
        actions=np.asarray(actions),
        rewards=np.asarray(rewards, dtype=np.float32),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        terminated=np.asarray(terminated, dtype=bool),
        metadata={
            "env_id": env_id,
            "expert": type(expert).__name__,
            "seed": seed,
            "episodes": n_episodes,
            "first_episode_seed": int(episode_seeds(1, seed)[0]),
            "observations": "make_popgym_env(env_id), previous_action=False",
        },
        final_observations=np.asarray(finals),
    )


def dataset_path(directory: str | Path, env_id: str) -> Path:
    """The .npz file of a task's dataset in ``directory``.

    :param directory: Dataset folder.
    :param env_id: A POPGym id.
    """
    return Path(directory) / f"{env_id}.npz"


def minari_id(env_id: str, namespace: str = "popgym") -> str:
    """
    The Minari id of a task's expert dataset, ``<namespace>/<Family><Difficulty>-expert-v0``.

    :param env_id: A POPGym id.
    :param namespace: Minari namespace.
    """
    family, difficulty = parse_task(env_id)
    return f"{namespace}/{family}{difficulty}-expert-v0"


def load_expert_dataset(path: str | Path, env_id: str | None = None) -> TrajectoryDataset:
    """
    Read a task's .npz dataset and validate it against the task's spaces (shapes, values inside the spaces,
    finite values, episode lengths).

    :param path: The .npz file.
    :param env_id: The task the dataset must belong to (default: the one its metadata names).
    :raises DatasetError: For a corrupt file, a dataset of another task, or data outside the task's spaces.
    """
    dataset = TrajectoryDataset.load_npz(path)
    recorded = dataset.metadata.get("env_id")
    if recorded is None:
        raise DatasetError(f"{path}: no env_id in its metadata: not a POPGym expert dataset")
    if env_id is not None and recorded != env_id:
        raise DatasetError(f"{path}: a dataset of {recorded}, not of {env_id}")
    check_task(recorded)
    env = make_popgym_env(recorded)
    try:
        dataset.validate(env.observation_space, env.action_space)
    except DatasetError as error:
        raise DatasetError(f"{path} ({recorded}): {error}") from error
    return dataset


def with_previous_action(dataset: TrajectoryDataset, action_space: spaces.Space) -> TrajectoryDataset:
    """
    The same episodes with the observations of ``make_popgym_env(env_id, previous_action=True)``: a Dict of the
    observation, the previous action (the out-of-space "no action" value at episode starts) and the previous reward.

    :param dataset: A dataset collected with ``previous_action=False``.
    :param action_space: The task's action space.
    """
    _, no_action = previous_action_space(action_space)
    starts = np.zeros(dataset.n_steps, dtype=bool)
    starts[dataset.episode_starts] = True
    actions = dataset.actions.reshape(dataset.n_steps, *(action_space.shape or ()))
    previous = np.roll(actions, 1, axis=0)
    previous[starts] = no_action
    reward = np.roll(dataset.rewards, 1)
    reward[starts] = 0.0
    ends = dataset.episode_starts + dataset.episode_lengths - 1
    finals = {
        "observation": dataset.final_observations,
        "previous_action": actions[ends],
        "previous_reward": dataset.rewards[ends, None].astype(np.float32),
    }
    dtype = np.float32 if isinstance(action_space, spaces.Box) else np.int64
    return TrajectoryDataset(
        observations={
            "observation": dataset.observations,  # type: ignore[dict-item]
            "previous_action": previous.astype(dtype),
            "previous_reward": reward[:, None].astype(np.float32),
        },
        actions=dataset.actions,
        rewards=dataset.rewards,
        episode_lengths=dataset.episode_lengths,
        terminated=dataset.terminated,
        metadata={**dataset.metadata, "observations": "make_popgym_env(env_id), previous_action=True"},
        final_observations=finals if dataset.final_observations is not None else None,  # type: ignore[arg-type]
    )


def _collect_task(env_id: str, n_episodes: int, seed: int, directory: str, minari: bool, namespace: str) -> dict[str, Any]:
    start = time.perf_counter()
    dataset = collect_expert_dataset(env_id, n_episodes, seed)
    seconds = time.perf_counter() - start
    dataset.metadata["collection_seconds"] = seconds
    path = dataset_path(directory, env_id)
    tmp = path.with_name(path.name + ".tmp.npz")
    dataset.save_npz(tmp)
    if minari:
        from sb3_elmur.data import to_minari
        from sb3_elmur.data.minari import _minari

        local = _minari()
        if minari_id(env_id, namespace) in local.list_local_datasets():
            local.delete_dataset(minari_id(env_id, namespace))  # left by an interrupted collection of this task
        env = make_popgym_env(env_id)
        to_minari(
            dataset,
            minari_id(env_id, namespace),
            env.observation_space,
            env.action_space,
            author="sb3_elmur",
            description=f"{n_episodes} episodes of {env_id} (observations of sb3_elmur's make_popgym_env) played by the "
            f"history-based expert {dataset.metadata['expert']}, collection seed {seed}.",
        )
    tmp.replace(path)  # atomic: a task counts as done only once its file is complete
    returns = np.add.reduceat(dataset.rewards, dataset.episode_starts)
    return {
        "env_id": env_id,
        "episodes": dataset.n_episodes,
        "steps": dataset.n_steps,
        "seconds": seconds,
        "mean_return": float(returns.mean()),
    }


def _collected(env_id: str, directory: str | Path, n_episodes: int, seed: int, minari: bool, namespace: str) -> bool:
    """Whether a task's dataset is complete: its .npz has the requested episodes and seed (and Minari has it)."""
    try:
        with np.load(dataset_path(directory, env_id), allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
    except (OSError, ValueError, KeyError, EOFError):
        return False  # missing or corrupt: collect it (again)
    if meta.get("seed") != seed or meta.get("episodes") != n_episodes:
        return False
    if minari:
        from sb3_elmur.data.minari import _minari

        return minari_id(env_id, namespace) in _minari().list_local_datasets()
    return True


def collect_popgym_datasets(
    env_ids: Iterable[str],
    directory: str | Path,
    n_episodes: int = DEFAULT_EPISODES,
    seed: int = 0,
    workers: int = 1,
    minari: bool = True,
    namespace: str = "popgym",
    progress_bar: bool = True,
) -> list[dict[str, Any]]:
    """
    Collect the expert dataset of every task in ``env_ids`` that ``directory`` does not hold yet (resumable: a task
    is done once its .npz exists with the requested episodes and seed; a corrupt file is collected again).

    :param env_ids: POPGym ids.
    :param directory: Where the .npz files go (created); Minari datasets go to Minari's local folder
        (``MINARI_DATASETS_PATH``).
    :param n_episodes: Episodes per task.
    :param seed: Seed of the collection.
    :param workers: Tasks collected at once (processes).
    :param minari: Also write a Minari dataset per task (:func:`minari_id`).
    :param namespace: Minari namespace.
    :param progress_bar: Show a tqdm bar over tasks.
    :return: One summary per task collected now (env id, episodes, steps, seconds, mean return).
    """
    env_ids = list(env_ids)
    for env_id in env_ids:
        check_task(env_id)
    if minari:
        from minari.dataset.minari_dataset import parse_dataset_id

        for env_id in env_ids:
            parse_dataset_id(minari_id(env_id, namespace))  # a malformed namespace fails before anything is written
    Path(directory).mkdir(parents=True, exist_ok=True)
    todo = [env_id for env_id in env_ids if not _collected(env_id, directory, n_episodes, seed, minari, namespace)]
    summaries: list[dict[str, Any]] = []
    progress = None
    if progress_bar and todo:
        from tqdm.auto import tqdm

        progress = tqdm(total=len(todo), unit="task", desc="collecting POPGym datasets")
    args = (n_episodes, seed, str(directory), minari, namespace)
    if workers <= 1:
        for env_id in todo:
            summaries.append(_collect_task(env_id, *args))
            if progress is not None:
                progress.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_collect_task, env_id, *args) for env_id in todo]
            for future in as_completed(futures):
                summaries.append(future.result())
                if progress is not None:
                    progress.update(1)
    if progress is not None:
        progress.close()
    return summaries


def main(argv: list[str] | None = None) -> None:
    """``python -m sb3_elmur.envs.popgym.datasets --tasks all --out data/popgym``: collect the expert datasets."""
    import argparse

    parser = argparse.ArgumentParser(description="Collect the POPGym expert datasets (resumable per task).")
    parser.add_argument("--tasks", nargs="+", default=["all"], help="all, puzzle, reactive, Easy, a family, or ids")
    parser.add_argument("--out", default="data/popgym", help="folder of the .npz files")
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="episodes per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-minari", action="store_true", help="write only the .npz files")
    parser.add_argument("--namespace", default="popgym", help="Minari namespace")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    summaries = collect_popgym_datasets(
        select_tasks(args.tasks), args.out, args.episodes, args.seed, args.workers, not args.no_minari, args.namespace
    )
    for summary in sorted(summaries, key=lambda s: s["env_id"]):
        print(
            f"{summary['env_id']}: {summary['episodes']} episodes, {summary['steps']:,} steps, "
            f"mean return {summary['mean_return']:.3f}, {summary['seconds']:.1f} s"
        )
    print(f"{len(summaries)} tasks collected in {time.perf_counter() - start:.0f} s (wall)")


if __name__ == "__main__":
    main()
