"""
MIKASA-Robo (ManiSkill3 robot memory tasks) as SB3-ready envs on the CPU backend (``bash scripts/setup_mikasa.sh``).
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

__all__ = ["MIKASA_IDS", "MikasaInfo", "check_mikasa_id", "make_mikasa_env", "make_mikasa_vec_env", "mikasa_available"]
