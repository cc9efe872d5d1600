"""POPGym (popgym[navigation] 1.0.7): the 48 tasks as SB3-ready envs, and a history-based expert per family."""

from sb3_elmur.envs.popgym.adapter import (
    LEAKING_INFO_KEYS,
    OneHotObservation,
    PreviousActionReward,
    StripInfo,
    make_popgym,
    make_popgym_env,
)
from sb3_elmur.envs.popgym.tasks import (
    DIFFICULTIES,
    FAMILIES,
    POPGYM_IDS,
    PUZZLE_FAMILIES,
    REACTIVE_FAMILIES,
    category,
    check_task,
    parse_task,
)

__all__ = [
    "DIFFICULTIES",
    "FAMILIES",
    "LEAKING_INFO_KEYS",
    "POPGYM_IDS",
    "PUZZLE_FAMILIES",
    "REACTIVE_FAMILIES",
    "OneHotObservation",
    "PreviousActionReward",
    "StripInfo",
    "category",
    "check_task",
    "make_popgym",
    "make_popgym_env",
    "parse_task",
]
