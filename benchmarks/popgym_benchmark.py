"""
POPGym-48 benchmark harness: the agents of :mod:`sb3_elmur.registry` on any subset of the 48 POPGym tasks.

Offline track (the ELMUR paper's protocol): every offline agent (ELMUR, BC-LSTM, BC-MLP by behaviour cloning with
ElmurBC, Random untrained) is trained per task on the task's expert dataset (``collect_popgym_datasets``; 3000
episodes per task by default), then evaluated on env seeds 0..99 (one VecEnv of 100 envs with those seeds, stateful
``predict`` with ``episode_start``), with softmax sampling and greedy; the history-based expert is evaluated on the
same seeds as the reference. Reported: a per-task table, the sums over All / Puzzle / Reactive as in the paper, the
paper's published sums beside ours (literature values: different data), per-task bars relative to the expert.

Online track: ElmurPPO, RecurrentPPO and PPO-MLP trained by interaction with the same budget, seeds and PPO
settings, a greedy learning curve on seeds 0..19 every ``--eval-freq`` steps, then the same final evaluation.

Every run (task, model, seed) is one JSON file in ``<output>_runs/`` (written atomically; a rerun skips the runs
whose file matches the current settings, the registry's settings of the model included, and redoes corrupt or stale
ones). Runs go to worker processes (``--workers``, one torch thread each) or, with ``--ray-address``, to a Ray
cluster through the same code path.
The table goes to ``<output>.md``, every run to ``<output>.csv``, the plot to ``<output>.png``.

    python benchmarks/popgym_benchmark.py --quick                      # offline, 5 tasks, < 15 min on 2 cores
    python benchmarks/popgym_benchmark.py --tasks all --workers 2      # offline, 48 tasks (hours)
    python benchmarks/popgym_benchmark.py --track online --tasks Easy  # online, the 16 Easy tasks (hours)
    python benchmarks/popgym_benchmark.py --report-only --output docs/results/popgym_offline
"""

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from sb3_elmur.common.callbacks import EvaluateEvery
from sb3_elmur.common.plotting import plot_learning_curves
from sb3_elmur.data import TrajectoryDataset
from sb3_elmur.envs.popgym import DIFFICULTIES, FAMILIES, POPGYM_IDS, category, check_task, make_popgym_env, parse_task
from sb3_elmur.envs.popgym.datasets import (
    DEFAULT_EPISODES,
    collect_popgym_datasets,
    dataset_path,
    load_expert_dataset,
    with_previous_action,
)
from sb3_elmur.registry import Agent, TrainingInputs, get_model, list_models

#: The quick set: fast tasks with short episodes (51 to 200 steps), four puzzle families and one reactive one.
QUICK_TASKS = (
    "popgym-RepeatPreviousEasy-v0",
    "popgym-RepeatFirstEasy-v0",
    "popgym-CountRecallEasy-v0",
    "popgym-BattleshipEasy-v0",
    "popgym-PositionOnlyCartPoleEasy-v0",
)
QUICK_OFFLINE = {"episodes": 300, "updates": 350}
QUICK_ONLINE = {"timesteps": 20_000}
#: Default online budget per task and agent (see docs/popgym.md for the measured steps/s behind it).
ONLINE_TIMESTEPS = 100_000
#: Evaluation: env seeds 0..EVAL_EPISODES-1, as in the ELMUR paper.
EVAL_EPISODES = 100
#: ELMUR's evaluation samples from the softmax, except argmax on these families (RATE ``val_popgym.py``).
GREEDY_FAMILIES_IN_PAPER = ("Battleship", "MineSweeper")
MODES = ("sampled", "greedy", "paper")
MODE_LABELS = {
    "sampled": "softmax sampling",
    "greedy": "greedy",
    "paper": "ELMUR protocol (sampling; greedy on Battleship, MineSweeper)",
}
#: Sums over the 48 tasks published in the ELMUR paper (arXiv 2510.07151; PPO-GRU data, popgym 1.0.6): All,
#: Puzzle (33 tasks), Reactive (15 tasks); None where the paper gives no split. Literature values only: the data differ.
LITERATURE_SUMS: dict[str, tuple[float | None, float | None, float | None]] = {
    "ELMUR": (10.4, 1.2, 9.2),
    "RATE": (9.5, None, None),
    "BC-MLP": (9.0, None, None),
    "DT": (5.8, None, None),
    "BC-LSTM": (-6.8, None, None),
    "Random": (-12.2, -14.6, 2.3),
}
CATEGORIES = ("all", "puzzle", "reactive")


# ---------------------------------------------------------------------------------------------------- tasks
def select_tasks(selection: Iterable[str]) -> list[str]:
    """
    The POPGym ids named by ``selection``, in POPGym's order, without duplicates.

    :param selection: Items among ``"all"``, ``"quick"``, ``"puzzle"``, ``"reactive"``, a difficulty (``"Easy"``), a
        family (``"CountRecall"``), a task (``"CountRecallEasy"`` or ``"popgym-CountRecallEasy-v0"``).
    :raises ValueError: For an unknown item, naming the closest ids (``tasks.check_task``).
    """
    chosen: set[str] = set()
    for item in selection:
        low = item.lower()
        if low == "all":
            chosen.update(POPGYM_IDS)
        elif low == "quick":
            chosen.update(QUICK_TASKS)
        elif low in ("puzzle", "reactive"):
            chosen.update(t for t in POPGYM_IDS if category(t) == low)
        elif item.capitalize() in DIFFICULTIES:
            chosen.update(t for t in POPGYM_IDS if parse_task(t)[1] == item.capitalize())
        elif item in FAMILIES:
            chosen.update(t for t in POPGYM_IDS if parse_task(t)[0] == item)
        else:
            env_id = item if item.startswith("popgym-") else f"popgym-{item}-v0"
            try:
                check_task(env_id)
            except ValueError:
                check_task(item)  # the error names the close matches of what was typed
            chosen.add(env_id)
    return [t for t in POPGYM_IDS if t in chosen]


def short_name(env_id: str) -> str:
    """``popgym-CountRecallEasy-v0`` -> ``CountRecallEasy``.

    :param env_id: A POPGym id.
    """
    return env_id.removeprefix("popgym-").removesuffix("-v0")


# ---------------------------------------------------------------------------------------------------- evaluation
def make_eval_env(env_id: str, n_episodes: int = EVAL_EPISODES, **env_kwargs: Any) -> DummyVecEnv:
    """
    One VecEnv of ``n_episodes`` envs; env ``i`` is reset with seed ``i`` (seeds 0..n-1, the paper's).

    :param env_id: A POPGym id.
    :param n_episodes: Envs (one evaluation episode each).
    :param env_kwargs: Options of :func:`make_popgym_env` (``one_hot``, ``previous_action``).
    """
    venv = DummyVecEnv([lambda: make_popgym_env(env_id, **env_kwargs) for _ in range(n_episodes)])
    venv.seed(0)  # env i gets seed 0 + i at the next reset
    return venv


def evaluate(model: Any, venv: VecEnv, deterministic: bool, seed: int = 0) -> dict[str, Any]:
    """
    Play one episode in every env of ``venv`` with stateful ``model.predict`` (``episode_start`` True at each env's
    first step) and return the per-env returns, in env order. Steps after an env's first episode are not counted.

    :param model: Anything with SB3's ``predict(observation, state, episode_start, deterministic)``; a model with
        ``observe_rewards`` (the expert) is given the rewards after every step.
    :param venv: The evaluation envs (seeded by :func:`make_eval_env`).
    :param deterministic: Greedy actions (else sampled from the policy's distribution).
    :param seed: Torch seed of the action sampling.
    """
    th.manual_seed(seed)
    start = time.perf_counter()
    observations = venv.reset()
    n = venv.num_envs
    state = None
    episode_start = np.ones(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    observe = getattr(model, "observe_rewards", None)
    while active.any():
        actions, state = model.predict(observations, state=state, episode_start=episode_start, deterministic=deterministic)
        observations, rewards, dones, _ = venv.step(actions)
        if observe is not None:
            observe(rewards)
        returns += np.where(active, rewards, 0.0)
        lengths += active
        active &= ~dones
        episode_start = dones
    return {
        "returns": returns.tolist(),
        "lengths": lengths.tolist(),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
        "seconds": time.perf_counter() - start,
    }


class LearningCurve(EvaluateEvery):
    """
    Greedy evaluation on ``venv`` every ``eval_freq`` steps (see :class:`~sb3_elmur.common.callbacks.EvaluateEvery`);
    the time spent is recorded so that it can be subtracted from the training time.

    :param venv: Evaluation envs (seeds 0..n-1).
    :param eval_freq: Environment steps between evaluations.
    """

    def __init__(self, venv: VecEnv, eval_freq: int) -> None:
        super().__init__(eval_freq)
        self.venv = venv
        self.seconds = 0.0

    def evaluate(self) -> float:
        outcome = evaluate(self.model, self.venv, deterministic=True)
        self.seconds += outcome["seconds"]
        return outcome["mean"]


# ---------------------------------------------------------------------------------------------------- datasets
def flatten_observations(space: spaces.Space, values: Any) -> np.ndarray:
    """
    ``gymnasium.spaces.flatten`` of a batch of observations (one per row), vectorized: one-hot for Discrete and
    MultiDiscrete parts, Dict parts concatenated in the space's key order; float32.

    :param space: The observation space of one step.
    :param values: ``[n, *shape]`` (a dict of those for Dict spaces).
    """
    if isinstance(space, spaces.Dict):
        return np.concatenate([flatten_observations(sub, values[key]) for key, sub in space.spaces.items()], axis=1)
    if isinstance(space, spaces.Discrete):
        flat = np.asarray(values).reshape(-1).astype(np.int64) - int(space.start)
        return np.eye(int(space.n), dtype=np.float32)[flat]
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec).reshape(-1)
        flat = np.asarray(values).reshape(len(values), -1).astype(np.int64) - np.asarray(space.start).reshape(-1)
        return np.concatenate([np.eye(int(k), dtype=np.float32)[flat[:, i]] for i, k in enumerate(nvec)], axis=1)
    if isinstance(space, spaces.Box):
        return np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    raise ValueError(f"Cannot flatten observations of {space!r}")


def dataset_directory(data_dir: str | Path, episodes: int, seed: int) -> Path:
    """Where the datasets of ``episodes`` episodes per task and collection seed ``seed`` live.

    :param data_dir: Root of the dataset folders.
    :param episodes: Episodes per task.
    :param seed: Collection seed.
    """
    return Path(data_dir).expanduser() / f"{episodes}ep_seed{seed}"


def training_dataset(
    env_id: str, directory: str | Path, observation_space: spaces.Space, previous_action: bool, one_hot: bool
) -> TrajectoryDataset:
    """
    A task's expert dataset with the observations of the env a model was built on.

    :param env_id: A POPGym id.
    :param directory: The folder of the .npz datasets.
    :param observation_space: The model's observation space (checked against the result).
    :param previous_action: Add the previous action and reward (:func:`with_previous_action`).
    :param one_hot: Flatten the observations as ``make_popgym_env(..., one_hot=True)`` does.
    """
    dataset = load_expert_dataset(dataset_path(directory, env_id), env_id)
    raw = make_popgym_env(env_id, previous_action=previous_action)
    if previous_action:
        dataset = with_previous_action(dataset, raw.action_space)
    if one_hot and not (isinstance(raw.observation_space, spaces.Box) and raw.observation_space.dtype == np.float32):
        dataset = TrajectoryDataset(
            observations=flatten_observations(raw.observation_space, dataset.observations),
            actions=dataset.actions,
            rewards=dataset.rewards,
            episode_lengths=dataset.episode_lengths,
            terminated=dataset.terminated,
            metadata={**dataset.metadata, "observations": "one-hot (make_popgym_env(env_id, one_hot=True))"},
        )
    dataset.validate(observation_space)
    return dataset


# ---------------------------------------------------------------------------------------------------- runs
@dataclass(frozen=True, eq=False)
class RunSpec:
    """
    One run: a model trained (or not) on one task with one seed and evaluated; plain data, so that it travels to
    worker processes and Ray tasks.

    :param track: ``"offline"`` or ``"online"``.
    :param task: The POPGym id.
    :param model: Registry name.
    :param seed: Seed of the model and its training.
    :param settings: Everything the result depends on besides the above (overrides, dataset, budget, evaluation, and
        the digest of the registry's settings of the model).
    :param path: The result file.
    :param threads: Torch threads of the run.
    :param command: The command line recorded with the result (not part of the fingerprint).
    """

    track: str
    task: str
    model: str
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    threads: int = 1
    command: str = ""

    def fingerprint(self) -> str:
        """What a saved result must match to be reused (and the registry's digest of the model, checked on its own:
        :meth:`~sb3_elmur.registry.ModelEntry.accepts_digest`)."""
        settings = {key: value for key, value in self.settings.items() if key != "defaults"}
        return json.dumps(
            {"track": self.track, "task": self.task, "model": self.model, "seed": self.seed, **settings},
            sort_keys=True,
            default=str,
        )


def run_file(runs_dir: str | Path, task: str, model: str, seed: int) -> Path:
    """The result file of a run.

    :param runs_dir: Folder of the run files.
    :param task: POPGym id.
    :param model: Registry name.
    :param seed: Seed.
    """
    return Path(runs_dir) / f"{short_name(task)}__{model}__seed{seed}.json"


def execute(spec: RunSpec) -> dict[str, Any]:
    """
    Do one run and write its result file atomically (the function local workers and Ray tasks run).

    :param spec: The run.
    :return: The result.
    """
    th.set_num_threads(spec.threads)
    th.manual_seed(spec.seed)
    result = run_online(spec) if spec.track == "online" else run_offline(spec)
    result.update({"fingerprint": spec.fingerprint(), "settings": spec.settings, "command": spec.command})
    if spec.path:
        path = Path(spec.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)  # atomic: an interrupted run leaves no half-written result
    return result


def _base_result(spec: RunSpec, agent: Agent) -> dict[str, Any]:
    entry = get_model(spec.model)
    family, difficulty = parse_task(spec.task)
    return {
        "track": spec.track,
        "task": spec.task,
        "family": family,
        "difficulty": difficulty,
        "category": category(spec.task),
        "model": spec.model,
        "label": entry.label,
        "kind": entry.kind,
        "seed": spec.seed,
        "parameters": agent.n_parameters,
        "trainer_settings": agent.settings,
    }


def _final_evaluation(spec: RunSpec, model: Any, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    n_episodes = spec.settings.get("eval_episodes", EVAL_EPISODES)
    evaluations = {}
    for mode, deterministic in (("sampled", False), ("greedy", True)):
        venv = make_eval_env(spec.task, n_episodes, **env_kwargs)
        evaluations[mode] = evaluate(model, venv, deterministic, seed=spec.seed)
        venv.close()
    return evaluations


def run_offline(spec: RunSpec) -> dict[str, Any]:
    """
    Train one agent on a task's expert dataset (offline agents with a trainer) and evaluate it.

    :param spec: The run (settings: ``overrides``, ``data_dir``, ``previous_action``, ``eval_episodes``).
    """
    entry = get_model(spec.model)
    env_kwargs = {"one_hot": entry.one_hot, "previous_action": bool(spec.settings.get("previous_action", False))}
    if entry.kind == "reference":
        env_kwargs = {}  # the expert acts on the raw observations
    env = DummyVecEnv([lambda: make_popgym_env(spec.task, **env_kwargs)])
    agent = entry.build(env, spec.seed, {"env_id": spec.task, **spec.settings.get("overrides", {}).get(spec.model, {})})
    start = time.perf_counter()
    if agent.trainer is not None:
        dataset = training_dataset(
            spec.task, spec.settings["data_dir"], env.observation_space, env_kwargs["previous_action"], entry.one_hot
        )
        agent.fit(TrainingInputs(dataset=dataset, seed=spec.seed, progress_bar=bool(spec.settings.get("progress_bar"))))
    train_seconds = time.perf_counter() - start
    env.close()
    return {
        **_base_result(spec, agent),
        "train_seconds": train_seconds,
        "eval": _final_evaluation(spec, agent.model, env_kwargs),
    }


def run_online(spec: RunSpec) -> dict[str, Any]:
    """
    Train one agent online on a task (online agents; reference and untrained agents are only evaluated).

    Training envs: ``n_envs`` envs seeded from ``10_000 + 1000 * seed`` (never the evaluation seeds), rewards
    normalized by ``VecNormalize`` (observations left as they are). Learning curve: greedy, on seeds
    0..``curve_episodes``-1.

    :param spec: The run (settings: ``overrides``, ``timesteps``, ``n_envs``, ``eval_freq``, ``curve_episodes``).
    """
    from stable_baselines3.common.env_util import make_vec_env

    entry = get_model(spec.model)
    env_kwargs = {"one_hot": entry.one_hot, "previous_action": bool(spec.settings.get("previous_action", False))}
    if entry.kind == "reference":
        env_kwargs = {}
    overrides = {"env_id": spec.task, **spec.settings.get("overrides", {}).get(spec.model, {})}
    n_envs = int(spec.settings.get("n_envs", 8))
    venv = make_vec_env(
        make_popgym_env, n_envs=n_envs, seed=10_000 + 1000 * spec.seed, env_kwargs={"env_id": spec.task, **env_kwargs}
    )
    env = VecNormalize(venv, norm_obs=False, norm_reward=True, gamma=0.99)
    agent = entry.build(env, spec.seed, overrides)
    curve_env = make_eval_env(spec.task, int(spec.settings.get("curve_episodes", 20)), **env_kwargs)
    curve = LearningCurve(curve_env, int(spec.settings.get("eval_freq", 10_000)))
    start = time.perf_counter()
    timesteps = 0
    if agent.trainer is not None:
        agent.fit(
            TrainingInputs(
                total_timesteps=int(spec.settings["timesteps"]),
                callback=curve,
                seed=spec.seed,
                progress_bar=bool(spec.settings.get("progress_bar")),
            )
        )
        timesteps = int(agent.model.num_timesteps)
    train_seconds = time.perf_counter() - start - curve.seconds
    env.close()
    curve_env.close()
    return {
        **_base_result(spec, agent),
        "timesteps": timesteps,
        "train_seconds": train_seconds,
        "steps_per_s": timesteps / train_seconds if timesteps else None,
        "curve": curve.curve,
        "eval": _final_evaluation(spec, agent.model, env_kwargs),
    }


def _same_registry_settings(result: dict[str, Any], spec: RunSpec) -> bool:
    """Whether a trained model's saved result was made with the registry's settings of the model as they are now."""
    if "defaults" not in spec.settings:
        return True
    return get_model(spec.model).accepts_digest(result.get("settings", {}).get("defaults"))


def load_result(spec: RunSpec) -> dict[str, Any] | None:
    """
    The saved result of a run if its file is complete and was made with the same settings, else None (the run is
    then done again; a corrupt file is reported).

    :param spec: The run.
    """
    path = Path(spec.path)
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
        for mode in ("sampled", "greedy"):
            float(result["eval"][mode]["mean"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as error:
        print(f"{path}: corrupt ({type(error).__name__}): redoing it", file=sys.stderr, flush=True)
        return None
    if result.get("fingerprint") != spec.fingerprint() or not _same_registry_settings(result, spec):
        print(f"{path}: made with other settings: redoing it", file=sys.stderr, flush=True)
        return None
    return result


# ---------------------------------------------------------------------------------------------------- execution
def _init_worker(threads: int) -> None:
    th.set_num_threads(threads)


class LocalPool:
    """
    Runs on worker processes (``workers >= 1``) or in this process (``workers == 0``).

    :param workers: Worker processes (0: run in this process, one at a time).
    :param threads: Torch threads per worker.
    """

    def __init__(self, workers: int, threads: int = 1) -> None:
        self.executor = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(threads,)) if workers > 0 else None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Schedule ``fn(*args)``; returns a future.

        :param fn: The function.
        :param args: Its arguments.
        """
        if self.executor is not None:
            return self.executor.submit(fn, *args)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # reported by the caller through the future
            future.set_exception(error)
        return future

    def shutdown(self) -> None:
        """Wait for the workers and stop them."""
        if self.executor is not None:
            self.executor.shutdown()


class RayPool:
    """
    Runs as Ray tasks on a cluster (one CPU each), through the same :func:`execute` as the local workers.
    Needs ``pip install ray`` and ``sb3_elmur`` (with popgym) installed on the cluster's nodes; this module is
    shipped by value.

    :param address: Ray cluster address (``"auto"``, ``"ray://host:10001"``, or ``"local"`` to start one here).
    :param threads: Torch threads per task (also the CPUs each task reserves).
    :param num_cpus: CPUs of a local cluster started with ``address="local"``.
    """

    def __init__(self, address: str, threads: int = 1, num_cpus: int | None = None) -> None:
        try:
            import ray
            import ray.cloudpickle
        except ImportError as error:
            raise ImportError("--ray-address needs Ray: pip install 'ray[default]>=2.9'") from error
        self.ray = ray
        if __name__ != "__main__":  # __main__ is pickled by value anyway
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        self.remote = ray.remote(num_cpus=threads)(_call)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Schedule ``fn(*args)`` as a Ray task; returns a concurrent.futures future.

        :param fn: The function.
        :param args: Its arguments.
        """
        return self.remote.remote(fn, *args).future()

    def shutdown(self) -> None:
        """Nothing to stop: the cluster stays up (``ray.shutdown()`` disconnects)."""


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def run_all(specs: Sequence[RunSpec], pool: LocalPool | RayPool, progress: bool = True) -> dict[RunSpec, dict[str, Any]]:
    """
    Do the runs whose result is not saved yet (longest first) and return every result.

    :param specs: The runs.
    :param pool: Where they run.
    :param progress: Print one line per finished run with an estimate of the time left.
    """
    results: dict[RunSpec, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        saved = load_result(spec)
        if saved is None:
            todo.append(spec)
        else:
            results[spec] = saved
    if progress:
        print(f"{len(specs)} runs: {len(results)} done already, {len(todo)} to do", flush=True)
    todo.sort(key=_expected_cost, reverse=True)
    start = time.perf_counter()
    failures = []
    for done, (spec, future) in enumerate(_completed(pool, todo), 1):
        try:
            results[spec] = future.result()
        except Exception as error:
            failures.append((spec, error))
            print(f"FAILED {short_name(spec.task)} {spec.model} seed {spec.seed}: {error!r}", file=sys.stderr, flush=True)
            continue
        if progress:
            elapsed = time.perf_counter() - start
            left = elapsed / done * (len(todo) - done)
            ev = results[spec]["eval"]
            print(
                f"[{done}/{len(todo)}] {short_name(spec.task)} {spec.model} seed {spec.seed}: "
                f"sampled {ev['sampled']['mean']:.3f}, greedy {ev['greedy']['mean']:.3f} "
                f"(train {results[spec]['train_seconds']:.0f} s) | {elapsed / 60:.1f} min, ~{left / 60:.1f} min left",
                flush=True,
            )
    if failures:
        raise RuntimeError(f"{len(failures)} runs failed, the first: {failures[0][0]}: {failures[0][1]!r}")
    return results


def _completed(pool: LocalPool | RayPool, todo: list[RunSpec]) -> Iterable[tuple[RunSpec, Future]]:
    """The runs with their futures, in the order they finish (one at a time, in order, when running in-process)."""
    if isinstance(pool, LocalPool) and pool.executor is None:
        for spec in todo:
            yield spec, pool.submit(execute, spec)
        return
    futures = {pool.submit(execute, spec): spec for spec in todo}
    for future in as_completed(futures):
        yield futures[future], future


def _expected_cost(spec: RunSpec) -> float:
    entry = get_model(spec.model)
    weight = {"offline": 3.0, "online": 5.0, "reference": 1.0}[entry.kind]
    return weight * (2.0 if "Labyrinth" in spec.task else 1.0)


# ---------------------------------------------------------------------------------------------------- reporting
def mode_mean(result: dict[str, Any], mode: str) -> float:
    """
    A run's mean return in an evaluation mode: ``"sampled"``, ``"greedy"`` or ``"paper"`` (sampled, except greedy
    on Battleship and MineSweeper as in ELMUR's evaluation).

    :param result: A run's result.
    :param mode: One of :data:`MODES`.
    """
    if mode == "paper":
        mode = "greedy" if result["family"] in GREEDY_FAMILIES_IN_PAPER else "sampled"
    return float(result["eval"][mode]["mean"])


def per_task(results: Iterable[dict[str, Any]], mode: str) -> dict[str, dict[str, float]]:
    """
    ``{model: {task: mean return}}``, averaged over seeds.

    :param results: Run results.
    :param mode: Evaluation mode.
    """
    values: dict[str, dict[str, list[float]]] = {}
    for result in results:
        values.setdefault(result["model"], {}).setdefault(result["task"], []).append(mode_mean(result, mode))
    return {model: {task: float(np.mean(v)) for task, v in tasks.items()} for model, tasks in values.items()}


def category_sums(task_returns: dict[str, float]) -> dict[str, float]:
    """
    The paper's sums of per-task mean returns: over all tasks given, the Puzzle ones and the Reactive ones.

    :param task_returns: ``{task: mean return}``.
    """
    sums = dict.fromkeys(CATEGORIES, 0.0)
    for task, value in task_returns.items():
        sums["all"] += value
        sums[category(task)] += value
    return sums


def expert_ratio(task_returns: dict[str, float], expert: dict[str, float]) -> float:
    """
    An agent's sum of per-task mean returns over the expert's, both over the tasks that both have (NaN without any,
    or where the expert's sum is 0): a ratio over the same tasks, however many of either are still missing.

    :param task_returns: ``{task: mean return}`` of the agent.
    :param expert: ``{task: mean return}`` of the expert.
    """
    common = [task for task in task_returns if task in expert]
    total = sum(expert[task] for task in common)
    return sum(task_returns[task] for task in common) / total if common and total else float("nan")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def report(results: list[dict[str, Any]], tasks: list[str], models: list[str], track: str, commands: list[str]) -> str:
    """
    The Markdown report: settings, sums per evaluation mode, literature sums, per-task table.

    :param results: Run results.
    :param tasks: Tasks of the table.
    :param models: Models of the table (registry names), in column order.
    :param track: ``"offline"`` or ``"online"``.
    :param commands: The commands that made the results.
    """
    models = [m for m in models if any(r["model"] == m for r in results)]
    labels = {m: get_model(m).label for m in models}
    # Sums (and missing-task notes) are over the tasks with results; the per-task table lists every task.
    done = [t for t in tasks if any(r["task"] == t for r in results)]
    counts = {c: sum(1 for t in done if c == "all" or category(t) == c) for c in CATEGORIES}
    lines = [f"# POPGym benchmark, {track} track", ""]
    lines += ["Produced by " + " and ".join(f"`{c}`" for c in dict.fromkeys(commands)) + ".", ""]
    trained = [r for r in results if r["settings"].get("overrides") is not None]
    settings = trained[0]["settings"] if trained else (results[0]["settings"] if results else {})
    overrides: dict[str, Any] = {}
    for r in trained:
        overrides.update(r["settings"]["overrides"])
    if track == "offline":
        lines.append(
            f"Behaviour cloning from {settings.get('episodes')} expert episodes per task (collection seed "
            f"{settings.get('data_seed')}, env seeds from 10,000), observations only"
            + (" plus the previous action and reward" if settings.get("previous_action") else " (the ELMUR protocol)")
            + f"; BC settings: sb3_elmur.registry.BC_SETTINGS, overrides: {json.dumps(overrides, sort_keys=True)}."
        )
    else:
        lines.append(
            f"Online training, {settings.get('timesteps'):,} steps per task and agent, {settings.get('n_envs')} envs, "
            f"the same PPO settings for all agents (sb3_elmur.registry.PPO_SETTINGS); overrides: "
            f"{json.dumps(overrides, sort_keys=True)}."
        )
    lines += [
        f"Evaluation: mean return over env seeds 0..{settings.get('eval_episodes', EVAL_EPISODES) - 1}, one episode "
        "each, stateful predict; seeds of the models: "
        + ", ".join(map(str, sorted({r["seed"] for r in results})))
        + ". Sums: over the tasks with results "
        + f"({counts['all']} of 48: {counts['puzzle']} Puzzle, {counts['reactive']} Reactive); All / expert: the "
        "agent's sum over the expert's, both over the tasks that both have results for.",
        "",
        "## Sums of per-task mean returns",
        "",
        "| agent | mode | All | Puzzle | Reactive | All / expert |",
        "|---|---|---:|---:|---:|---:|",
    ]
    expert = per_task(results, "greedy").get("expert", {})
    for model in models:
        entry = get_model(model)
        # Untrained agents: the expert acts greedily by construction, random agents only sample.
        modes = MODES if entry.trained else ("greedy",) if entry.kind == "reference" else ("sampled",)
        for mode in modes:
            values = per_task(results, mode).get(model, {})
            sums = category_sums(values)
            missing = len([t for t in done if t not in values])
            note = f" ({missing} tasks missing)" if missing else ""
            ratio = expert_ratio(values, expert)
            cells = [_fmt(sums[c]) if counts[c] else "-" for c in CATEGORIES]
            lines.append(f"| {labels[model]}{note} | {mode} | " + " | ".join(cells) + f" | {_fmt(ratio)} |")
    lines += [
        "",
        "Literature (ELMUR paper, arXiv 2510.07151, Table: POPGym-48 sums; BC from PPO-GRU data at 15M steps per task, "
        "popgym 1.0.6): **different data, not comparable with the rows above**; all 48 tasks.",
        "",
        "| agent | All (48) | Puzzle (33) | Reactive (15) |",
        "|---|---:|---:|---:|",
    ]
    for label, (total, puzzle, reactive) in LITERATURE_SUMS.items():
        lines.append(f"| {label} | {_fmt(total, 1)} | {_fmt(puzzle, 1)} | {_fmt(reactive, 1)} |")
    lines += ["", "## Per task (mean return; sampled / greedy)", ""]
    lines.append("| task | category | " + " | ".join(labels[m] for m in models) + " |")
    lines.append("|---|---|" + "---:|" * len(models))
    sampled, greedy = per_task(results, "sampled"), per_task(results, "greedy")
    for task in tasks:
        cells = []
        for model in models:
            s, g = sampled.get(model, {}).get(task), greedy.get(model, {}).get(task)
            deterministic = get_model(model).kind == "reference"
            cells.append("not run" if s is None else _fmt(g) if deterministic else f"{_fmt(s)} / {_fmt(g)}")
        lines.append(f"| {short_name(task)} | {category(task)} | " + " | ".join(cells) + " |")
    lines += ["", "Parameters and training time (mean over tasks):", ""]
    lines.append("| agent | parameters | training seconds per task |" + (" steps/s |" if track == "online" else ""))
    lines.append("|---|---:|---:|" + ("---:|" if track == "online" else ""))
    for model in models:
        runs = [r for r in results if r["model"] == model]
        row = f"| {labels[model]} | {int(np.mean([r['parameters'] for r in runs])):,} | "
        row += f"{np.mean([r['train_seconds'] for r in runs]):.0f} |"
        if track == "online":
            speeds = [r["steps_per_s"] for r in runs if r.get("steps_per_s")]
            row += f" {np.mean(speeds):.0f} |" if speeds else " - |"
        lines.append(row)
    return "\n".join(lines) + "\n"


def write_csv(results: list[dict[str, Any]], path: Path) -> None:
    """
    One row per run and evaluation mode.

    :param results: Run results.
    :param path: The CSV file.
    """
    columns = [
        "track",
        "task",
        "family",
        "difficulty",
        "category",
        "model",
        "label",
        "seed",
        "mode",
        "mean_return",
        "std_return",
        "episodes",
        "parameters",
        "train_seconds",
        "timesteps",
        "steps_per_s",
    ]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for r in sorted(results, key=lambda r: (r["task"], r["model"], r["seed"])):
            for mode in ("sampled", "greedy"):
                ev = r["eval"][mode]
                writer.writerow(
                    [
                        r["track"],
                        r["task"],
                        r["family"],
                        r["difficulty"],
                        r["category"],
                        r["model"],
                        r["label"],
                        r["seed"],
                        mode,
                        f"{ev['mean']:.6f}",
                        f"{ev['std']:.6f}",
                        len(ev["returns"]),
                        r["parameters"],
                        f"{r['train_seconds']:.1f}",
                        r.get("timesteps", ""),
                        "" if r.get("steps_per_s") is None else f"{r['steps_per_s']:.1f}",
                    ]
                )


def plot(results: list[dict[str, Any]], tasks: list[str], models: list[str], track: str, path: Path) -> None:
    """
    Per-task bars of each agent's mean return relative to the expert's (sampled and greedy panels); for the online
    track also the learning curves.

    :param results: Run results.
    :param tasks: Tasks.
    :param models: Models (registry names).
    :param track: ``"offline"`` or ``"online"``.
    :param path: The PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    expert = per_task(results, "greedy").get("expert", {})
    shown = [m for m in models if m != "expert" and any(r["model"] == m for r in results)]
    curves = track == "online" and any(r.get("curve") for r in results)
    rows = 3 if curves else 2
    fig = plt.figure(figsize=(max(7.0, 0.9 * len(tasks) + 2), 3.2 * rows))
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(tasks))
    for row, mode in enumerate(("sampled", "greedy")):
        ax = fig.add_subplot(rows, 1, row + 1)
        values = per_task(results, mode)
        for i, model in enumerate(shown):
            heights = [values.get(model, {}).get(t, np.nan) / expert[t] if expert.get(t) else np.nan for t in tasks]
            ax.bar(x + (i - (len(shown) - 1) / 2) * width, heights, width, label=get_model(model).label)
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xticks(x, [short_name(t) for t in tasks], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(f"return / expert\n({mode})")
        finite = [
            h
            for model in shown
            for t in tasks
            if np.isfinite(h := values.get(model, {}).get(t, np.nan) / expert.get(t, np.nan))
        ]
        ax.set_ylim(min([-1.1, *finite]) - 0.1, 1.3)
        ax.grid(axis="y", alpha=0.3)
        if row == 0:
            ax.legend(fontsize=7, ncol=len(shown), loc="lower left")
            ax.set_title(f"POPGym {track}: mean return over seeds 0..99 relative to the expert (dashed = expert)", fontsize=9)
    if curves:
        ax = fig.add_subplot(rows, 1, 3)
        for model in shown:
            runs = [r for r in results if r["model"] == model and r.get("curve")]
            if not runs:
                continue
            # Mean over tasks of the return relative to the expert, against steps (band: min-max over tasks and seeds).
            relative = [[(s, v / expert[r["task"]]) for s, v in r["curve"]] for r in runs if expert.get(r["task"])]
            plot_learning_curves(ax, relative, get_model(model).label)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("greedy return / expert\n(mean over tasks, seeds 0..19)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main
#: Values of ``--set`` written as Python literals.
PYTHON_LITERALS: dict[str, Any] = {"True": True, "False": False, "None": None}


def parse_overrides(values: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """
    ``["elmur.updates=500", "bc-lstm.learning_rate=3e-3", "elmur.elmur_kwargs={\\"n_slots\\": 2}"]`` ->
    ``{"elmur": {"updates": 500, ...}, ...}``; ``*.updates=500`` applies to every model given later in ``models``.

    :param values: ``model.key=value`` strings; values are parsed as JSON when they can be, ``True``, ``False`` and
        ``None`` as Python's (so that ``normalize_observations=False`` is not the true string ``"False"``), anything
        else stays a string.
    """
    overrides: dict[str, dict[str, Any]] = {}
    for item in values or []:
        target, _, value = item.partition("=")
        model, _, key = target.partition(".")
        if not key or not value:
            raise ValueError(f"--set expects model.key=value, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = PYTHON_LITERALS.get(value, value)
        overrides.setdefault(model, {})[key] = parsed
    return overrides


def _expand_overrides(overrides: dict[str, dict[str, Any]], models: list[str], track: str) -> dict[str, dict[str, Any]]:
    trained = [m for m in models if get_model(m).kind == track and get_model(m).trained]
    expanded = {m: dict(overrides.get("*", {})) for m in trained if overrides.get("*")}
    for model, values in overrides.items():
        if model != "*":
            get_model(model)
            expanded.setdefault(model, {}).update(values)
    return expanded


def build_parser() -> argparse.ArgumentParser:
    """The command line of the harness."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--track", choices=["offline", "online"], default="offline")
    parser.add_argument("--quick", action="store_true", help="5 tasks, small dataset and budget (< 15 min on 2 cores)")
    parser.add_argument(
        "--tasks",
        nargs="+",
        help="ids, short ids (CountRecallEasy), families, Easy/Medium/Hard, "
        "puzzle/reactive, quick or all (default: quick with --quick, else all)",
    )
    parser.add_argument("--models", nargs="+", help="registry names (default: the track's agents, Random and the expert)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="model seeds")
    parser.add_argument("--episodes", type=int, help=f"expert episodes per task (default {DEFAULT_EPISODES}; quick 300)")
    parser.add_argument("--data-seed", type=int, default=0, help="collection seed of the datasets")
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("SB3_ELMUR_POPGYM_DATA", "~/.cache/sb3_elmur/popgym"),
        help="root of the dataset folders (env SB3_ELMUR_POPGYM_DATA)",
    )
    parser.add_argument("--minari", action="store_true", help="also write the datasets as Minari datasets")
    parser.add_argument("--updates", type=int, help="BC gradient steps of every cloned model (default 2000; quick 150)")
    parser.add_argument("--previous-action", action="store_true", help="observe the previous action and reward too")
    parser.add_argument(
        "--timesteps",
        type=int,
        help=f"online steps per task and agent (default {ONLINE_TIMESTEPS:,}; quick {QUICK_ONLINE['timesteps']:,})",
    )
    parser.add_argument("--n-envs", type=int, default=8, help="online training envs")
    parser.add_argument("--eval-freq", type=int, help="online learning-curve period in steps (default timesteps / 10)")
    parser.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES, help="evaluation seeds 0..N-1")
    parser.add_argument(
        "--set",
        nargs="+",
        dest="overrides",
        metavar="MODEL.KEY=VALUE",
        help="override a registry setting, e.g. elmur.updates=500 'elmur.elmur_kwargs={\"n_slots\": 2}' "
        "(*.key: every trained model)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (0: in this process)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--ray-address", help="run on this Ray cluster ('auto', 'ray://host:10001', 'local')")
    parser.add_argument("--output", help="prefix of the outputs (default docs/results/popgym_<track>[_quick])")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from the saved runs")
    parser.add_argument("--progress-bar", action="store_true", help="training progress bars (workers=0 only)")
    parser.add_argument("--list-models", action="store_true", help="list the registry and exit")
    return parser


def main(argv: Sequence[str] | None = None, command: str | None = None) -> list[dict[str, Any]]:
    """
    Run the benchmark from command-line arguments.

    :param argv: Arguments (default ``sys.argv[1:]``).
    :param command: The command recorded in the report (default: this script with ``argv``).
    :return: The results of every run selected (the runs of this command's tasks and models).
    """
    args = build_parser().parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = command or " ".join(["python benchmarks/popgym_benchmark.py", *argv])
    if args.list_models:
        for name in list_models(family="popgym"):
            entry = get_model(name)
            print(f"{name:15s} {entry.kind:10s} {entry.label:14s} {entry.description}")
        return []
    track = args.track
    tasks = select_tasks(args.tasks or (["quick"] if args.quick else ["all"]))
    models = args.models or [*list_models(track, family="popgym"), "random", "expert"]
    models = list(dict.fromkeys(models))
    for model in models:
        get_model(model)
    overrides = _expand_overrides(parse_overrides(args.overrides), models, track)
    output = Path(args.output or f"docs/results/popgym_{track}{'_quick' if args.quick else ''}")
    runs_dir = output.parent / f"{output.name}_runs"
    settings: dict[str, Any] = {"eval_episodes": args.eval_episodes, "previous_action": args.previous_action}
    if track == "offline":
        episodes = args.episodes or (QUICK_OFFLINE["episodes"] if args.quick else DEFAULT_EPISODES)
        updates = args.updates or (QUICK_OFFLINE["updates"] if args.quick else None)
        if updates is not None:
            for model in models:
                if get_model(model).kind == "offline" and get_model(model).trained:
                    overrides.setdefault(model, {}).setdefault("updates", updates)
        data = dataset_directory(args.data_dir, episodes, args.data_seed)
        settings.update({"episodes": episodes, "data_seed": args.data_seed, "data_dir": str(data)})
    else:
        timesteps = args.timesteps or (QUICK_ONLINE["timesteps"] if args.quick else ONLINE_TIMESTEPS)
        settings.update(
            {
                "timesteps": timesteps,
                "n_envs": args.n_envs,
                "eval_freq": args.eval_freq or max(1, timesteps // 10),
                "curve_episodes": 20,
            }
        )
    # The report covers the whole track (its default tasks and agents), whatever part this command runs.
    default_models = [*list_models(track, family="popgym"), "random", "expert"]
    table_tasks = list(dict.fromkeys([*select_tasks(["quick"] if args.quick else ["all"]), *tasks]))
    table_models = list(dict.fromkeys([*default_models, *models]))
    specs, table_specs = [], []
    for seed in args.seeds:
        for task in table_tasks:
            for model in table_models:
                run_settings = {**settings, "overrides": {model: overrides[model]} if model in overrides else {}}
                if get_model(model).trained:
                    # The registry's own settings of the model (sizes, trainer, PPO): a change redoes its runs.
                    run_settings["defaults"] = get_model(model).defaults_digest()
                else:
                    # Not trained: independent of the dataset and the budget.
                    run_settings = {k: v for k, v in run_settings.items() if k in ("eval_episodes", "previous_action")}
                path = str(run_file(runs_dir, task, model, seed))
                spec = RunSpec(track, task, model, seed, run_settings, path, args.threads, command)
                table_specs.append(spec)
                if task in tasks and model in models:
                    specs.append(spec)
    started = time.perf_counter()
    ran: dict[RunSpec, dict[str, Any]] = {}
    if not args.report_only:
        print(f"{track} track: {len(tasks)} tasks x {len(models)} models x {len(args.seeds)} seeds -> {runs_dir}", flush=True)
        if track == "offline" and any(get_model(m).kind == "offline" and get_model(m).trained for m in models):
            collect_popgym_datasets(
                tasks, settings["data_dir"], episodes, seed=args.data_seed, workers=max(1, args.workers), minari=args.minari
            )
        pool = RayPool(args.ray_address, args.threads) if args.ray_address else LocalPool(args.workers, args.threads)
        try:
            ran = run_all(specs, pool)
        finally:
            pool.shutdown()
    table = {spec: r for spec in table_specs if (r := ran.get(spec) or load_result(spec)) is not None}
    if args.report_only and not any(spec in table for spec in specs):
        raise SystemExit(f"no saved runs with these settings in {runs_dir}")
    found = list(table.values())
    commands = [r.get("command", command) for r in found]
    text = report(found, table_tasks, table_models, track, commands)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(text)
    write_csv(found, output.with_suffix(".csv"))
    plot(found, table_tasks, table_models, track, output.with_suffix(".png"))
    print(text)
    print(
        f"wrote {output.with_suffix('.md')}, {output.with_suffix('.csv')}, {output.with_suffix('.png')} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    return [table[spec] for spec in specs if spec in table]


if __name__ == "__main__":
    main()
