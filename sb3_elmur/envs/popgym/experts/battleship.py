"""History-based expert of POPGym's Battleship: placement-density targeting."""

from collections import Counter
from functools import cache
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings
from sb3_elmur.envs.popgym.experts.boards import best_cell, cell_action, cell_index


def placement_matrix(board_size: int, ship_size: int) -> np.ndarray:
    """
    Every horizontal and vertical placement of a ship on a square board, as rows of a 0/1 matrix over the cells.

    :param board_size: The board's width and height.
    :param ship_size: The ship's length.
    :return: ``[n_placements, board_size**2]`` float matrix, 1 where a placement covers a cell.
    """
    rows = []
    for row in range(board_size):
        for start in range(board_size - ship_size + 1):
            horizontal = np.zeros((board_size, board_size))
            horizontal[row, start : start + ship_size] = 1
            rows.extend([horizontal.reshape(-1), horizontal.T.reshape(-1)])
    return np.array(rows)


@cache
def fleet_placements(board_size: int, ship_sizes: tuple[int, ...]) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """
    The placements of a fleet's ships (built once per board and fleet; read-only arrays).

    :param board_size: The board's width and height.
    :param ship_sizes: The length of every ship (repeated lengths count once, with a prior weight of their count).
    :return: ``(placements, covering, prior)``: the ``[n_placements, cells]`` 0/1 matrix of
        :func:`placement_matrix` over the distinct lengths; for each cell, the indices of the placements covering
        it; and each placement's weight on an empty board (the number of ships of its length).
    """
    multiplicity = Counter(ship_sizes)
    sizes = sorted(multiplicity)
    blocks = [placement_matrix(board_size, size) for size in sizes]
    placements = np.concatenate(blocks)
    covering = tuple(np.flatnonzero(column) for column in placements.T)
    prior = np.concatenate([np.full(len(block), float(multiplicity[size])) for block, size in zip(blocks, sizes, strict=True)])
    for array in (placements, prior, *covering):
        array.flags.writeable = False
    return placements, covering, prior


class BattleshipExpert(HistoryExpert):
    """
    Battleship: fire at the unguessed cell covered by the most weight of ship placements.

    The only observation is the hit bit of the last shot, so the expert keeps the board of its own shots. Every
    horizontal or vertical placement of every ship that covers no known miss counts, with weight
    ``base ** (known hits it covers)`` (hits pull the fire towards the rest of their ship); a cell's score is the total
    weight of the placements covering it, and the expert fires at the unguessed cell of highest score, lowest index on
    ties. The game never says when a ship is sunk, so hits of sunk ships keep some pull. Vectorised: the placement
    weights are updated in place after each shot, and the scores are one matrix-vector product.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    :param base: Weight factor per known hit a placement covers.
    """

    def __init__(self, env_id: str, seed: int = 0, base: float = 10.0) -> None:
        super().__init__(env_id, seed)
        self.board_size, ship_sizes = task_settings(env_id, "board_size", "ship_sizes")
        self.base = base
        self.placements, self.covering, self.prior = fleet_placements(self.board_size, tuple(ship_sizes))
        self.reset(0)

    def reset(self, observation: Any) -> None:
        self.guessed = np.zeros(self.board_size**2, dtype=bool)
        self.weight = self.prior.copy()

    def scores(self) -> np.ndarray:
        """The total weight of the placements covering each cell (flattened), guessed cells included."""
        return self.weight @ self.placements

    def act(self) -> np.ndarray:
        return cell_action(best_cell(self.scores(), ~self.guessed), self.board_size)

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        cell = cell_index(action, self.board_size)
        if self.guessed[cell]:
            return  # a repeated shot never hits and tells nothing new
        self.guessed[cell] = True
        if int(observation) == 1:
            self.weight[self.covering[cell]] *= self.base
        else:
            self.weight[self.covering[cell]] = 0.0
