"""Behaviour cloning (offline training) of ELMUR policies."""

from sb3_elmur.bc.elmur_bc import ElmurBC, warmup_cosine

__all__ = ["ElmurBC", "warmup_cosine"]
