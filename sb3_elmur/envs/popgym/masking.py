"""Action masks for POPGym's grid-guessing tasks (Battleship, MineSweeper): one action per cell, chosen cells masked."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Families whose action is a (row, col) guess, where choosing a cell again is never useful.
CELL_FAMILIES = ("Battleship", "MineSweeper")


class ChosenCellMask(gym.Wrapper):
    """
    A (row, col) ``MultiDiscrete([rows, cols])`` action becomes ``Discrete(rows * cols)`` (cell ``row * cols + col``)
    and ``action_masks()`` allows only the cells not chosen yet in the episode: the protocol of sb3-contrib's
    MaskablePPO, and of :class:`~sb3_elmur.MaskableElmurPPO`. A per-dimension mask of the original action could not
    say this (it masks rows and columns, not cells). The mask depends on the agent's own history only, never on the
    hidden board. Once every cell has been chosen (the last step of a Battleship episode), every cell is allowed.

    :param env: A POPGym env with a two-dimensional MultiDiscrete action.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.action_space
        if not isinstance(space, spaces.MultiDiscrete) or space.nvec.shape != (2,):
            raise ValueError(f"ChosenCellMask needs a (row, col) MultiDiscrete action, got {space}")
        self.rows, self.cols = (int(n) for n in space.nvec)
        self.action_space = spaces.Discrete(self.rows * self.cols)
        self.chosen = np.zeros(self.rows * self.cols, dtype=bool)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.chosen[:] = False
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        cell = int(np.asarray(action).reshape(-1)[0])
        if not 0 <= cell < self.chosen.size:
            raise ValueError(f"cell {cell} is outside the {self.rows}x{self.cols} board")
        self.chosen[cell] = True
        return self.env.step(np.array(divmod(cell, self.cols), dtype=np.int64))  # type: ignore[return-value]

    def action_masks(self) -> np.ndarray:
        """``[rows * cols]`` bool: True for the cells not chosen yet (all True once every cell was chosen)."""
        return ~self.chosen if not self.chosen.all() else np.ones_like(self.chosen)
