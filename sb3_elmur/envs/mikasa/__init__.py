"""
MIKASA-Robo (ManiSkill3 robot memory tasks) as SB3-ready envs on the CPU backend (``bash scripts/setup_mikasa.sh``),
and many envs as one batched ManiSkill env on the GPU backend (:mod:`sb3_elmur.envs.mikasa.batched`).
The RGB pipeline (expert data recorded in RGB, a CNN encoder over both cameras) is in :mod:`sb3_elmur.envs.mikasa.rgb`.
Importing it also registers the scripted expert in the model registry (``"mikasa-expert"``).
"""

from sb3_elmur.envs.mikasa import experts as _experts  # noqa: F401  (registers "mikasa-expert")
from sb3_elmur.envs.mikasa.adapter import (
    MIKASA_IDS,
    MikasaInfo,
    check_mikasa_id,
    make_mikasa_env,
    make_mikasa_vec_env,
    mikasa_available,
)
from sb3_elmur.envs.mikasa.batched import MikasaBatchedVecEnv, make_mikasa_batched_vec_env
from sb3_elmur.envs.mikasa.rgb import (
    RGB_ENV_KWARGS,
    MikasaRGBExtractor,
    StateAlongside,
    StateExpert,
    StateExpertPolicy,
    collect_rgb_trajectories,
    concatenate_datasets,
    evaluate_expert_in_rgb,
    evaluate_rgb_success,
    make_rgb_collection_env,
    match_image_layout,
)

__all__ = [
    "MIKASA_IDS",
    "RGB_ENV_KWARGS",
    "MikasaBatchedVecEnv",
    "MikasaInfo",
    "MikasaRGBExtractor",
    "StateAlongside",
    "StateExpert",
    "StateExpertPolicy",
    "check_mikasa_id",
    "collect_rgb_trajectories",
    "concatenate_datasets",
    "evaluate_expert_in_rgb",
    "evaluate_rgb_success",
    "make_mikasa_batched_vec_env",
    "make_mikasa_env",
    "make_mikasa_vec_env",
    "make_rgb_collection_env",
    "match_image_layout",
    "mikasa_available",
]
