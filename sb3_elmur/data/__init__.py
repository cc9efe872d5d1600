"""Offline data: trajectory datasets, expert collection and file formats."""

from sb3_elmur.data.minari import from_minari, to_minari
from sb3_elmur.data.trajectories import DatasetError, TrajectoryDataset, collect_trajectories

__all__ = ["DatasetError", "TrajectoryDataset", "collect_trajectories", "from_minari", "to_minari"]
