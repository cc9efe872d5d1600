"""POPGym environments in a form SB3 accepts (popgym's Tuple observations flattened)."""

from typing import Any

import gymnasium as gym
from gymnasium import spaces


def make_popgym(env_id: str, **kwargs: Any) -> gym.Env:
    """
    Make a POPGym env (``popgym-<Task><Easy|Medium|Hard>-v0``) that SB3 accepts: Tuple observation
    or action spaces are flattened with ``popgym.wrappers.Flatten`` (which needs the unwrapped env).

    :param env_id: POPGym id; ``popgym`` must be installed (``pip install "sb3_elmur[popgym]"``).
    :param kwargs: Keyword arguments of the env.
    """
    try:
        import popgym  # noqa: F401  (registers the ids)
        from popgym.wrappers import Flatten
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ImportError('POPGym is not installed: pip install "sb3_elmur[popgym]"') from error
    env = gym.make(env_id, **kwargs)
    if isinstance(env.observation_space, spaces.Tuple) or isinstance(env.action_space, spaces.Tuple):
        env = Flatten(env.unwrapped)
    return env
