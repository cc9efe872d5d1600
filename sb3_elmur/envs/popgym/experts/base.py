"""History-based experts: scripted POPGym policies that act only on what the agent sees."""

from abc import ABC, abstractmethod
from functools import cache
from typing import Any

import gymnasium as gym
import numpy as np


@cache
def task_settings(env_id: str, *names: str) -> tuple[Any, ...]:
    """
    Public settings of a POPGym task (board size, number of mines, maze size, ...), read once per id from a throwaway
    instance of its raw env, which is closed and dropped before returning: callers keep plain values (lists become
    tuples), never a reference to the env.

    :param env_id: The POPGym id.
    :param names: Dotted attribute paths of the raw (unwrapped) env, e.g. ``"deck.num_cards"``.
    :return: The attribute values, in the order of ``names``.
    """
    import popgym  # noqa: F401  (registers the ids)

    env = gym.make(env_id)
    try:
        values = []
        for name in names:
            value: Any = env.unwrapped
            for part in name.split("."):
                value = getattr(value, part)
            if isinstance(value, np.generic):
                value = value.item()
            elif isinstance(value, (list, np.ndarray)):
                value = tuple(np.asarray(value).tolist())
            values.append(value)
        return tuple(values)
    finally:
        env.close()


class HistoryExpert(ABC):
    """
    A scripted policy whose action at step t depends only on the observations, its own actions and the
    rewards up to t (never on hidden env state or ``info``), and is deterministic given that history and
    ``seed`` (experts that sample, such as particle filters, draw from a generator re-seeded from ``seed``
    at every :meth:`reset`).

    Observations are those of :func:`sb3_elmur.envs.popgym.make_popgym_env` with ``previous_action=False``;
    actions are valid actions of its action space. The protocol of one episode::

        expert.reset(observation)               # the reset observation
        while not done:
            action = expert.act()
            observation, reward, terminated, truncated, info = env.step(action)
            expert.observe(action, reward, observation)

    The task's public settings (deck count, board size, ...) are fixed by the env id at construction.

    :param env_id: The POPGym id the expert plays.
    :param seed: Seed of the expert's own randomness (unused by deterministic experts).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        self.env_id = env_id
        self.seed = seed

    @abstractmethod
    def reset(self, observation: Any) -> None:
        """Start an episode from its reset observation.

        :param observation: The reset observation.
        """

    @abstractmethod
    def act(self) -> int | np.ndarray:
        """The action for the current step (calling it twice without :meth:`observe` gives the same action)."""

    @abstractmethod
    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        """Record the step just taken: the action played, the reward received and the next observation.

        :param action: The action passed to ``env.step`` (normally the one :meth:`act` returned).
        :param reward: The reward ``env.step`` returned.
        :param observation: The observation ``env.step`` returned.
        """
