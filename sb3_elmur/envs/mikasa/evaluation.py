"""success_once of a policy on MIKASA-Robo, on fixed seeds, and how far a policy got in the memory variants."""

from collections.abc import Callable
from typing import Any

import numpy as np

from sb3_elmur.envs.mikasa.adapter import make_mikasa_vec_env
from sb3_elmur.envs.mikasa.experts import TIB_CUBE, TIB_OBS_DIM, TIB_REACHED, remember_color_layout

#: RememberColor's success radius (TCP to the target cube's centre; the suite's ``GOAL_THRESH``).
REACH_RADIUS = 0.05
#: TakeItBack's radius of the goal and of the start region (the cube's centre in the plane; the suite's ``GOAL_RADIUS``).
TIB_RADIUS = 0.08


def _remember_color_colors(env_id: str) -> int | None:
    """N of a ``RememberColorN-Memory-v0`` id (whose state layout is known), else None."""
    prefix = "RememberColor"
    if env_id.startswith(prefix) and "-Memory-" in env_id:
        return int(env_id[len(prefix) :].split("-")[0])
    return None


class _ReachTracker:
    """Distances from the TCP to the cubes of one RememberColor episode, read from the observations alone."""

    def __init__(self, n_colors: int, first_obs: np.ndarray) -> None:
        self.n, self.layout = n_colors, remember_color_layout(n_colors)
        self.target = int(np.argmax(first_obs[self.layout["cue"]]))  # the cue is shown at the first step
        self.nearest: list[float] = []
        self.to_target: list[float] = []

    def update(self, obs: np.ndarray) -> None:
        positions = obs[self.layout["positions"]].reshape(self.n, 3)
        if positions.any():  # the cubes are back
            distances = np.linalg.norm(positions - obs[self.layout["tcp"]], axis=1)
            self.nearest.append(float(distances.min()))
            self.to_target.append(float(distances[self.target]))

    def summary(self) -> dict[str, Any]:
        return {
            "reached_cube": bool(self.nearest) and min(self.nearest) <= REACH_RADIUS,
            "reached_target": bool(self.to_target) and min(self.to_target) <= REACH_RADIUS,
            "final_nearest_distance": self.nearest[-1] if self.nearest else float("nan"),
            "final_target_distance": self.to_target[-1] if self.to_target else float("nan"),
        }


class _TakeItBackTracker:
    """Where the cube of one TakeItBack episode went, read from the observations alone: pushed into the goal, then
    back to its start (the cube's position at the first step)."""

    def __init__(self, first_obs: np.ndarray) -> None:
        self.start = first_obs[TIB_CUBE][:2].copy()
        self.reached_goal = False
        self.final_start_distance = float("nan")

    def update(self, obs: np.ndarray) -> None:
        self.reached_goal |= bool(obs[TIB_REACHED] > 0.5)
        self.final_start_distance = float(np.linalg.norm(obs[TIB_CUBE][:2] - self.start))

    def summary(self) -> dict[str, Any]:
        return {"reached_goal": self.reached_goal, "final_start_distance": self.final_start_distance}


def _tracker(env_id: str, first_obs: np.ndarray) -> _ReachTracker | _TakeItBackTracker | None:
    """The progress tracker of a memory variant's state episode (None for other ids)."""
    n_colors = _remember_color_colors(env_id)
    if n_colors:
        return _ReachTracker(n_colors, first_obs)
    if env_id.startswith("TakeItBack") and "-Memory-" in env_id and first_obs.shape[-1] == TIB_OBS_DIM:
        return _TakeItBackTracker(first_obs)
    return None


def evaluate_episodes(
    policy: Any,
    env_id: str,
    n_episodes: int = 100,
    seed: int = 0,
    n_envs: int = 4,
    deterministic: bool = True,
    make_env: Callable[..., Any] = make_mikasa_vec_env,
    **env_kwargs: Any,
) -> list[dict[str, Any]]:
    """
    Run ``n_episodes`` episodes (seeds ``seed .. seed + n_episodes - 1``) with SB3's stateful ``predict`` and
    describe each: ``success`` (the task solved at some step: ``success_once``) and ``length``; on the RememberColor
    memory variants also ``reached_cube`` / ``reached_target`` (the TCP came within the success radius of any cube
    / of the target cube, static or not), ``final_nearest_distance`` and ``final_target_distance`` (at the last step);
    on TakeItBack's ``reached_goal`` (the cube was pushed into the goal region) and ``final_start_distance`` (the
    cube's distance to its start at the last step; the start region's radius is :data:`TIB_RADIUS`); with RGB
    observations (a dict), success and length only.

    :param policy: Anything with ``predict(observation, state, episode_start, deterministic)``.
    :param env_id: A MIKASA-Robo id.
    :param n_episodes: Episodes (a multiple of ``n_envs`` keeps every env busy).
    :param seed: First seed.
    :param n_envs: Envs run side by side; each runs ``n_episodes / n_envs`` episodes on consecutive seeds.
    :param deterministic: Greedy actions.
    :param make_env: Builds the VecEnv: ``make_env(env_id, n_envs=, seed=, **env_kwargs)``.
    :param env_kwargs: Keyword arguments of the env (e.g. ``control_mode``).
    :return: One dict per episode, in seed order.
    """
    episodes: list[dict[str, Any]] = []
    for first in range(seed, seed + n_episodes, n_envs):
        batch = min(n_envs, seed + n_episodes - first)
        env = make_env(env_id, n_envs=batch, seed=first, **env_kwargs)
        obs, state, starts = env.reset(), None, np.ones(batch, dtype=bool)
        # Progress statistics read the state vector; RGB (dict) observations get success and length only.
        trackers = None if isinstance(obs, dict) else [_tracker(env_id, o) for o in obs]
        trackers = trackers if trackers and trackers[0] is not None else None
        done = np.zeros(batch, dtype=bool)
        outcome: list[dict[str, Any]] = [{} for _ in range(batch)]
        while not done.all():
            actions, state = policy.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
            obs, _, dones, infos = env.step(actions)
            for i in np.flatnonzero(~done):
                if trackers is not None:  # at a done, obs[i] is already the next episode's
                    trackers[i].update(infos[i]["terminal_observation"] if dones[i] else obs[i])
                if dones[i]:
                    outcome[i] = {"success": bool(infos[i].get("is_success", False)), "length": int(infos[i]["episode"]["l"])}
                    if trackers is not None:
                        outcome[i].update(trackers[i].summary())
            done |= dones
            starts = dones
        env.close()
        episodes.extend(outcome)
    return episodes


def evaluate_success(
    policy: Any,
    env_id: str,
    n_episodes: int = 100,
    seed: int = 0,
    n_envs: int = 4,
    deterministic: bool = True,
    make_env: Callable[..., Any] = make_mikasa_vec_env,
    **env_kwargs: Any,
) -> float:
    """
    Fraction of ``n_episodes`` episodes (seeds ``seed .. seed + n_episodes - 1``) in which the task was solved at some
    step (``success_once``), with SB3's stateful ``predict``; the parameters are those of :func:`evaluate_episodes`.
    """
    episodes = evaluate_episodes(policy, env_id, n_episodes, seed, n_envs, deterministic, make_env, **env_kwargs)
    return float(np.mean([episode["success"] for episode in episodes]))
