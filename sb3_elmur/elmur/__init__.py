"""Torch parts of ELMUR: memory + LRU rule, read/write attention, layer, and the backbone."""

from sb3_elmur.elmur.backbone import ElmurBackbone, SegmentPlan, StreamState
from sb3_elmur.elmur.config import PAPER_LAYER, ElmurConfig
from sb3_elmur.elmur.memory import EMPTY, LruPlan, MemoryState, apply_lru, lru_plan, lru_target, lru_update
from sb3_elmur.elmur.segment import episode_timesteps, pack_rows, segment_blocks, validate_segment_layout
from sb3_elmur.elmur.time_bias import bucket_boundaries, time_buckets

__all__ = [
    "EMPTY",
    "PAPER_LAYER",
    "ElmurBackbone",
    "ElmurConfig",
    "LruPlan",
    "MemoryState",
    "SegmentPlan",
    "StreamState",
    "apply_lru",
    "bucket_boundaries",
    "episode_timesteps",
    "lru_plan",
    "lru_target",
    "lru_update",
    "pack_rows",
    "segment_blocks",
    "time_buckets",
    "validate_segment_layout",
]
