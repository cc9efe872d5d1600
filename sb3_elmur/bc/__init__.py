"""Behaviour cloning (offline training) of ELMUR policies."""

from sb3_elmur.bc.elmur_bc import ElmurBC, compile_pays, warmup_cosine

__all__ = ["ElmurBC", "compile_pays", "warmup_cosine"]
