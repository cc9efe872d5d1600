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


class FatalActionEnv(gym.Env):
    """
    Every step allows a random subset of the actions (``action_masks()``); an invalid action raises. The cue of the
    first step says which action pays at the last step, so the task also needs memory. Discrete or MultiDiscrete.

    :param multi: MultiDiscrete([3, 4]) actions (each sub-action masked) instead of Discrete(5).
    """

    def __init__(self, multi: bool = False, seed: int | None = None) -> None:
        self.multi = multi
        self.action_space = spaces.MultiDiscrete([3, 4]) if multi else spaces.Discrete(5)
        self.n_mask = 7 if multi else 5
        self.observation_space = spaces.Box(-1.0, 1.0, (self.n_mask + 1,), np.float32)
        self.rng = np.random.default_rng(seed)

    def _new_mask(self) -> None:
        sizes = [3, 4] if self.multi else [5]
        parts = []
        for size in sizes:
            part = self.rng.random(size) < 0.5
            part[self.rng.integers(size)] = True  # at least one valid choice per sub-action
            parts.append(part)
        self.mask = np.concatenate(parts)

    def _obs(self, cue: float) -> np.ndarray:
        return np.concatenate([self.mask.astype(np.float32), [cue]]).astype(np.float32)

    def action_masks(self) -> np.ndarray:
        return self.mask.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.length = 0, int(self.rng.integers(6, 14))
        self.target = int(self.rng.integers(2))
        self._new_mask()
        return self._obs(1.0 if self.target else -1.0), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        chosen = np.atleast_1d(action).astype(int)
        offsets = [0, 3] if self.multi else [0]
        for offset, choice in zip(offsets, chosen, strict=True):
            if not self.mask[offset + choice]:
                raise RuntimeError(f"invalid action {action} at step {self.t} (mask {self.mask.astype(int)})")
        self.t += 1
        done = self.t >= self.length
        reward = float(done and int(chosen[0]) % 2 == self.target)
        self._new_mask()
        return self._obs(0.0), reward, done, False, {}
