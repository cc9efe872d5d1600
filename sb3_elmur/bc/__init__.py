"""Behaviour cloning (offline training) of ELMUR policies."""

from sb3_elmur.bc.elmur_bc import ElmurBC, warmup_cosine
from sb3_elmur.common.compilation import compile_pays

__all__ = ["ElmurBC", "compile_pays", "warmup_cosine"]
