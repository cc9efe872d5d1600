from sb3_elmur.ppo_mask.ppo_mask_elmur import MaskableElmurPPO

__all__ = ["MaskableElmurPPO"]
