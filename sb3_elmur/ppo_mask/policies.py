"""Policy aliases of MaskableElmurPPO (the names of ElmurPPO's, with maskable action distributions)."""

from sb3_elmur.common.maskable import (
    MaskableElmurActorCriticCnnPolicy,
    MaskableElmurActorCriticPolicy,
    MaskableElmurMultiInputActorCriticPolicy,
)

MlpElmurPolicy = MaskableElmurActorCriticPolicy
CnnElmurPolicy = MaskableElmurActorCriticCnnPolicy
MultiInputElmurPolicy = MaskableElmurMultiInputActorCriticPolicy

__all__ = ["CnnElmurPolicy", "MlpElmurPolicy", "MultiInputElmurPolicy"]
