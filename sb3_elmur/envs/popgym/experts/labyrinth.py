"""
History-based experts of POPGym's LabyrinthExplore and LabyrinthEscape: dead reckoning from the local views, and a
depth-first walk of the maze.
"""

from collections import deque
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings

UNKNOWN, FREE, WALL, START, GOAL = -1, 0, 1, 2, 3
#: The displacement (row, column) of each action: LEFT, RIGHT, UP, DOWN.
MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))


class MazeMap:
    """
    The part of a maze seen so far, in coordinates relative to the start, and the agent's position on it.

    The position is known exactly: every view shows the four neighbours, so the map always says whether a move goes
    through (the target is open) or leaves the agent in place (a wall). A view is centred on the agent except on the
    maze's top or left border (only the start lies there): the env then pads the view after the grid's edge, so the
    view's rows or columns are shifted. The START value locates the agent in the first view, and only view cells
    within one step of the agent are entered; the neighbours of the start outside the view are outside the maze,
    hence walls.

    :param grid_size: The maze grid's width and height (``2 * blocks + 1``).
    :param view: The reset observation's 3x3 local view.
    """

    def __init__(self, grid_size: int, view: np.ndarray) -> None:
        self.origin = grid_size  # the start's index in ``cells``: any position relative to it fits
        self.cells = np.full((2 * grid_size + 1, 2 * grid_size + 1), UNKNOWN, dtype=np.int64)
        rows, columns = np.nonzero(view == START)
        self.start_offset = (int(rows[0]), int(columns[0]))  # where the agent is in a view taken at the start
        self.position = (self.origin, self.origin)
        self.goal: tuple[int, int] | None = None  # where the GOAL cell is, once seen
        self.cells[self.origin - 1 : self.origin + 2, self.origin - 1 : self.origin + 2] = WALL
        self.see(view)

    def see(self, view: np.ndarray) -> None:
        """
        Enter a 3x3 view taken at the current position.

        :param view: The view (0 free, 1 wall, 2 start, 3 goal).
        """
        row, column = self.position
        if self.position == (self.origin, self.origin):
            top, left = self.start_offset
            for i, j in np.ndindex(3, 3):
                if abs(i - top) <= 1 and abs(j - left) <= 1:
                    self.cells[row + i - top, column + j - left] = view[i, j]
        else:
            self.cells[row - 1 : row + 2, column - 1 : column + 2] = view
        if self.goal is None and (view == GOAL).any():
            goal_row, goal_column = np.argwhere(self.cells == GOAL)[0]
            self.goal = (int(goal_row), int(goal_column))

    def target(self, action: int) -> tuple[int, int]:
        """
        The cell a move leads to (the current one if a wall blocks it).

        :param action: LEFT, RIGHT, UP or DOWN (0 .. 3).
        """
        d_row, d_column = MOVES[action]
        cell = (self.position[0] + d_row, self.position[1] + d_column)
        return self.position if self.cells[cell] == WALL else cell

    def open_moves(self, order: tuple[int, ...]) -> list[tuple[int, tuple[int, int]]]:
        """
        The moves that lead somewhere, as (action, cell), in the given order of actions.

        :param order: The actions to try, in order.
        """
        moves = [(action, self.target(action)) for action in order]
        return [(action, cell) for action, cell in moves if cell != self.position]

    def step_to(self, cell: tuple[int, int]) -> int:
        """
        The action that moves to a neighbouring cell.

        :param cell: A cell next to the current position.
        """
        return MOVES.index((cell[0] - self.position[0], cell[1] - self.position[1]))

    def path_to(self, goal: tuple[int, int]) -> list[int]:
        """
        The actions of a shortest path from the current position to ``goal`` through known open cells
        (breadth-first; empty if there is none).

        :param goal: The cell to reach.
        """
        parents: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {self.position: None}
        queue = deque([self.position])
        while queue and goal not in parents:
            row, column = queue.popleft()
            for action, (d_row, d_column) in enumerate(MOVES):
                cell = (row + d_row, column + d_column)
                if cell not in parents and self.cells[cell] in (FREE, START, GOAL):
                    parents[cell] = ((row, column), action)
                    queue.append(cell)
        actions: list[int] = []
        step = parents.get(goal)
        while step is not None:
            cell, action = step
            actions.append(action)
            step = parents[cell]
        return actions[::-1]


class LabyrinthExpert(HistoryExpert):
    """
    A depth-first walk of the maze (a perfect maze: its corridors form a tree), located by dead reckoning
    (:class:`MazeMap`): go to the first unvisited open neighbour in :meth:`move_order`, else step back towards the
    start along the walked path.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        ((rows, columns),) = task_settings(env_id, "maze_dims")  # in blocks: the grid is 2 * blocks + 1 wide
        self.grid_size = 2 * max(rows, columns) + 1

    def reset(self, observation: Any) -> None:
        self.map = MazeMap(self.grid_size, np.asarray(observation)[:9].reshape(3, 3))
        self.visited = {self.map.position}
        self.path = [self.map.position]  # the walked path from the start to the current cell

    def move_order(self) -> tuple[int, ...]:
        """The order in which to try the moves to unvisited cells."""
        return (0, 1, 2, 3)

    def act(self) -> int:
        for action, cell in self.map.open_moves(self.move_order()):
            if cell not in self.visited:
                return action
        if len(self.path) > 1:
            return self.map.step_to(self.path[-2])
        return 0  # everything reachable was visited (the episode is over)

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        cell = self.map.target(int(action))
        self.map.position = cell
        self.map.see(np.asarray(observation)[:9].reshape(3, 3))
        if len(self.path) > 1 and cell == self.path[-2]:
            self.path.pop()
        elif cell != self.path[-1]:
            self.path.append(cell)
            self.visited.add(cell)


class LabyrinthExploreExpert(LabyrinthExpert):
    """
    LabyrinthExplore: visit every cell of the maze by a depth-first walk (:class:`LabyrinthExpert`); the episode ends
    when the last cell is visited.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """


class LabyrinthEscapeExpert(LabyrinthExpert):
    """
    LabyrinthEscape: a depth-first walk that tries the moves towards the exit's side first, and heads straight for
    the exit once it has been seen. The exit lies on the border opposite the start, so the preferred move is the
    first one out of the start (inwards), then the two perpendicular ones, then the move back.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def reset(self, observation: Any) -> None:
        super().reset(observation)
        ((inward, _),) = self.map.open_moves((0, 1, 2, 3))
        perpendicular = (2, 3) if inward in (0, 1) else (0, 1)
        self.order = (inward, *perpendicular, inward ^ 1)

    def move_order(self) -> tuple[int, ...]:
        return self.order

    def act(self) -> int:
        path = [] if self.map.goal is None else self.map.path_to(self.map.goal)
        return path[0] if path else super().act()
