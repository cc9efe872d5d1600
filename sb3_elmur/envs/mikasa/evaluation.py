"""success_once of a policy on MIKASA-Robo, on fixed seeds."""

from collections.abc import Callable
from typing import Any

import numpy as np

from sb3_elmur.envs.mikasa.adapter import make_mikasa_vec_env


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
    step (``success_once``), with SB3's stateful ``predict``.

    :param policy: Anything with ``predict(observation, state, episode_start, deterministic)``.
    :param env_id: A MIKASA-Robo id.
    :param n_episodes: Episodes (a multiple of ``n_envs`` keeps every env busy).
    :param seed: First seed.
    :param n_envs: Envs run side by side; each runs ``n_episodes / n_envs`` episodes on consecutive seeds.
    :param deterministic: Greedy actions.
    :param env_kwargs: Keyword arguments of the env (e.g. ``control_mode``).
    """
    successes: list[bool] = []
    for first in range(seed, seed + n_episodes, n_envs):
        batch = min(n_envs, seed + n_episodes - first)
        env = make_env(env_id, n_envs=batch, seed=first, **env_kwargs)
        obs, state, starts = env.reset(), None, np.ones(batch, dtype=bool)
        done = np.zeros(batch, dtype=bool)
        outcome = np.zeros(batch, dtype=bool)
        while not done.all():
            actions, state = policy.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
            obs, _, dones, infos = env.step(actions)
            for i in np.flatnonzero(dones & ~done):
                outcome[i] = bool(infos[i].get("is_success", False))
            done |= dones
            starts = dones
        env.close()
        successes.extend(outcome.tolist())
    return float(np.mean(successes))
