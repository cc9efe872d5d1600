"""POPGym environments in a form ElmurPPO, RecurrentPPO and PPO train on as they are."""

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_elmur.envs.popgym.masking import CELL_FAMILIES, ChosenCellMask
from sb3_elmur.envs.popgym.tasks import check_task, parse_task

#: ``info`` keys through which POPGym envs leak hidden state (popgym 1.0.7): MultiarmedBandit ``bandits`` (the arm
#: probabilities), CountRecall ``counts``, Labyrinth ``position`` and ``maze`` (the whole maze, at reset), HigherLower
#: ``card``. :class:`StripInfo` drops every key the env sets, so that no dataset or agent can learn from them.
LEAKING_INFO_KEYS = ("bandits", "counts", "position", "maze", "card")


def _import_popgym() -> Any:
    try:
        import popgym  # noqa: F401  (registers the ids)
        from popgym.wrappers import Flatten
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise ImportError('POPGym is not installed: pip install "sb3_elmur[popgym]"') from error
    return Flatten


class StripInfo(gym.Wrapper):
    """
    Return an empty ``info`` from ``reset`` and ``step``: POPGym's infos carry nothing but hidden state
    (:data:`LEAKING_INFO_KEYS`). Wrappers outside this one (TimeLimit, Monitor, SB3's VecEnv) add their keys as usual.

    :param env: A POPGym env.
    """

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, _ = self.env.reset(**kwargs)
        return observation, {}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, _ = self.env.step(action)
        return observation, reward, terminated, truncated, {}


def previous_action_space(action_space: spaces.Space) -> tuple[spaces.Space, Any]:
    """
    The space of "previous action" observations and its value before the first action (outside the action space).

    :param action_space: A Discrete, MultiDiscrete or Box action space.
    """
    if isinstance(action_space, spaces.Discrete):
        return spaces.Discrete(int(action_space.n) + 1), int(action_space.n)  # n = no action yet
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = np.asarray(action_space.nvec)
        return spaces.MultiDiscrete(nvec + 1), nvec.copy()
    if isinstance(action_space, spaces.Box):
        return spaces.Box(action_space.low, action_space.high, dtype=np.float32), np.zeros(action_space.shape, np.float32)
    raise ValueError(f"No previous-action encoding for action space {action_space!r}")


class PreviousActionReward(gym.Wrapper):
    """
    Add the previous action and reward to the observation (what POPGym's own baselines do), as a Dict
    ``{"observation", "previous_action", "previous_reward"}``. Before the first action, ``previous_action`` is a
    value outside the action space (``n`` for Discrete(n), ``nvec`` for MultiDiscrete, zeros for Box) and
    ``previous_reward`` is 0.

    :param env: An env with a Discrete, MultiDiscrete or Box action space.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        action_obs_space, self._no_action = previous_action_space(env.action_space)
        self.observation_space = spaces.Dict(
            {
                "observation": env.observation_space,
                "previous_action": action_obs_space,
                "previous_reward": spaces.Box(-np.inf, np.inf, (1,), np.float32),
            }
        )

    def _observation(self, observation: Any, action: Any, reward: float) -> dict[str, Any]:
        if isinstance(self.env.action_space, spaces.Box):
            action = np.asarray(action, dtype=np.float32).reshape(self.env.action_space.shape)
        elif isinstance(self.env.action_space, spaces.MultiDiscrete):
            action = np.asarray(action, dtype=np.int64).reshape(self.env.action_space.shape)
        else:
            action = int(action)
        return {"observation": observation, "previous_action": action, "previous_reward": np.array([reward], np.float32)}

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        return self._observation(observation, self._no_action, 0.0), info

    def step(self, action: Any) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        return self._observation(observation, action, float(reward)), reward, terminated, truncated, info


def make_popgym_env(
    env_id: str, previous_action: bool = False, one_hot: bool = False, cell_masks: bool = False, **kwargs: Any
) -> gym.Env:
    """
    Make one of the 48 POPGym tasks in a form that ElmurPPO, RecurrentPPO and PPO train on as they are:

    - Tuple observations (Autoencode) are flattened with ``popgym.wrappers.Flatten``;
    - ``info`` is stripped of the hidden state POPGym leaks through it (:class:`StripInfo`);
    - ``previous_action=True`` adds the previous action and reward to the observation (:class:`PreviousActionReward`);
    - ``one_hot=True`` flattens the observation into one float32 Box with Discrete and MultiDiscrete parts
      one-hot encoded. RecurrentPPO needs it for MultiDiscrete or Dict observations (with torch >= 2.13 its
      ``nn.LSTM`` rejects the input size SB3 computes for them); ElmurPPO and PPO take either form;
    - ``cell_masks=True`` (Battleship, MineSweeper) makes one Discrete action per cell with an ``action_masks()``
      method that allows the cells not chosen yet (:class:`~sb3_elmur.envs.popgym.masking.ChosenCellMask`), for
      MaskableElmurPPO.

    :param env_id: ``popgym-<Family><Easy|Medium|Hard>-v0``; an unknown id raises a ValueError naming close matches.
    :param previous_action: Observe ``{"observation", "previous_action", "previous_reward"}``.
    :param one_hot: Flatten the observation into a float32 Box (one-hot for discrete parts).
    :param cell_masks: Cell actions with masks of the chosen cells (Battleship and MineSweeper only).
    :param kwargs: Keyword arguments of the env's constructor.
    """
    check_task(env_id)
    if cell_masks and parse_task(env_id)[0] not in CELL_FAMILIES:
        raise ValueError(f"cell_masks applies to {', '.join(CELL_FAMILIES)}, not {env_id}")
    flatten = _import_popgym()
    env = gym.make(env_id, **kwargs)
    if isinstance(env.observation_space, spaces.Tuple) or isinstance(env.action_space, spaces.Tuple):
        env = flatten(env.unwrapped)  # popgym's Flatten needs the POPGym env itself
    env = StripInfo(env)
    if cell_masks:
        env = ChosenCellMask(env)
    if previous_action:
        env = PreviousActionReward(env)
    if one_hot and not (isinstance(env.observation_space, spaces.Box) and env.observation_space.dtype == np.float32):
        env = OneHotObservation(env)
    return env


class OneHotObservation(gym.ObservationWrapper):
    """
    Flatten any Discrete / MultiDiscrete / Box / Dict / Tuple observation into one float32 Box
    (``gymnasium.spaces.flatten``: one-hot for discrete parts).

    :param env: The env to wrap.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        flat = spaces.flatten_space(env.observation_space)
        self.observation_space = spaces.Box(flat.low.astype(np.float32), flat.high.astype(np.float32), dtype=np.float32)

    def observation(self, observation: Any) -> np.ndarray:
        return spaces.flatten(self.env.observation_space, observation).astype(np.float32)


def make_popgym(env_id: str, **kwargs: Any) -> gym.Env:
    """
    The POPGym env of :func:`make_popgym_env` with its default options (kept for code written before it).

    :param env_id: POPGym id.
    :param kwargs: Keyword arguments of the env.
    """
    return make_popgym_env(env_id, **kwargs)
