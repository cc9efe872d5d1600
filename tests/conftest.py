import numpy as np
import pytest
import torch as th

from sb3_elmur.elmur import PAPER_LAYER, ElmurBackbone, ElmurConfig, episode_timesteps, segment_blocks

th.set_num_threads(1)


def run_stream(net: ElmurBackbone, features: th.Tensor, starts: th.Tensor) -> th.Tensor:
    """Outputs ``[B, T, D]`` (``[G, B, T, D]`` for towers) of the streaming path over ``features [B, T, F]`` (or
    ``[G, B, T, F]``) with episode starts ``[B, T]``."""
    state = net.initial_state(starts.shape[0])
    outs = []
    for t in range(starts.shape[1]):
        out, state = net.step(features[..., t, :], state, starts[:, t])
        outs.append(out)
    return th.stack(outs, dim=-2)


def block_layout(starts: th.Tensor, segment_len: int) -> tuple[th.Tensor, th.Tensor]:
    """Indices ``[B, n_blocks * K]`` into each row's steps (-1 = padding) and the matching timesteps."""
    batch = starts.shape[0]
    steps = episode_timesteps(starts.numpy().T, np.zeros(batch, dtype=np.int64)).T
    rows = [segment_blocks(steps[b], segment_len) for b in range(batch)]
    n_blocks = max(r.shape[0] for r in rows)
    index = np.full((batch, n_blocks, segment_len), -1, dtype=np.int64)
    for b, r in enumerate(rows):
        index[b, : r.shape[0]] = r
    index = th.as_tensor(index.reshape(batch, -1))
    timesteps = th.where(index >= 0, th.as_tensor(steps).gather(1, index.clamp(min=0)), -1)
    return index, timesteps


def run_parallel(net: ElmurBackbone, features: th.Tensor, starts: th.Tensor, **kwargs) -> th.Tensor:
    """Outputs ``[B, T, D]`` of the parallel path on the block layout of the same streams."""
    batch, length, _ = features.shape
    index, timesteps = block_layout(starts, net.config.segment_len)
    blocks = features.gather(1, index.clamp(min=0).unsqueeze(-1).expand(-1, -1, features.shape[-1]))
    out, _ = net(blocks, timesteps, **kwargs)
    result = th.zeros(batch, length, out.shape[-1], dtype=out.dtype)
    for b in range(batch):
        valid = index[b] >= 0
        result[b, index[b][valid]] = out[b][valid]
    return result


def random_starts(batch: int, length: int, rate: float, generator: th.Generator) -> th.Tensor:
    starts = th.rand(batch, length, generator=generator) < rate
    starts[:, 0] = True
    return starts


@pytest.fixture
def small_config() -> ElmurConfig:
    """The paper's layer (no gates, no token shift): the tests of those options set them."""
    return ElmurConfig(d_model=32, n_layers=2, n_heads=4, segment_len=5, n_slots=2, lru_lambda=0.3, **PAPER_LAYER)
