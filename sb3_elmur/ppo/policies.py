"""Policy aliases of ElmurPPO (as ``MlpLstmPolicy`` & co. for RecurrentPPO)."""

from sb3_elmur.common.policies import (
    ElmurActorCriticCnnPolicy,
    ElmurActorCriticPolicy,
    ElmurMultiInputActorCriticPolicy,
)

MlpElmurPolicy = ElmurActorCriticPolicy
CnnElmurPolicy = ElmurActorCriticCnnPolicy
MultiInputElmurPolicy = ElmurMultiInputActorCriticPolicy

__all__ = ["CnnElmurPolicy", "MlpElmurPolicy", "MultiInputElmurPolicy"]
