"""sb3_elmur: ELMUR memory-transformer agents for Stable-Baselines3."""

from sb3_elmur.bc import ElmurBC
from sb3_elmur.elmur import ElmurBackbone, ElmurConfig, MemoryState, StreamState
from sb3_elmur.ppo import CnnElmurPolicy, ElmurPPO, MlpElmurPolicy, MultiInputElmurPolicy
from sb3_elmur.ppo_mask import MaskableElmurPPO

__version__ = "0.1.0"

__all__ = [
    "CnnElmurPolicy",
    "ElmurBC",
    "ElmurBackbone",
    "ElmurConfig",
    "ElmurPPO",
    "MaskableElmurPPO",
    "MemoryState",
    "MlpElmurPolicy",
    "MultiInputElmurPolicy",
    "StreamState",
    "__version__",
]
