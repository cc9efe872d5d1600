"""History-based expert of POPGym's MineSweeper: exact mine probabilities from the revealed counts."""

from math import comb
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings
from sb3_elmur.envs.popgym.experts.boards import (
    best_cell,
    cell_action,
    cell_index,
    neighbour_counts,
    neighbour_lists,
)


def frontier_assignments(members: list[list[int]], targets: list[int], num_frontier: int, max_mines: int) -> np.ndarray:
    """
    Every 0/1 assignment of mines to the frontier cells that meets all the count constraints, enumerated breadth-first
    with numpy: all partial assignments of the first ``j`` cells are extended by cell ``j`` at once, and those that
    can no longer meet a constraint (too many mines in it, or too few cells left to reach its count) are dropped.

    :param members: For each constraint, the frontier positions (``0 .. num_frontier - 1``) it sums over. Cells are
        assigned in position order, so positions should follow the constraints (each one's cells close together).
    :param targets: For each constraint, its number of mines.
    :param num_frontier: The number of frontier cells (at most 62).
    :param max_mines: The most mines the frontier may hold.
    :return: ``[n_assignments]`` int64 bit masks (bit ``j``: a mine on frontier cell ``j``).
    """
    membership = np.zeros((num_frontier, len(members)), dtype=np.int16)
    for k, cells in enumerate(members):
        membership[cells, k] = 1
    target = np.asarray(targets, dtype=np.int16)
    # Members of each constraint that are still unassigned once cells 0..j are.
    left = membership[::-1].cumsum(axis=0)[::-1] - membership
    masks = np.zeros(1, dtype=np.int64)
    sums = np.zeros((1, len(members)), dtype=np.int16)
    mines = np.zeros(1, dtype=np.int16)
    for j in range(num_frontier):
        touched = np.flatnonzero(membership[j])
        masks = np.concatenate([masks, masks | np.int64(1 << j)])
        sums = np.concatenate([sums, sums + membership[j]])
        mines = np.concatenate([mines, mines + 1])
        near = sums[:, touched]
        keep = ((near <= target[touched]) & (near + left[j, touched] >= target[touched])).all(axis=1) & (mines <= max_mines)
        masks, sums, mines = masks[keep], sums[keep], mines[keep]
    return masks


class MineSweeperExpert(HistoryExpert):
    """
    MineSweeper: click the unrevealed cell with the lowest exact probability of holding a mine.

    The observation is the number of mines in the 3x3 block around the clicked cell; the expert keeps the board of
    revealed cells and their counts. Each revealed count constrains the unrevealed cells around it (the frontier);
    every assignment of mines to the frontier that meets all of them is enumerated (:func:`frontier_assignments`)
    and weighted by the number of ways to place the remaining mines on the other unrevealed cells,
    ``C(n_other, mines_left)``, which gives every unrevealed cell's exact posterior mine probability (mines are placed
    uniformly at random; there is no first-click safety and no flood fill). The expert clicks a cell of lowest
    probability; ties go to the cell with the fewest neighbours (corners first, where a guess is most likely to reveal
    a 0), then to the lowest index.

    Two shortcuts leave the outcome unchanged and save most enumerations: cells proven to hold a mine stay so, and
    are taken out of the enumeration; and all the cells proven safe are clicked one after the other (in tie-break
    order) before the posterior is computed again, since a safe cell stays safe whatever the new counts say.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        (self.height, self.width), self.num_mines = task_settings(env_id, "dims", "num_mines")
        self.neighbours = neighbour_lists(self.height, self.width)
        self.tie_break = neighbour_counts(self.height, self.width)
        self.reset(0)

    def reset(self, observation: Any) -> None:
        cells = self.height * self.width
        self.revealed = np.zeros(cells, dtype=bool)
        self.counts = np.zeros(cells, dtype=np.int64)
        #: Cells proven to hold a mine.
        self.mines = np.zeros(cells, dtype=bool)
        #: Cells proven safe and not clicked yet, in the order they will be clicked.
        self.safe: list[int] = []
        self.choice: int | None = None

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """
        The posterior probability that each cell holds a mine (0 for revealed cells, 1 for proven mines), and which
        cells are certain to hold one, both flattened row-major.
        """
        position: dict[int, int] = {}  # frontier cell -> its position in the enumeration order
        members, targets = [], []
        for cell in np.flatnonzero(self.revealed).tolist():
            hidden = [n for n in self.neighbours[cell] if not (self.revealed[n] or self.mines[n])]
            if hidden:
                members.append([position.setdefault(n, len(position)) for n in hidden])
                targets.append(int(self.counts[cell]) - sum(bool(self.mines[n]) for n in self.neighbours[cell]))
        frontier = np.fromiter(position, dtype=np.int64, count=len(position))
        unknown = ~(self.revealed | self.mines)
        unknown[frontier] = False
        others = np.flatnonzero(unknown)
        mines_left = self.num_mines - int(self.mines.sum())
        masks = frontier_assignments(members, targets, len(frontier), mines_left)
        bits = (masks[:, None] >> np.arange(len(frontier), dtype=np.int64)) & 1
        left = mines_left - bits.sum(axis=1)
        weight = np.array([comb(len(others), m) for m in left.tolist()], dtype=np.float64)
        possible = weight > 0
        probability = self.mines.astype(np.float64)
        certain = self.mines.copy()
        probability[frontier] = weight @ bits / weight.sum()
        certain[frontier] = bits[possible].all(axis=0)
        if len(others):
            probability[others] = weight @ left / (weight.sum() * len(others))
            certain[others] = bool(np.all(left[possible] == len(others)))
        return probability, certain

    def choose(self) -> int:
        """The cell to click next: the next proven-safe cell, else the best guess of a fresh posterior."""
        if not self.safe:
            probability, self.mines = self.posterior()
            safe = np.flatnonzero((probability == 0) & ~self.revealed)
            self.safe = sorted(safe.tolist(), key=lambda cell: (self.tie_break[cell], cell))
            if not self.safe:
                return best_cell(-probability, ~self.revealed, tie_break=self.tie_break, atol=1e-9)
        return self.safe[0]

    def act(self) -> np.ndarray:
        if self.choice is None:
            self.choice = self.choose()
        return cell_action(self.choice, self.width)

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        self.choice = None
        if reward > 0:  # a newly revealed safe cell (a mine ends the episode, a repeated click changes nothing)
            cell = cell_index(action, self.width)
            self.revealed[cell] = True
            self.counts[cell] = int(observation)
            if cell in self.safe:
                self.safe.remove(cell)
