"""History-based experts for the 16 POPGym families (one scripted policy per family, see :class:`HistoryExpert`)."""

import importlib

from sb3_elmur.envs.popgym.experts.base import HistoryExpert
from sb3_elmur.envs.popgym.tasks import parse_task

#: Where each family's expert lives (``module:class``), imported on first use.
EXPERTS = {
    "Autoencode": "cards:AutoencodeExpert",
    "RepeatPrevious": "cards:RepeatPreviousExpert",
    "RepeatFirst": "cards:RepeatFirstExpert",
    "CountRecall": "cards:CountRecallExpert",
    "HigherLower": "cards:HigherLowerExpert",
    "MultiarmedBandit": "bandit:MultiarmedBanditExpert",
    "Battleship": "battleship:BattleshipExpert",
    "Concentration": "concentration:ConcentrationExpert",
    "MineSweeper": "minesweeper:MineSweeperExpert",
    "LabyrinthExplore": "labyrinth:LabyrinthExploreExpert",
    "LabyrinthEscape": "labyrinth:LabyrinthEscapeExpert",
    "PositionOnlyCartPole": "cartpole:PositionOnlyCartPoleExpert",
    "VelocityOnlyCartpole": "cartpole:VelocityOnlyCartpoleExpert",
    "NoisyPositionOnlyCartPole": "cartpole:NoisyPositionOnlyCartPoleExpert",
    "PositionOnlyPendulum": "pendulum:PositionOnlyPendulumExpert",
    "NoisyPositionOnlyPendulum": "pendulum:NoisyPositionOnlyPendulumExpert",
}

#: Mean returns of the reference experts of ../shared/docs/popgym.md (section 2.2), Easy / Medium / Hard.
REFERENCE_RETURNS = {
    "Autoencode": (1.0, 1.0, 1.0),
    "RepeatPrevious": (1.0, 1.0, 1.0),
    "RepeatFirst": (1.0, 1.0, 1.0),
    "CountRecall": (1.0, 1.0, 1.0),
    "HigherLower": (0.526, 0.521, 0.510),
    "MultiarmedBandit": (0.651, 0.736, 0.765),
    "Battleship": (0.535, 0.587, 0.590),
    "Concentration": (0.816, 0.815, 0.698),
    "MineSweeper": (0.802, 0.685, 0.598),
    "LabyrinthExplore": (0.968, 0.925, 0.867),
    "LabyrinthEscape": (0.966, 0.934, 0.893),
    "PositionOnlyCartPole": (1.0, 1.0, 1.0),
    "VelocityOnlyCartpole": (1.0, 1.0, 1.0),
    "NoisyPositionOnlyCartPole": (0.974, 0.624, 0.399),
    "PositionOnlyPendulum": (0.917, 0.889, 0.833),
    "NoisyPositionOnlyPendulum": (0.902, 0.772, 0.709),
}


def expert_class(env_id: str) -> type[HistoryExpert]:
    """
    The expert class of a POPGym task.

    :param env_id: One of the 48 POPGym ids.
    """
    family, _ = parse_task(env_id)
    module, name = EXPERTS[family].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def make_expert(env_id: str, seed: int = 0) -> HistoryExpert:
    """
    The history-based expert of a POPGym task.

    :param env_id: One of the 48 POPGym ids.
    :param seed: Seed of the expert's own randomness (particle filters); the others ignore it.
    """
    return expert_class(env_id)(env_id, seed=seed)


def reference_return(env_id: str) -> float:
    """
    The mean return of the reference expert in ../shared/docs/popgym.md for this task.

    :param env_id: One of the 48 POPGym ids.
    """
    family, difficulty = parse_task(env_id)
    return REFERENCE_RETURNS[family][("Easy", "Medium", "Hard").index(difficulty)]


__all__ = ["EXPERTS", "REFERENCE_RETURNS", "HistoryExpert", "expert_class", "make_expert", "reference_return"]
