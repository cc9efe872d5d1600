from sb3_elmur.ppo.policies import CnnElmurPolicy, MlpElmurPolicy, MultiInputElmurPolicy
from sb3_elmur.ppo.ppo_elmur import ElmurPPO

__all__ = ["CnnElmurPolicy", "ElmurPPO", "MlpElmurPolicy", "MultiInputElmurPolicy"]
