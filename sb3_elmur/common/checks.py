"""Refusing bad numbers at the door: non-finite env outputs during learning, and corrupted or tampered acting states."""

from typing import Any

import numpy as np

from sb3_elmur.common.buffers import NumpyObs
from sb3_elmur.elmur.config import ElmurConfig


def _bad_envs(array: np.ndarray, n_envs: int) -> np.ndarray:
    """Indices of the envs whose rows of ``array`` (``[n_envs, ...]``) hold a NaN or an infinity."""
    if array.dtype.kind not in "fc":
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(~np.isfinite(array.reshape(n_envs, -1)).all(axis=1))


def _observation_items(observations: NumpyObs, name: str) -> list[tuple[str, np.ndarray]]:
    """``(label, array)`` for an array observation or for each entry of a dict observation."""
    if isinstance(observations, dict):
        return [(f"{name}[{key!r}]", np.asarray(value)) for key, value in observations.items()]
    return [(name, np.asarray(observations))]


def check_finite_transition(
    observations: NumpyObs, rewards: np.ndarray | None, infos: list[dict[str, Any]], step: int
) -> None:
    """
    Raise a ``ValueError`` naming the env and the step if a vectorized env step returned a NaN or an
    infinite reward or observation (also the ``terminal_observation`` of a finished episode). Called before
    the transition enters the rollout buffer, so no update ever sees it.

    :param observations: The new observations, ``[n_envs, ...]`` (a dict of those for Dict spaces).
    :param rewards: ``[n_envs]`` (None to check observations only, e.g. those of ``reset()``).
    :param infos: The step's infos.
    :param step: The learner's timestep count after the step (for the message).
    """
    items = _observation_items(observations, "observation")
    n_envs = len(items[0][1])
    problems = (
        [] if rewards is None else [(int(env), "reward", rewards[env]) for env in _bad_envs(np.asarray(rewards), n_envs)]
    )
    for name, value in items:
        problems += [(int(env), name, None) for env in _bad_envs(value, n_envs)]
    for env, info in enumerate(infos):
        if info.get("terminal_observation") is not None:
            for name, value in _observation_items(info["terminal_observation"], "terminal_observation"):
                problems += [(env, name, None)] * len(_bad_envs(value.reshape(1, -1), 1))
    if problems:
        env, name, value = problems[0]
        shown = f" ({value})" if value is not None else ""
        raise ValueError(
            f"env {env} returned a non-finite {name}{shown} at timestep {step} of learn() "
            f"({len(problems)} bad value(s) in this step). The rollout stopped before the transition was stored: "
            "the policy and its optimizer are unchanged. Fix the environment (or wrap it, e.g. to clip or replace "
            "the value) and call learn() again."
        )


def check_state_values(fields: dict[str, np.ndarray], config: ElmurConfig) -> None:
    """
    Refuse a corrupted or tampered acting state (what :meth:`ElmurActorCriticPolicy.predict` returned, edited):
    non-finite memory or caches, negative step counters, or slot timestamps that no run of the model can produce
    (a memory slot is written at the last step of a segment, before the current step; a previous-segment slot
    holds a step of the segment before the current one; a token-shift slot holds the step before the current one).

    :param fields: The state's arrays by name (see ``STATE_FIELDS``).
    :param config: The backbone's settings (the slot layout: M memory slots, then the previous-segment tokens, then
        the token-shift slot).
    """
    for name in ("memory_vectors", "keys", "values", "outputs"):
        if not np.isfinite(fields[name]).all():
            raise ValueError(f"state field {name} contains NaN or infinite values: pass state=None to start fresh")
    step, timestamps = fields["step"], fields["memory_timestamps"]
    if (step < 0).any():
        raise ValueError(f"state field step holds negative step counters {step[step < 0].tolist()}")
    k, m, r = config.segment_len, config.n_slots, config.read_slots
    now = step.reshape(-1, *([1] * (timestamps.ndim - 1)))
    memory, previous, shift = timestamps[..., :m], timestamps[..., m:r], timestamps[..., r:]
    written = memory >= 0
    bad_memory = written & ((memory >= now) | (memory % k != k - 1))
    bad_previous = (previous >= 0) & (previous // k != now // k - 1)
    bad_shift = shift != now - 1
    if (timestamps < -1).any() or bad_memory.any() or bad_previous.any() or bad_shift.any():
        raise ValueError(
            "state field memory_timestamps holds timestamps no run can produce (a memory slot is -1 or the last step "
            "of an earlier segment, a previous-segment slot -1 or a step of the last segment, a token-shift slot the "
            "step before the current one): the state was altered; pass state=None to start fresh"
        )
