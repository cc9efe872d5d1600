"""
Helpers shared by the experts of the POPGym board games (Battleship, MineSweeper, Concentration, Labyrinth*): the
cells of a rectangular board and the choice of the best cell with deterministic ties.
"""

from functools import cache
from typing import Any

import numpy as np


def cell_action(index: int, width: int) -> np.ndarray:
    """
    The ``MultiDiscrete([height, width])`` action (row, column) that picks a cell of a board.

    :param index: The cell's row-major index.
    :param width: The board's number of columns.
    """
    return np.array(divmod(int(index), width), dtype=np.int64)


def cell_index(action: Any, width: int) -> int:
    """
    The row-major index of the cell that a (row, column) action picks.

    :param action: The action, any sequence of two integers.
    :param width: The board's number of columns.
    """
    row, column = np.asarray(action).reshape(2)
    return int(row) * width + int(column)


@cache
def neighbour_counts(height: int, width: int) -> np.ndarray:
    """
    The number of 8-connected neighbours of every cell of a board, flattened row-major: 3 in the corners, 5 on the
    edges, 8 inside (a read-only array).

    :param height: The number of rows.
    :param width: The number of columns.
    """
    rows = np.minimum(np.arange(height), np.arange(height)[::-1]).clip(max=1) + 2
    columns = np.minimum(np.arange(width), np.arange(width)[::-1]).clip(max=1) + 2
    counts = (np.outer(rows, columns) - 1).reshape(-1)
    counts.flags.writeable = False
    return counts


@cache
def neighbour_lists(height: int, width: int) -> tuple[tuple[int, ...], ...]:
    """
    The 8-connected neighbours of every cell of a board (row-major indices, in increasing order).

    :param height: The number of rows.
    :param width: The number of columns.
    """
    lists = []
    for row in range(height):
        for column in range(width):
            lists.append(
                tuple(
                    r * width + c
                    for r in range(max(row - 1, 0), min(row + 2, height))
                    for c in range(max(column - 1, 0), min(column + 2, width))
                    if (r, c) != (row, column)
                )
            )
    return tuple(lists)


def best_cell(score: np.ndarray, allowed: np.ndarray, tie_break: np.ndarray | None = None, atol: float = 0.0) -> int:
    """
    The allowed cell of highest score. Ties (scores within ``atol`` of the best) go to the lowest ``tie_break``, then
    to the lowest index.

    :param score: One score per cell (flattened).
    :param allowed: Which cells may be chosen (at least one).
    :param tie_break: Secondary key per cell, lower first; ``None`` for index order only.
    :param atol: Scores this close to the best one count as ties.
    :return: The cell's index.
    """
    masked = np.where(allowed, score, -np.inf)
    if tie_break is None and atol == 0.0:
        return int(np.argmax(masked))
    ties = masked >= masked.max() - atol
    if tie_break is None:
        return int(np.argmax(ties))
    return int(np.argmin(np.where(ties, tie_break, np.iinfo(np.int64).max)))
