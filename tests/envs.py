"""Small deterministic test environments."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class RandomLengthEnv(gym.Env):
    """
    Episodes of random length (``min_len``..``max_len``), random observations and rewards. With
    ``observation_space`` / ``action_space`` any SB3-supported spaces can be exercised.
    """

    def __init__(
        self,
        min_len: int = 3,
        max_len: int = 25,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
    ) -> None:
        self.observation_space = observation_space or spaces.Box(-1.0, 1.0, (3,), dtype=np.float32)
        self.action_space = action_space or spaces.Discrete(3)
        self.min_len, self.max_len = min_len, max_len
        self._length = self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._length = int(self.np_random.integers(self.min_len, self.max_len + 1))
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        reward = float(self.np_random.normal())
        terminated = self._t >= self._length and self._t % 2 == 0
        truncated = self._t >= self._length and not terminated
        return self.observation_space.sample(), reward, terminated, truncated, {}


class RecallEnv(gym.Env):
    """
    Memory task: the first observation shows a cue (+1/-1) that is hidden afterwards; at the last
    step the agent must output the cue's sign (action 1 for +1, 0 for -1) to get reward 1.
    """

    def __init__(self, length: int = 8) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.length = length
        self._cue = 0.0
        self._t = 0

    def _obs(self) -> np.ndarray:
        cue = self._cue if self._t == 0 else 0.0
        return np.array([cue, 1.0 if self._t == self.length - 1 else 0.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cue = float(self.np_random.choice([-1.0, 1.0]))
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        done = self._t == self.length - 1
        reward = float(int(action) == int(self._cue > 0)) if done else 0.0
        self._t += 1
        return self._obs(), reward, done, False, {}
