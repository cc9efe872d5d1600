"""Refusing bad numbers at the door: non-finite env outputs during learning, and corrupted or tampered acting states."""

from typing import Any

import numpy as np

from sb3_elmur.common.buffers import NumpyObs


def _bad_envs(array: np.ndarray, n_envs: int) -> np.ndarray:
    """Indices of the envs whose rows of ``array`` (``[n_envs, ...]``) hold a NaN or an infinity."""
    if array.dtype.kind not in "fc":
        return np.zeros(0, dtype=np.int64)
    finite = np.isfinite(array.reshape(n_envs, -1)).all(axis=1)
    return np.flatnonzero(~finite)


def check_finite_transition(observations: NumpyObs, rewards: np.ndarray, infos: list[dict[str, Any]], step: int) -> None:
    """
    Raise a ``ValueError`` naming the env and the step if a vectorized env step returned a NaN or an
    infinite reward or observation (also the ``terminal_observation`` of a finished episode). Called before
    the transition enters the rollout buffer, so no update ever sees it.

    :param observations: The new observations, ``[n_envs, ...]`` (a dict of those for Dict spaces).
    :param rewards: ``[n_envs]``.
    :param infos: The step's infos.
    :param step: The learner's timestep count after the step (for the message).
    """
    n_envs = len(rewards)
    problems = [(int(env), "reward", rewards[env]) for env in _bad_envs(np.asarray(rewards), n_envs)]
    items = observations.items() if isinstance(observations, dict) else [("", observations)]
    for key, value in items:
        name = f"observation[{key!r}]" if key else "observation"
        problems += [(int(env), name, None) for env in _bad_envs(np.asarray(value), n_envs)]
    for env, info in enumerate(infos):
        terminal = info.get("terminal_observation")
        if terminal is None:
            continue
        terminal_items = terminal.items() if isinstance(terminal, dict) else [("", terminal)]
        for key, value in terminal_items:
            name = f"terminal_observation[{key!r}]" if key else "terminal_observation"
            problems += [(env, name, None) for _ in _bad_envs(np.asarray(value).reshape(1, -1), 1)]
    if problems:
        env, name, value = problems[0]
        shown = f" ({value})" if value is not None else ""
        raise ValueError(
            f"env {env} returned a non-finite {name}{shown} at timestep {step} of learn() "
            f"({len(problems)} bad value(s) in this step). The rollout stopped before the transition was stored: "
            "the policy and its optimizer are unchanged. Fix the environment (or wrap it, e.g. to clip or replace "
            "the value) and call learn() again."
        )
