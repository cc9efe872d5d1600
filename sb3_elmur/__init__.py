"""sb3_elmur: ELMUR memory-transformer agents for Stable-Baselines3."""

from sb3_elmur.elmur import ElmurBackbone, ElmurConfig, MemoryState, StreamState

__version__ = "0.1.0"

__all__ = ["ElmurBackbone", "ElmurConfig", "MemoryState", "StreamState", "__version__"]
