"""
Passive T-Maze memory benchmark (ELMUR paper, arXiv 2510.07151).

The agent walks a corridor of length ``L`` from ``x = 0`` to the junction ``x = L``, where it must turn into the arm
(up ``y = +1`` or down ``y = -1``) indicated by a hint that it only saw at the very first step of the episode.

Each step the policy observes 4 float32 numbers: ``[y, hint, junction, noise]``

- ``y``: 0 in the corridor, +1 / -1 once the agent entered an arm (i.e. only in the terminal observation),
- ``hint``: +1 or -1 (the sign of the goal arm) at the first observation of the episode, 0 afterwards,
- ``junction``: 1.0 when the agent stands at the junction (``x == L`` and not yet in an arm), else 0,
- ``noise``: uniform in {-1, 0, 1}, redrawn every step (always 0 with ``noise=False``).

Actions are ``Discrete(4)``: 0 right, 1 up, 2 left, 3 down. Up / down only have an effect at the junction, where they end
the episode (``terminated=True``) with reward 1.0 for the arm of the hint's sign and 0.0 otherwise. An episode lasts at
most ``L + 2`` steps (the optimal agent needs ``L + 1``): after that it is truncated with reward 0.

:class:`TMazeEnv` is the gymnasium env (id ``TMaze-v0``), :class:`TMazeVecEnv` a fast numpy Stable-Baselines3 VecEnv of
``n`` independent mazes, :class:`TMazeOracle` the expert policy and :func:`evaluate_tmaze` the success-rate helper.
"""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

#: Action indices.
RIGHT, UP, LEFT, DOWN = 0, 1, 2, 3
#: Observation indices.
OBS_Y, OBS_HINT, OBS_JUNCTION, OBS_NOISE = 0, 1, 2, 3
#: Size of the observation vector.
OBS_DIM = 4


def _observation_space() -> spaces.Box:
    return spaces.Box(low=-1.0, high=1.0, shape=(OBS_DIM,), dtype=np.float32)


def _check_length(value: Any, name: str = "corridor_length") -> int:
    """Return ``value`` as an int, raising a clear error unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r} of type {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 (the number of steps from the start to the junction), got {value}")
    return int(value)


def _check_length_range(corridor_length: Any) -> tuple[int, int]:
    """Return ``(low, high)`` for a fixed length (int) or an inclusive ``(low, high)`` range."""
    if isinstance(corridor_length, (tuple, list)):
        if len(corridor_length) != 2:
            raise ValueError(f"corridor_length range must be a (low, high) pair, got {corridor_length!r}")
        low = _check_length(corridor_length[0], "corridor_length low")
        high = _check_length(corridor_length[1], "corridor_length high")
        if low > high:
            raise ValueError(f"corridor_length range needs low <= high, got {corridor_length!r}")
        return low, high
    length = _check_length(corridor_length)
    return length, length


class TMazeEnv(gym.Env[np.ndarray, np.int64]):
    """
    Passive T-Maze: remember the hint of the first step until the junction, ``corridor_length`` steps later.

    :param corridor_length: Number of steps ``L`` from the start (``x = 0``) to the junction (``x = L``), at least 1.
        An episode lasts at most ``L + 2`` steps.
    :param noise: Whether the last observation entry is uniform noise in {-1, 0, 1} (otherwise always 0).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, corridor_length: int = 10, noise: bool = True) -> None:
        super().__init__()
        self.corridor_length = _check_length(corridor_length)
        self.noise = bool(noise)
        self.observation_space = _observation_space()
        self.action_space = spaces.Discrete(4)
        self.max_steps = self.corridor_length + 2
        self.goal = 1
        self.x = 0
        self.y = 0
        self.elapsed_steps = 0
        self._done = True

    def _noise(self) -> float:
        return float(self.np_random.integers(-1, 2)) if self.noise else 0.0

    def _info(self) -> dict[str, Any]:
        return {"goal": self.goal, "corridor_length": self.corridor_length}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """
        Start a new episode at ``x = 0`` with a random goal arm (drawn from ``self.np_random``).

        :param seed: Seed of the env's random generator (goal and noise).
        :param options: Unused.
        :return: The first observation (which holds the hint) and ``{"goal", "corridor_length"}``.
        """
        super().reset(seed=seed)
        self.goal = 1 if self.np_random.integers(2) else -1
        self.x = 0
        self.y = 0
        self.elapsed_steps = 0
        self._done = False
        obs = np.array([0.0, self.goal, 0.0, self._noise()], dtype=np.float32)
        return obs, self._info()

    def step(self, action: int | np.integer | np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """
        :param action: 0 right, 1 up, 2 left, 3 down.
        :return: observation, reward, terminated, truncated, info (with ``is_success`` at the end of the episode).
        """
        if not self.action_space.contains(action):
            raise ValueError(f"Invalid action {action!r}: expected an integer in {{0, 1, 2, 3}} (0 right 1 up 2 left 3 down)")
        if self._done:
            raise RuntimeError("The episode is over (or was never started): call reset() before step()")
        action = int(action)
        self.elapsed_steps += 1
        terminated = False
        reward = 0.0
        if action == RIGHT:
            self.x = min(self.x + 1, self.corridor_length)
        elif action == LEFT:
            self.x = max(self.x - 1, 0)
        elif self.x == self.corridor_length:  # up / down at the junction: enter the arm
            self.y = 1 if action == UP else -1
            terminated = True
            reward = 1.0 if self.y == self.goal else 0.0
        truncated = not terminated and self.elapsed_steps >= self.max_steps
        at_junction = float(self.x == self.corridor_length and not terminated)
        obs = np.array([self.y, 0.0, at_junction, self._noise()], dtype=np.float32)
        info = self._info()
        if terminated or truncated:
            self._done = True
            info["is_success"] = reward == 1.0
        return obs, reward, terminated, truncated, info


class TMazeStep(NamedTuple):
    """Result of :func:`tmaze_step` for a batch of mazes."""

    #: ``[n]`` positions after the step.
    x: np.ndarray
    #: ``[n]`` steps taken in the episode after this one.
    elapsed: np.ndarray
    #: ``[n]`` True where the agent entered an arm (the episode ends).
    terminated: np.ndarray
    #: ``[n]`` True where the episode ran out of steps without entering an arm.
    truncated: np.ndarray
    #: ``[n]`` True where the agent entered the goal arm (reward 1).
    success: np.ndarray
    #: ``[n, 4]`` observations after the step (the terminal observation where the episode ended).
    observations: np.ndarray


def tmaze_step(
    x: np.ndarray,
    elapsed: np.ndarray,
    lengths: np.ndarray,
    goals: np.ndarray,
    actions: np.ndarray,
    noise: np.ndarray | None = None,
) -> TMazeStep:
    """
    The T-Maze dynamics for a batch of mazes (pure function, shared by :class:`TMazeVecEnv` and the parallel
    evaluation; :class:`TMazeEnv` implements the same rules for one maze).

    :param x: ``[n]`` int64 positions in the corridor (0 .. length).
    :param elapsed: ``[n]`` int64 steps taken so far in the episode.
    :param lengths: ``[n]`` corridor lengths.
    :param goals: ``[n]`` goal arms (+1 up, -1 down).
    :param actions: ``[n]`` integer actions (0 right, 1 up, 2 left, 3 down).
    :param noise: ``[n]`` noise entries of the next observations (None: 0).
    :return: The new positions and step counts (new arrays), episode ends, successes and observations.
    """
    elapsed = elapsed + 1
    vertical = (actions & 1).astype(bool)  # up (1) and down (3)
    terminated = vertical & (x == lengths)
    arm = np.where(actions == UP, 1, -1)
    x = np.clip(x + (actions == RIGHT) - (actions == LEFT), 0, lengths)
    truncated = (elapsed >= lengths + 2) & ~terminated
    obs = np.zeros((x.shape[0], OBS_DIM), dtype=np.float32)
    obs[:, OBS_Y] = np.where(terminated, arm, 0)
    obs[:, OBS_JUNCTION] = (x == lengths) & ~terminated
    if noise is not None:
        obs[:, OBS_NOISE] = noise
    return TMazeStep(x, elapsed, terminated, truncated, terminated & (arm == goals), obs)


class TMazeVecEnv(VecEnv):
    """
    ``n_envs`` independent T-Mazes simulated together with numpy, with the dynamics and observations of
    :class:`TMazeEnv`, usable directly by Stable-Baselines3.

    Finished envs are reset automatically (``info["terminal_observation"]`` holds their last observation). Only the
    infos of finished envs are filled, as :class:`~stable_baselines3.common.monitor.Monitor` would do:
    ``goal``, ``corridor_length``, ``is_success``, ``TimeLimit.truncated`` and ``episode = {"r", "l", "t"}``;
    the infos of running envs are empty (the current goals and lengths are available with ``get_attr``).

    :param n_envs: Number of mazes.
    :param corridor_length: Fixed corridor length (int), or ``(low, high)``: each episode's length is drawn uniformly
        in ``[low, high]`` (inclusive).
    :param noise: Whether the last observation entry is uniform noise in {-1, 0, 1} (otherwise always 0).
    :param seed: Seed of the shared random generator (goals, lengths and noise).
    """

    #: Shared by all envs (no rendering).
    render_mode: str | None = None
    #: Attributes that :meth:`get_attr` returns per env.
    PER_ENV_ATTRIBUTES = ("goal", "corridor_length", "x", "elapsed_steps")

    def __init__(
        self,
        n_envs: int,
        corridor_length: int | tuple[int, int] = 10,
        noise: bool = True,
        seed: int | None = None,
    ) -> None:
        if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        n_envs = int(n_envs)
        self.length_range = _check_length_range(corridor_length)
        self.noise = bool(noise)
        self._rng = np.random.default_rng(seed)
        self._x = np.zeros(n_envs, dtype=np.int64)
        self._t = np.zeros(n_envs, dtype=np.int64)
        self._goal = np.ones(n_envs, dtype=np.int64)
        self._lengths = np.full(n_envs, self.length_range[0], dtype=np.int64)
        self._actions: np.ndarray | None = None
        self._started = False
        self._t_start = time.time()
        super().__init__(n_envs, _observation_space(), spaces.Discrete(4))

    # ---- dynamics -------------------------------------------------------------------------------------------------

    def _reset_envs(self, indices: np.ndarray | slice, obs: np.ndarray) -> None:
        """Start new episodes for ``indices`` and write their first observations into ``obs``."""
        count = self.num_envs if isinstance(indices, slice) else len(indices)
        # One uniform draw per env for the goal, the noise and the length (a single generator call is much faster)
        uniform = self._rng.random((3, count))
        goals = np.where(uniform[0] < 0.5, 1, -1)
        self._x[indices] = 0
        self._t[indices] = 0
        self._goal[indices] = goals
        low, high = self.length_range
        if low != high:
            self._lengths[indices] = low + np.floor(uniform[2] * (high - low + 1)).astype(np.int64)
        first = np.zeros((count, OBS_DIM), dtype=np.float32)
        first[:, OBS_HINT] = goals
        if self.noise:
            first[:, OBS_NOISE] = np.floor(uniform[1] * 3.0) - 1.0
        obs[indices] = first

    def reset(self) -> VecEnvObs:
        """
        Start new episodes in all envs (using the seed given to :meth:`seed`, if any).

        :return: The first observations ``[n_envs, 4]``; ``reset_infos`` holds each env's goal and corridor length.
        """
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        obs = np.empty((self.num_envs, OBS_DIM), dtype=np.float32)
        self._reset_envs(slice(None), obs)
        goals, lengths = self._goal.tolist(), self._lengths.tolist()
        self.reset_infos = [{"goal": goal, "corridor_length": length} for goal, length in zip(goals, lengths, strict=True)]
        self._started = True
        self._actions = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """
        :param actions: ``[n_envs]`` integer actions in {0, 1, 2, 3} (0 right, 1 up, 2 left, 3 down).
        """
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            if actions.size != self.num_envs:
                raise ValueError(f"Expected {self.num_envs} actions (shape ({self.num_envs},)), got shape {actions.shape}")
            actions = actions.reshape(self.num_envs)
        if actions.dtype.kind not in "iu":
            raise TypeError(f"Actions must be integers in {{0, 1, 2, 3}}, got dtype {actions.dtype}")
        if np.any((actions < 0) | (actions > DOWN)):
            raise ValueError(f"Actions must be in {{0, 1, 2, 3}} (0 right, 1 up, 2 left, 3 down), got {actions}")
        if not self._started:
            raise RuntimeError("Call reset() before stepping TMazeVecEnv")
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """
        :return: observations ``[n_envs, 4]``, rewards, dones and infos (filled for finished envs only); finished envs
            are reset and their returned observation is the first one of the next episode.
        """
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        actions, self._actions = self._actions, None
        n = self.num_envs
        lengths = self._lengths
        noise = np.floor(self._rng.random(n) * 3.0) - 1.0 if self.noise else None
        step = tmaze_step(self._x, self._t, lengths, self._goal, actions, noise)
        self._x, self._t = step.x, step.elapsed
        terminated, truncated, success, obs = step.terminated, step.truncated, step.success, step.observations
        dones = terminated | truncated
        rewards = success.astype(np.float32)

        infos: list[dict[str, Any]] = [{} for _ in range(n)]
        if dones.any():
            idx = np.flatnonzero(dones)
            terminal_obs = obs[idx]
            elapsed = round(time.time() - self._t_start, 6)
            finished = zip(
                idx.tolist(),
                terminal_obs,
                self._goal[idx].tolist(),
                lengths[idx].tolist(),
                success[idx].tolist(),
                truncated[idx].tolist(),
                self._t[idx].tolist(),
                rewards[idx].tolist(),
                strict=True,
            )
            for i, last_obs, goal, length, is_success, is_truncated, episode_len, reward in finished:
                infos[i] = {
                    "goal": goal,
                    "corridor_length": length,
                    "is_success": is_success,
                    "TimeLimit.truncated": is_truncated,
                    "terminal_observation": last_obs,
                    # The reward is only given at the last step, so the episode return is the last reward
                    "episode": {"r": reward, "l": episode_len, "t": elapsed},
                }
            self._reset_envs(idx, obs)
            for i, goal, length in zip(idx.tolist(), self._goal[idx].tolist(), lengths[idx].tolist(), strict=True):
                self.reset_infos[i] = {"goal": goal, "corridor_length": length}
        return obs, rewards, dones, infos

    # ---- VecEnv API -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """
        :param attr_name: One of :attr:`PER_ENV_ATTRIBUTES` (per-env values), or an attribute of this VecEnv (shared).
        :param indices: Envs to query (default: all).
        :return: One value per env.
        """
        indices = list(self._get_indices(indices))
        per_env = {"goal": self._goal, "corridor_length": self._lengths, "x": self._x, "elapsed_steps": self._t}
        if attr_name in per_env:
            return per_env[attr_name][indices].tolist()
        value = getattr(self, attr_name)
        return [value for _ in indices]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """
        Set a shared attribute (all envs share this VecEnv's attributes; per-env state cannot be set).

        :param attr_name: Attribute name.
        :param value: New value.
        :param indices: Must be all envs (``None``).
        """
        if attr_name in self.PER_ENV_ATTRIBUTES:
            raise AttributeError(f"{attr_name!r} is per-env state of TMazeVecEnv and cannot be set")
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("TMazeVecEnv attributes are shared by all envs: set_attr needs indices=None")
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """
        Call a method of this VecEnv once (the envs share it) and return its result for each requested env.

        :param method_name: Method name.
        :param method_args: Positional arguments.
        :param indices: Envs to report the result for (default: all).
        :param method_kwargs: Keyword arguments.
        :return: The result, repeated per env.
        """
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No env is wrapped (the episode statistics are reported in ``info["episode"]`` directly)."""
        return [False for _ in self._get_indices(indices)]

    @property
    def corridor_lengths(self) -> np.ndarray:
        """Corridor lengths of the current episodes, ``[n_envs]``."""
        return self._lengths.copy()

    @property
    def goals(self) -> np.ndarray:
        """Goal arms (+1 up / -1 down) of the current episodes, ``[n_envs]``."""
        return self._goal.copy()


class TMazeOracle:
    """
    Expert T-Maze policy: remember the hint of the first observation, go right until the junction flag is on, then
    go up (hint +1) or down (hint -1). Works on batches ``[n, 4]`` of :class:`TMazeVecEnv` observations.

    Use it statefully (``oracle.reset(n); actions = oracle(obs, episode_starts)``) or through :meth:`predict`, which
    has the Stable-Baselines3 recurrent signature (the state is the array of remembered hints), e.g. with
    :func:`~stable_baselines3.common.evaluation.evaluate_policy`.

    :param n_envs: Number of envs for the stateful interface (can also be set by :meth:`reset`).
    """

    def __init__(self, n_envs: int | None = None) -> None:
        self.hints: np.ndarray | None = None
        if n_envs is not None:
            self.reset(n_envs)

    def reset(self, n_envs: int) -> None:
        """
        Forget the hints.

        :param n_envs: Number of envs.
        """
        if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        self.hints = np.zeros(int(n_envs), dtype=np.float32)

    @staticmethod
    def act(
        observations: np.ndarray, hints: np.ndarray | None, episode_starts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        Stateless core of the oracle.

        :param observations: ``[n, 4]`` observations.
        :param hints: ``[n]`` remembered hints (``None``: nothing remembered yet).
        :param episode_starts: ``[n]`` booleans, True where ``observations`` is the first of an episode (its hint is
            then stored even if it were 0); hints are in any case updated wherever the hint entry is non-zero.
        :return: ``[n]`` int64 actions and the updated ``[n]`` hints.
        """
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != OBS_DIM:
            raise ValueError(f"TMaze observations must have shape [n, {OBS_DIM}], got {obs.shape}")
        n = obs.shape[0]
        if hints is None:
            hints = np.zeros(n, dtype=np.float32)
        hints = np.asarray(hints, dtype=np.float32).reshape(-1)
        if hints.shape != (n,):
            raise ValueError(f"Oracle state must hold one hint per env ({n}), got shape {hints.shape}")
        update = obs[:, OBS_HINT] != 0
        if episode_starts is not None:
            starts = np.asarray(episode_starts, dtype=bool).reshape(-1)
            if starts.shape != (n,):
                raise ValueError(f"episode_starts must have shape ({n},), got {starts.shape}")
            update |= starts
        hints = np.where(update, obs[:, OBS_HINT], hints)
        turn = np.where(hints > 0, UP, DOWN)
        actions = np.where(obs[:, OBS_JUNCTION] > 0.5, turn, RIGHT).astype(np.int64)
        return actions, hints

    def __call__(self, observations: np.ndarray, episode_starts: np.ndarray | None = None) -> np.ndarray:
        """
        :param observations: ``[n, 4]`` observations.
        :param episode_starts: ``[n]`` booleans, True at the first observation of an episode.
        :return: ``[n]`` actions.
        """
        obs = np.asarray(observations)
        if self.hints is None:
            self.reset(obs.shape[0] if obs.ndim == 2 else 1)
        actions, self.hints = self.act(obs, self.hints, episode_starts)
        return actions

    def predict(
        self,
        observation: np.ndarray,
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        Stable-Baselines3 recurrent ``predict``.

        :param observation: ``[n, 4]`` observations, or a single ``[4]`` observation.
        :param state: ``[n]`` remembered hints (``None`` at the start).
        :param episode_start: ``[n]`` booleans, True at the first observation of an episode.
        :param deterministic: Unused (the oracle is deterministic).
        :return: The actions (``[n]``, or a 0-d array for a single observation) and the new state.
        """
        obs = np.asarray(observation)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        actions, hints = self.act(obs, state, episode_start)
        return (actions[0] if single else actions), hints


def tmaze_oracle(observations: np.ndarray, state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """
    Functional form of :class:`TMazeOracle`.

    :param observations: ``[n, 4]`` observations.
    :param state: ``[n]`` remembered hints (``None`` at the start).
    :return: ``[n]`` actions and the new state.
    """
    return TMazeOracle.act(observations, state)


PredictFn = Callable[[np.ndarray, Any, np.ndarray], tuple[Any, Any]]


def evaluate_tmaze(
    policy_predict: PredictFn,
    corridor_length: int | tuple[int, int],
    n_episodes: int = 100,
    seed: int = 0,
    batch_size: int = 100,
    noise: bool = True,
) -> float:
    """
    Success rate of a policy over ``n_episodes`` fixed-seed T-Maze episodes, run in :class:`TMazeVecEnv` batches of
    (at most) ``batch_size`` envs. Each env runs exactly one episode: the actions of finished envs are ignored.

    :param policy_predict: SB3-style ``predict(observations, state, episode_start) -> (actions, state)``, e.g.
        ``functools.partial(model.predict, deterministic=True)`` or ``TMazeOracle().predict``.
    :param corridor_length: Corridor length, or an inclusive ``(low, high)`` range.
    :param n_episodes: Number of episodes.
    :param seed: Seed of the first batch (batch ``k`` uses ``seed + k``).
    :param batch_size: Maximum number of episodes run in parallel.
    :param noise: Whether the observations contain the noise entry.
    :return: The success rate (mean reward) in [0, 1].
    """
    for name, value in (("n_episodes", n_episodes), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    max_steps = _check_length_range(corridor_length)[1] + 2
    total = 0.0
    for batch, start in enumerate(range(0, n_episodes, batch_size)):
        n = min(batch_size, n_episodes - start)
        env = TMazeVecEnv(n, corridor_length, noise=noise, seed=seed + batch)
        obs = env.reset()
        state = None
        episode_start = np.ones(n, dtype=bool)
        finished = np.zeros(n, dtype=bool)
        rewards = np.zeros(n, dtype=np.float64)
        for _ in range(max_steps):
            actions, state = policy_predict(obs, state, episode_start)
            actions = np.asarray(actions).reshape(n)
            actions = np.where(finished, RIGHT, actions)
            obs, step_rewards, dones, _ = env.step(actions)
            new = dones & ~finished
            rewards[new] = step_rewards[new]
            finished |= dones
            episode_start = dones
            if finished.all():
                break
        env.close()
        assert finished.all(), "T-Maze episodes last at most corridor_length + 2 steps"
        total += float(rewards.sum())
    return total / n_episodes


__all__ = [
    "DOWN",
    "LEFT",
    "RIGHT",
    "UP",
    "TMazeEnv",
    "TMazeOracle",
    "TMazeStep",
    "TMazeVecEnv",
    "evaluate_tmaze",
    "tmaze_oracle",
    "tmaze_step",
]
