"""
Segments: how a stream of steps is cut into blocks of K steps for the parallel (training) path.

A segment covers the absolute steps ``[k*K, (k+1)*K)`` of one episode (step 0 = the episode's first
step), so segments always start at episode starts. In the parallel path a batch row is a sequence
of blocks of K tokens, block position ``j`` holding the step with ``t % K == j``; padding carries
timestep -1. These helpers build and check that layout.
"""

import numpy as np
import torch as th


def episode_timesteps(episode_starts: np.ndarray, first_step: np.ndarray) -> np.ndarray:
    """
    Absolute step index inside the episode for every step of a batch of streams.

    :param episode_starts: ``[n_steps, n_envs]`` bool, True where a step is the first of an episode.
    :param first_step: ``[n_envs]`` int, step index of the first row (ignored where it starts an episode).
    :return: ``[n_steps, n_envs]`` int64.
    """
    episode_starts = np.asarray(episode_starts, dtype=bool)
    n_steps, n_envs = episode_starts.shape
    rows = np.arange(n_steps)[:, None]
    # Row of the most recent episode start at or before each row (-1 if none in the window).
    last_start = np.maximum.accumulate(np.where(episode_starts, rows, -1), axis=0)
    offset = np.where(last_start >= 0, rows - last_start, rows + np.asarray(first_step, dtype=np.int64)[None, :])
    return offset.astype(np.int64).reshape(n_steps, n_envs)


def segment_blocks(timesteps: np.ndarray, segment_len: int) -> np.ndarray:
    """
    Cut one env's consecutive steps into blocks of K positions.

    :param timesteps: ``[n_steps]`` int, absolute step in the episode of each consecutive step (0 at resets).
    :param segment_len: K.
    :return: ``[n_blocks, K]`` int64 indices into the steps, -1 for padding. A block starts at every
        segment start; the first block starts at position ``timesteps[0] % K`` (leading padding if > 0).
    """
    timesteps = np.asarray(timesteps, dtype=np.int64)
    if timesteps.size == 0:
        return np.zeros((0, segment_len), dtype=np.int64)
    position = timesteps % segment_len
    new_block = position == 0
    new_block[0] = True
    block = np.cumsum(new_block) - 1
    out = np.full((block[-1] + 1, segment_len), -1, dtype=np.int64)
    out[block, position] = np.arange(timesteps.size)
    return out


def validate_segment_layout(timesteps: th.Tensor, segment_len: int) -> None:
    """
    Check the block layout of the parallel path and say exactly what is wrong.

    :param timesteps: ``[batch, n_blocks * K]`` int64, -1 for padding.
    :param segment_len: K.
    :raises ValueError: if the layout is inconsistent.
    """
    if timesteps.dim() != 2:
        raise ValueError(f"timesteps must have shape [batch, time], got {tuple(timesteps.shape)}")
    if timesteps.dtype not in (th.int64, th.int32):
        raise ValueError(f"timesteps must be an integer tensor, got {timesteps.dtype}")
    batch, length = timesteps.shape
    if length % segment_len:
        raise ValueError(f"the time dimension ({length}) must be a multiple of the segment length K={segment_len}")
    blocks = timesteps.view(batch, -1, segment_len)
    valid = blocks >= 0
    position = th.arange(segment_len, device=timesteps.device)
    if ((blocks % segment_len != position) & valid).any():
        raise ValueError("a valid step sits at the wrong block position: block position j must hold a step with t % K == j")
    if (valid[..., 1:] & ~valid[..., :-1]).any():
        raise ValueError("padding inside a segment: the valid steps of each block must form a prefix")
    if ((blocks[..., 1:] != blocks[..., :-1] + 1) & valid[..., 1:]).any():
        raise ValueError("steps inside a block must be consecutive")
    # A block that continues an episode (first step > 0) must follow a complete block of that episode.
    first, last = blocks[:, 1:, 0], blocks[:, :-1, -1]
    if ((first > 0) & (last != first - 1)).any():
        raise ValueError("a block continues an episode (t > 0) but the previous block does not end at t - 1")


def pack_rows(n_blocks: list[int] | np.ndarray, chunk_blocks: int, unit: int = 1) -> list[list[tuple[int, int]]]:
    """
    Pack trajectories into batch rows of the parallel layout, several per row, first-fit decreasing, so that a
    batch computes fewer padded blocks than with one trajectory per row.

    A row is processed in chunks of ``chunk_blocks`` blocks, memory carried (and detached) from one chunk to the
    next; a trajectory that starts at step 0 of a block empties the memory there. A trajectory of at most one
    chunk is placed inside one chunk, at a block offset that is a multiple of ``unit`` (the period of the memory
    detachment inside a chunk, 1 when there is none), and a longer one at the start of a row of its own (its last
    chunk's free blocks are shared). Every trajectory then sees the same computation as in a row of its own.

    :param n_blocks: Blocks of K steps of each trajectory (>= 1).
    :param chunk_blocks: Blocks per chunk (S).
    :param unit: Offsets of trajectories inside a chunk are multiples of it (1 <= unit <= chunk_blocks).
    :return: One list per row of ``(trajectory index, first block of the row)``; every row is
        ``ceil(max(n_blocks) / chunk_blocks)`` chunks long.
    """
    sizes = [int(n) for n in n_blocks]
    if min(sizes, default=1) < 1 or not 1 <= unit <= chunk_blocks:
        raise ValueError(f"need n_blocks >= 1 and 1 <= unit <= chunk_blocks, got {sizes}, {unit}, {chunk_blocks}")
    n_chunks = max([-(-n // chunk_blocks) for n in sizes], default=1)
    rows: list[list[tuple[int, int]]] = []
    used: list[list[int]] = []  # blocks taken in each chunk of each row
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        size = sizes[index]
        if size > chunk_blocks:  # a row of its own from its start; the free end of its last chunk stays open
            full = (size - 1) // chunk_blocks
            rows.append([(index, 0)])
            used.append([chunk_blocks] * full + [size - full * chunk_blocks] + [0] * (n_chunks - full - 1))
            continue
        free = ((row, c, -(-taken // unit) * unit) for row, chunks in enumerate(used) for c, taken in enumerate(chunks))
        spot = next(((row, c, offset) for row, c, offset in free if offset + size <= chunk_blocks), None)
        if spot is None:
            rows.append([(index, 0)])
            used.append([size] + [0] * (n_chunks - 1))
        else:
            row, c, offset = spot
            rows[row].append((index, c * chunk_blocks + offset))
            used[row][c] = offset + size
    return rows
