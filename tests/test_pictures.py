"""Memory timelines: writes at segment ends, read-attention mass on written slots, ages; the PNG is drawn."""

import numpy as np
import pytest
import torch as th

from sb3_elmur import ElmurPPO
from sb3_elmur.common.plotting import plot_memory_timeline, record_memory_timeline
from sb3_elmur.envs.tmaze import TMazeEnv

K = 4


@pytest.fixture(scope="module")
def model():
    elmur = {"d_model": 16, "n_layers": 2, "n_heads": 2, "segment_len": K, "n_slots": 2, "lru_lambda": 0.5}
    model = ElmurPPO("MlpElmurPolicy", TMazeEnv(corridor_length=13), seed=0, policy_kwargs={"elmur_kwargs": elmur})
    with th.no_grad():  # non-zero time biases: the read weights then differ between slots
        for name, param in model.policy.backbone.named_parameters():
            if name.endswith("table.weight"):
                param.normal_()
    return model


def test_timeline_records_writes_reads_and_ages(model):
    timeline = record_memory_timeline(model, TMazeEnv(corridor_length=13), seed=0, events={"cue": 0, "junction": 13})
    n = timeline.n_steps
    assert n > 3 * K and timeline.rewards.shape == (n,)  # an episode of the corridor plus the junction
    # Writes: one slot per layer at the last step of every completed segment, the LRU order (empty slot first).
    writes = timeline.writes()
    assert sorted({t for t, _, _ in writes}) == [t for t in range(n) if t % K == K - 1]
    assert [(t, layer, slot) for t, layer, slot in writes if layer == 0] == [(3, 0, 0), (7, 0, 1), (11, 0, 0)]
    # The same memory as acting through predict.
    state, start = None, np.ones(1, dtype=bool)
    env = TMazeEnv(corridor_length=13)
    obs, _ = env.reset(seed=0)
    for t in range(n):
        action, state = model.predict(obs[None], state, start, deterministic=True)
        # The memory slots (with the default token shift, the previous step's slot follows them).
        np.testing.assert_array_equal(state[1][0][:, : model.policy.elmur_config.read_slots], timeline.timestamps[t])
        np.testing.assert_array_equal(action[0], timeline.actions[t])
        obs, *_ = env.step(action[0])
        start = np.zeros(1, dtype=bool)
    # Reads: nothing before the first commit, then a distribution over the written slots.
    mass = timeline.read_mass
    assert (mass[:K] == 0).all()
    written_before = np.concatenate([np.full((1, 2, 2), -1), timeline.timestamps[:-1]]) >= 0
    assert (mass[~written_before] == 0).all()
    np.testing.assert_allclose(mass[K:].sum(-1), 1.0, atol=1e-5)
    assert mass[K + 4 :, 0].std(axis=-1).max() > 1e-3, "two written slots are read with different weights"
    # Ages.
    ages = timeline.ages()
    assert np.isnan(ages[0]).all() and ages[K - 1, 0, 0] == 0 and ages[K + 2, 0, 0] == 3
    # Capture is switched off again.
    assert all(layer.read.captured_weights is None for layer in model.policy.backbone.layers)


def test_plot_memory_timeline_writes_a_png(model, tmp_path):
    pytest.importorskip("matplotlib")
    timeline = record_memory_timeline(model, TMazeEnv(corridor_length=9), seed=1, events={"junction": 9})
    path = plot_memory_timeline(timeline, tmp_path / "memory.png", title="T-Maze")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(TypeError, match="ELMUR policy"):
        record_memory_timeline(object(), TMazeEnv())  # type: ignore[arg-type]
