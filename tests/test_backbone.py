"""The backbone: parallel == streaming, per-env resets, translation invariance, empty-memory reads, ablations."""

import dataclasses

import numpy as np
import pytest
import torch as th
from conftest import block_layout, random_starts, run_parallel, run_stream

from sb3_elmur.elmur import ElmurBackbone, ElmurConfig, MemoryState

CONFIGS = {
    "pre-norm": {},
    "post-norm (paper)": {"norm_first": False},
    "moe": {"ffn": "moe", "n_experts": 3, "moe_top_k": 1},
    "no-lru": {"use_lru": False},
    "no-read": {"use_read": False},
    "no-write": {"use_write": False},
    "one-slot-lambda-1": {"n_slots": 1, "lru_lambda": 1.0},
    "three-layers-k3": {"n_layers": 3, "segment_len": 3, "n_slots": 3},
    "gru-gates": {"residual_gate": "gru"},
    "gru-gates-post-norm": {"residual_gate": "gru", "norm_first": False},
    "gru-gates-no-read": {"residual_gate": "gru-no-read"},
    "previous-segment": {"read_previous_segment": True},
    "previous-segment-post-norm-no-write": {"read_previous_segment": True, "norm_first": False, "use_write": False},
    "token-shift": {"token_shift": True},
    "token-shift-previous-segment-post-norm": {"token_shift": True, "read_previous_segment": True, "norm_first": False},
    "default-layer (gates and token shift)": {"residual_gate": "gru", "token_shift": True},
}


def make(config: ElmurConfig, in_features: int = 6, seed: int = 0) -> ElmurBackbone:
    th.manual_seed(seed)
    net = ElmurBackbone(in_features, config).eval()
    # Non-zero biases so that the time and position tables matter in the comparison, and a token shift that
    # does something (it starts at zero).
    with th.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("table.weight") or ".shift." in name:
                param.normal_()
    return net


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parallel_equals_streaming_with_mixed_resets(small_config, name):
    config = dataclasses.replace(small_config, **CONFIGS[name])
    net = make(config)
    generator = th.Generator().manual_seed(1)
    batch, length = 4, 8 * config.segment_len + 3  # at least 3 segments per stream, partial tail
    features = th.randn(batch, length, 6, generator=generator)
    starts = random_starts(batch, length, 0.04, generator)
    starts[1, 1:] = False  # one env without reset: 8+ consecutive segments
    starts[2, 2 * config.segment_len + 2] = True  # a reset in the middle of a segment
    with th.no_grad():
        streamed = run_stream(net, features, starts)
        parallel = run_parallel(net, features, starts)
    assert th.isfinite(streamed).all()
    assert (streamed - parallel).abs().max().item() < 1e-5


def test_a_backbone_made_in_inference_mode_streams_what_the_parallel_path_computes(small_config):
    """Its parameters are inference tensors, which have no version counter (the acting bias cache must not need it)."""
    th.manual_seed(0)
    with th.inference_mode():
        net = make(small_config)
        features = th.randn(2, 3 * small_config.segment_len, 6)
        starts = th.zeros(2, features.shape[1], dtype=th.bool)
        starts[:, 0] = True
        streamed = run_stream(net, features, starts)
        parallel = run_parallel(net, features, starts)
    assert (streamed - parallel).abs().max().item() < 1e-5


def test_streaming_commits_memory_at_segment_ends(small_config):
    net = make(small_config)
    k = small_config.segment_len
    state = net.initial_state(2)
    with th.no_grad():
        for t in range(3 * k):
            _, state = net.step(th.randn(2, 6), state, th.tensor([t == 0, t == 0]))
            committed = (state.memory.timestamps >= 0).sum(-1)  # [batch, layers]
            assert (committed == min((t + 1) // k, small_config.n_slots)).all()
    assert state.memory.timestamps[0, 0].tolist() == [3 * k - 1, 2 * k - 1]  # slot 0 overwritten by LRU


def test_reset_of_one_env_leaves_the_others_untouched(small_config):
    net = make(small_config)
    generator = th.Generator().manual_seed(2)
    batch, length = 3, 4 * small_config.segment_len
    features = th.randn(batch, length, 6, generator=generator)
    starts = th.zeros(batch, length, dtype=th.bool)
    starts[:, 0] = True
    reset_starts = starts.clone()
    reset_starts[1, 13] = True  # env 1 restarts mid-segment
    with th.no_grad():
        plain = run_stream(net, features, starts)
        with_reset = run_stream(net, features, reset_starts)
        alone = run_stream(net, features[1:2, 13:], th.ones(1, length - 13, dtype=th.bool) & (th.arange(length - 13) == 0))
    others = [0, 2]
    assert th.allclose(plain[others], with_reset[others], atol=1e-6, rtol=0)
    assert th.allclose(plain[1, :13], with_reset[1, :13], atol=1e-6, rtol=0)
    assert not th.allclose(plain[1, 13:], with_reset[1, 13:], atol=1e-3)
    # After its reset, env 1 behaves exactly like a fresh episode.
    assert th.allclose(with_reset[1, 13:], alone[0], atol=1e-5, rtol=0)


def test_self_attention_is_translation_invariant(small_config):
    """The same segment placed at episode offset 0 or ~10^6 gives the same tokens (no absolute positions)."""
    config = dataclasses.replace(small_config, use_read=False)
    net = make(config)
    k = config.segment_len
    features = th.randn(2, k, 6)
    with th.no_grad():
        at_start, _ = net(features, th.arange(k).expand(2, k))
        far = 10**6 * k + th.arange(k).expand(2, k)
        at_far, _ = net(features, far, memory=net.initial_memory(2))
    assert th.allclose(at_start, at_far, atol=1e-6, rtol=0)


def test_whole_model_depends_only_on_time_differences(small_config):
    """Shifting token times and slot timestamps together by any multiple of K changes nothing."""
    net = make(small_config)
    k = small_config.segment_len
    generator = th.Generator().manual_seed(3)
    features = th.randn(2, 4 * k, 6, generator=generator)
    with th.no_grad():
        _, memory = net(features[:, : 2 * k], th.arange(2 * k).expand(2, -1))
        times = th.arange(2 * k, 4 * k).expand(2, -1)
        near, _ = net(features[:, 2 * k :], times, memory=memory)
        shift = 123_457 * k
        shifted = MemoryState(memory.vectors, memory.timestamps + shift)
        far, _ = net(features[:, 2 * k :], times + shift, memory=shifted)
    assert (memory.timestamps >= 0).all()
    assert th.allclose(near, far, atol=1e-6, rtol=0)


def test_reading_empty_memory_is_exactly_no_read(small_config):
    """With every slot empty the read contributes exactly nothing, whatever the empty slots hold."""
    net = make(small_config)
    no_read = ElmurBackbone(6, dataclasses.replace(small_config, use_read=False)).eval()
    no_read.load_state_dict({k: v for k, v in net.state_dict().items() if ".read." not in k})
    k = small_config.segment_len
    features = th.randn(3, k, 6)
    junk = MemoryState(th.randn(3, 1, 2, 2, 32) * 1e6, th.full((3, 2, 2), -1))
    with th.no_grad():
        out, _ = net(features, th.arange(k).expand(3, -1), memory=junk)
        reference, _ = no_read(features, th.arange(k).expand(3, -1))
    assert th.isfinite(out).all()
    assert th.allclose(out, reference, atol=1e-6, rtol=0)


def test_padding_content_cannot_leak(small_config):
    net = make(small_config)
    k = small_config.segment_len
    features = th.randn(1, 2 * k, 6)
    times = th.cat([th.arange(k + 3), th.full((k - 3,), -1)]).view(1, -1)
    garbage = features.clone()
    garbage[0, k + 3 :] = float("nan")
    with th.no_grad():
        clean, _ = net(features, times)
        dirty, _ = net(garbage, times)
    assert th.equal(clean[0, : k + 3], dirty[0, : k + 3])


def test_ablation_switches(small_config):
    k = small_config.segment_len
    features = th.randn(2, 3 * k, 6)
    times = th.arange(3 * k).expand(2, -1)
    with th.no_grad():
        _, memory = make(dataclasses.replace(small_config, use_write=False))(features, times)
        assert (memory.timestamps == -1).all(), "no write: memory stays empty"
        _, memory = make(dataclasses.replace(small_config, use_lru=False, n_slots=3))(features, times)
        assert (memory.timestamps == 3 * k - 1).all(), "no LRU: every slot rewritten"
        _, memory = make(dataclasses.replace(small_config, n_slots=5))(features, times)
        assert memory.timestamps[0, 0].tolist() == [k - 1, 2 * k - 1, 3 * k - 1, -1, -1]
    # Without read, memory content cannot change the tokens.
    net = make(dataclasses.replace(small_config, use_read=False))
    filled = MemoryState(th.randn(2, 1, 2, 2, 32), th.zeros(2, 2, 2, dtype=th.long))
    with th.no_grad():
        a, _ = net(features[:, :k], times[:, :k] + k, memory=filled)
        b, _ = net(features[:, :k], times[:, :k] + k, memory=net.initial_memory(2))
    assert th.equal(a, b)


def test_branch_free_step_equals_the_step_and_leaves_its_input_alone(small_config):
    """The export form of the acting step (masks instead of branches and in-place writes) computes the same."""
    net = make(small_config)
    k, batch = small_config.segment_len, 3
    generator = th.Generator().manual_seed(2)
    state, free = net.initial_state(batch), net.initial_state(batch)
    with th.no_grad():
        for t in range(4 * k + 2):
            features = th.randn(batch, 6, generator=generator)
            starts = th.tensor([t == 0, t in (0, k + 2), t in (0, 2 * k)])
            given, copy = free, free.clone()
            out, state = net.step(features, state, starts)
            free_out, free = net.step(features, free, starts, branch_free=True)
            assert all(th.equal(a, b) for a, b in zip(given.tensors(), copy.tensors(), strict=True)), "input modified"
            assert (out - free_out).abs().max() < 1e-6
            for a, b in zip(state.tensors(), free.tensors(), strict=True):
                assert a.dtype == b.dtype and (a.double() - b.double()).abs().max() < 1e-6
    assert (state.memory.timestamps >= 0).any()


@pytest.mark.parametrize("ffn", ["mlp", "moe"])
def test_zero_init_residual_starts_as_a_per_step_network(small_config, ffn):
    config = dataclasses.replace(small_config, zero_init_residual=True, ffn=ffn, n_experts=3)
    net = make(config)
    k = config.segment_len
    features, times = th.randn(2, 3 * k, 6), th.arange(3 * k).expand(2, -1)
    filled = MemoryState(th.randn(2, 1, 2, 2, 32), th.zeros(2, 2, 2, dtype=th.long))
    with th.no_grad():
        out, memory = net(features, times, memory=filled)
        alone, _ = net(features[:, 4:5].expand(-1, k, -1).contiguous(), times[:, :k] + 4 * k)
        expected = net.final_norm(net.input_proj(features.unsqueeze(0)))[0]
    # Each step's output is a function of its own features only: no context, no memory, yet.
    assert (out - expected).abs().max() < 1e-5
    assert (out[:, 4] - alone[:, 0]).abs().max() < 1e-5
    assert not (memory.timestamps == -1).all(), "the memory track still writes"
    # The branches learn: their output projections get gradient.
    out, _ = net.train()(features, times, memory=filled)
    out.square().sum().backward()
    layer = net.layers[0]
    assert layer.self_attn.out_proj.weight.grad.abs().sum() > 0
    assert layer.read.out_proj.weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in layer.ffn.output_parameters())
    # Off by default: the same seed gives non-zero branches.
    assert make(small_config).layers[0].self_attn.out_proj.weight.abs().sum() > 0


def context_sensitivity(net: ElmurBackbone, k: int) -> float:
    """How much the last step's output moves when the other steps of its segment and the memory change."""
    generator = th.Generator().manual_seed(3)
    features, times = th.randn(64, k, 6, generator=generator), th.arange(k).expand(64, -1)
    other = features.clone()
    other[:, :-1] = th.randn(64, k - 1, 6, generator=generator)
    with th.no_grad():
        out, _ = net(features, times)
        moved, _ = net(other, times)
    return ((out[:, -1] - moved[:, -1]).norm(dim=-1) / out[:, -1].norm(dim=-1)).mean().item()


def test_gru_gates_start_nearly_closed_and_learn(small_config):
    gated = dataclasses.replace(small_config, residual_gate="gru")
    k = small_config.segment_len
    plain, nearly_shut = context_sensitivity(make(small_config), k), context_sensitivity(make(gated), k)
    shut = context_sensitivity(make(dataclasses.replace(gated, gate_bias=30.0)), k)
    # A closed gate passes the token's own state: the context barely reaches it, less than through a plain residual.
    assert shut < 1e-4 < nearly_shut < 0.5 * plain
    # The gates learn: the update gate's bias (and every gate weight) gets gradient.
    net = make(gated).train()
    out, _ = net(th.randn(2, 2 * k, 6), th.arange(2 * k).expand(2, -1))
    out.square().sum().backward()
    for block in (net.layers[0].self_attn_block, net.layers[0].read_block, net.layers[0].ffn_block):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.gate.parameters())
    assert net.layers[0].write_block.gate is None, "the memory track keeps plain residuals"
    assert make(small_config).layers[0].self_attn_block.gate is None, "off by default"
    layer = make(dataclasses.replace(small_config, residual_gate="gru-no-read")).layers[0]
    assert layer.self_attn_block.gate is not None and layer.ffn_block.gate is not None and layer.read_block.gate is None


def reach_of_segment_start(config: ElmurConfig) -> list[bool]:
    """For each of the first 3 segments: does the first step of segment 3 change when that segment's steps change?"""
    net, k = make(config), config.segment_len
    generator = th.Generator().manual_seed(4)
    features, times = th.randn(8, 4 * k, 6, generator=generator), th.arange(4 * k).expand(8, -1)
    with th.no_grad():
        out, _ = net(features, times)
        reach = []
        for segment in range(3):
            other = features.clone()
            other[:, segment * k : (segment + 1) * k] = th.randn(8, k, 6, generator=generator)
            reach.append(bool((net(other, times)[0][:, 3 * k] - out[:, 3 * k]).abs().max() > 1e-6))
    return reach


def test_read_previous_segment_reaches_back_through_the_token_states(small_config):
    no_write = dataclasses.replace(small_config, use_write=False)
    # Without memory writes a segment's first step sees nothing before it. The previous-segment read gives it the
    # last K token states, which read their own previous segment: every earlier segment reaches it.
    assert reach_of_segment_start(no_write) == [False, False, False]
    assert reach_of_segment_start(dataclasses.replace(no_write, read_previous_segment=True)) == [True, True, True]
    config = dataclasses.replace(small_config, read_previous_segment=True)
    # Gradient from a segment's first step reaches the previous segment's steps through those slots.
    net, k = make(dataclasses.replace(no_write, read_previous_segment=True)), small_config.segment_len
    features = th.randn(2, 2 * k, 6, requires_grad=True)
    net(features, th.arange(2 * k).expand(2, -1))[0][:, k].square().sum().backward()
    assert (features.grad[:, :k].abs().sum(-1) > 0).all()
    # The state holds M memory slots and K previous-segment slots whose timestamps are the steps of the last segment.
    net, k, m = make(config), config.segment_len, config.n_slots
    state = net.initial_state(2)
    with th.no_grad():
        for t in range(2 * k + 3):
            _, state = net.step(th.randn(2, 6), state, th.tensor([t == 0, t == 0]))
    assert state.memory.timestamps.shape == (2, config.n_layers, m + k)
    assert state.memory.timestamps[0, 0, m:].tolist() == list(range(k, 2 * k))
    assert make(small_config).layers[0].previous_norm is None, "off by default: a model saved before keeps its parameters"
    memory = make(small_config).initial_memory(2)  # M slots only: from a backbone without the option
    with pytest.raises(ValueError, match="slots per layer"):
        net(th.randn(2, k, 6), th.arange(k).expand(2, -1), memory)
    with pytest.raises(ValueError, match="needs use_read"):
        dataclasses.replace(config, use_read=False)


def test_token_shift_gives_each_step_the_previous_input(small_config):
    config = dataclasses.replace(small_config, n_layers=1, use_read=False, use_write=False)
    net, k = make(dataclasses.replace(config, token_shift=True)), config.segment_len
    generator = th.Generator().manual_seed(5)
    features, times = th.randn(4, 3 * k, 6, generator=generator), th.arange(3 * k).expand(4, -1)
    with th.no_grad():
        out, memory = net(features, times)
        # A segment's first step sees, of the steps before it, exactly the one before: its input, through the shift.
        for step, reaches in ((2 * k - 1, True), (2 * k - 2, False), (k - 1, False)):
            other = features.clone()
            other[:, step] = th.randn(4, 6, generator=generator)
            changed = bool((net(other, times)[0][:, 2 * k] - out[:, 2 * k]).abs().max() > 1e-6)
            assert changed == reaches, f"step {step}"
        # Without the shift the first step of a segment sees nothing before it (no memory here).
        plain = make(config)
        other = features.clone()
        other[:, 2 * k - 1] = 0.0
        assert th.allclose(plain(other, times)[0][:, 2 * k], plain(features, times)[0][:, 2 * k])
    # The state holds one more slot per layer: the layer's input at the last step, with that step as timestamp.
    assert memory.timestamps.shape[-1] == config.n_slots + 1
    assert (memory.timestamps[:, :, -1] == 3 * k - 1).all()
    # Started at zero, the shift leaves the function of a backbone without it unchanged.
    plain, shifted = make(config, seed=3), ElmurBackbone(6, dataclasses.replace(config, token_shift=True)).eval()
    missing, unexpected = shifted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".shift" in name for name in missing)
    with th.no_grad():
        assert th.allclose(shifted(features, times)[0], plain(features, times)[0], atol=1e-6)
    assert make(small_config).layers[0].shift is None, "off by default: a model saved before keeps its parameters"


@pytest.mark.parametrize(
    "timesteps, message",
    [
        ([[0, 1, 2, 3, 4, 5, 6, 7]], "multiple of the segment length"),
        ([[0, 1, 3, 4, 5, -1]], "wrong block position"),
        ([[0, -1, 2, -1, -1, -1]], "prefix"),
        ([[0, 1, -1, 3, 4, 5]], "previous block does not end"),
    ],
)
def test_bad_layouts_are_rejected(timesteps, message):
    net = make(ElmurConfig(d_model=8, n_heads=2, n_layers=1, segment_len=3))
    t = th.tensor(timesteps)
    with pytest.raises(ValueError, match=message):
        net(th.zeros(1, t.shape[1], 6), t)


def test_bad_shapes_are_rejected(small_config):
    net = make(small_config)
    with pytest.raises(ValueError, match="features must have shape"):
        net(th.zeros(1, 5, 7), th.arange(5).view(1, 5))
    with pytest.raises(ValueError, match="features must have shape"):
        net.step(th.zeros(2, 7), net.initial_state(2))
    with pytest.raises(ValueError, match="rows"):
        net.step(th.zeros(3, 6), net.initial_state(2))


def test_recency_init_weighs_recent_steps_first(small_config):
    config = dataclasses.replace(small_config, position_bias_init="recency", n_heads=4)
    net = ElmurBackbone(6, config)
    bias = net.layers[0].self_attn.position_bias()[0]  # [K, K, heads]: query, key, head
    k = config.segment_len
    assert th.allclose(bias[k - 1, k - 2], th.tensor([-2.0, -1.0, -0.5, -0.25]))  # the previous step
    assert (bias[k - 1, : k - 1].diff(dim=0) > 0).all(), "nearer keys weigh more"
    assert (bias[0, 1:] < -1e30).all(), "still causal"
    assert (ElmurBackbone(6, small_config).layers[0].self_attn.position_bias.table.weight == 0).all()


def test_block_layout_helper_roundtrip():
    starts = th.tensor([[True, False, False, True, False, False, False, False]])
    index, timesteps = block_layout(starts, 3)
    assert index.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, -1]]
    assert timesteps.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, -1]]


@pytest.mark.parametrize(
    "bad",
    [
        {"d_model": 30, "n_heads": 4},
        {"lru_lambda": 1.5},
        {"segment_len": 0},
        {"ffn": "x"},
        {"position_bias_init": "x"},
        {"residual_gate": "gtrxl"},
        {"gate_bias": float("nan")},
        {"output_scale": 0.0},
        {"output_scale": float("inf")},
        {"output_scale": 0.1, "norm_first": False},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        ElmurConfig(**bad)


def test_config_round_trip_and_unknown_names():
    config = ElmurConfig(n_slots=7, memory_bptt=2)
    assert ElmurConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="Unknown ElmurConfig settings"):
        ElmurConfig.from_dict({"n_slot": 3})


@pytest.mark.parametrize("scale", [1.0, 0.1])
def test_output_scale_sets_the_scale_of_the_untrained_output(scale):
    th.manual_seed(0)
    net = ElmurBackbone(6, ElmurConfig(output_scale=scale))
    with th.no_grad():
        out, _ = net(th.randn(4, 20, 6) * 3, th.arange(20).expand(4, -1))
    rms = out.pow(2).mean(-1).sqrt()  # every token's features: layer-normed, times the gain
    assert th.allclose(rms, th.full_like(rms, scale), rtol=1e-3)


def test_config_coerce_takes_a_config_a_dict_or_nothing():
    config = ElmurConfig(n_slots=7)
    assert ElmurConfig.coerce(config) is config
    assert ElmurConfig.coerce({"n_slots": 7}) == config
    assert ElmurConfig.coerce(None) == ElmurConfig()
    with pytest.raises(ValueError, match="Unknown ElmurConfig settings"):
        ElmurConfig.coerce({"n_slot": 3})


def test_streaming_continues_from_parallel_memory_at_a_segment_start(small_config):
    net = make(small_config)
    k = small_config.segment_len
    features = th.randn(2, 4 * k, 6)
    with th.no_grad():
        full, _ = net(features, th.arange(4 * k).expand(2, -1))
        _, memory = net(features[:, : 2 * k], th.arange(2 * k).expand(2, -1))
        state = net.state_at_segment_start(memory, th.full((2,), 2 * k))
        streamed = []
        for t in range(2 * k, 4 * k):
            out, state = net.step(features[:, t], state)
            streamed.append(out)
    assert th.allclose(th.stack(streamed, 1), full[:, 2 * k :], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="segment start"):
        net.state_at_segment_start(memory, th.full((2,), 3))


def test_prefill_rebuilds_the_streaming_state_mid_segment(small_config):
    """Rows at different positions of their segments: prefill from observations == the streamed state."""
    net = make(small_config)
    k = small_config.segment_len
    features = th.randn(3, 3 * k, 6)
    lengths = th.tensor([0, 2, k - 1])
    with th.no_grad():
        _, memory = net(features[:, : 2 * k], th.arange(2 * k).expand(3, -1))
        streamed_state = net.state_at_segment_start(memory, th.full((3,), 2 * k))
        for t in range(2 * k, 2 * k + int(lengths.max())):
            _, stepped = net.step(features[:, t], streamed_state.clone())
            keep = (t - 2 * k) < lengths
            streamed_state = ElmurBackbone.reset_state(streamed_state, th.zeros(3, dtype=th.bool))
            for field in ("keys", "values", "outputs"):
                getattr(streamed_state, field)[keep] = getattr(stepped, field)[keep]
            streamed_state.step = th.where(keep, stepped.step, streamed_state.step)
        prefilled = net.prefill(features[:, 2 * k : 3 * k], memory, th.full((3,), 2 * k), lengths)
        assert th.equal(prefilled.step, 2 * k + lengths)
        # Both states continue identically through the end of the segment and the commit.
        a, b = streamed_state, prefilled
        for _ in range(k + 2):
            x = th.randn(3, 6)
            out_a, a = net.step(x, a)
            out_b, b = net.step(x, b)
            assert th.allclose(out_a, out_b, atol=1e-5, rtol=0)
        assert th.equal(a.memory.timestamps, b.memory.timestamps)
    with pytest.raises(ValueError, match="prefill"):
        net.prefill(features[:, :k], memory, th.full((3,), 2 * k), th.full((3,), k))


def test_towers_compute_independent_backbones(small_config):
    """Tower g of a two-tower backbone is exactly the single-tower backbone with tower g's weights, in both paths."""
    pair = ElmurBackbone(6, small_config, n_towers=2).eval()
    with th.no_grad():
        for param in pair.parameters():
            param.normal_(0.0, 0.3)
    singles = []
    for tower in range(2):
        single = ElmurBackbone(6, small_config).eval()
        single.load_state_dict({name: value[tower : tower + 1] for name, value in pair.state_dict().items()})
        singles.append(single)
    generator = th.Generator().manual_seed(4)
    features = th.randn(3, 4 * small_config.segment_len + 2, 6, generator=generator)
    starts = random_starts(3, features.shape[1], 0.05, generator)
    per_tower = th.randn(2, *features.shape, generator=generator)
    index, timesteps = block_layout(starts, small_config.segment_len)
    blocks = index.clamp(min=0)
    laid_out, per_tower_laid_out = features[th.arange(3)[:, None], blocks], per_tower[:, th.arange(3)[:, None], blocks]
    with th.no_grad():
        shared, memory = pair(laid_out, timesteps)
        separate, _ = pair(per_tower_laid_out, timesteps)
        streamed = run_stream(pair, per_tower, starts)  # [towers, batch, time, d]
        for tower, single in enumerate(singles):
            alone, alone_memory = single(laid_out, timesteps)
            assert th.allclose(shared[tower], alone, atol=1e-5, rtol=0)
            assert th.allclose(memory.vectors[:, tower], alone_memory.vectors[:, 0], atol=1e-5, rtol=0)
            assert th.equal(memory.timestamps, alone_memory.timestamps)
            assert th.allclose(separate[tower], single(per_tower_laid_out[tower], timesteps)[0], atol=1e-5, rtol=0)
            assert th.allclose(streamed[tower], run_stream(single, per_tower[tower], starts), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="per tower"):
        pair(th.zeros(3, 3, 10, 6), th.arange(10).expand(3, -1))


def test_numpy_feature_widths_become_python_ints():
    """SB3 gives flattened widths as numpy integers; torch.compile traces Python ints only (else a graph break)."""
    net = ElmurBackbone(np.int64(5), ElmurConfig(d_model=8, n_layers=1, n_heads=2, segment_len=2, n_slots=1))
    assert type(net.in_features) is int and type(net.input_proj.in_features) is int
    out, _ = net(th.randn(1, 2, 5), th.arange(2).view(1, 2))
    assert out.shape == (1, 2, 8)


@pytest.mark.parametrize("dynamic_batch", [True, False], ids=["dynamic-batch", "fixed-shapes"])
def test_compiled_parallel_path_is_one_graph_per_shape_or_one_for_every_batch(small_config, dynamic_batch):
    """
    compile_parallel gives the results and gradients of the eager path in one graph (no break); with a dynamic batch
    the first compilation already serves every batch size (torch's default would compile twice), with fixed shapes
    another batch size compiles again. A cheap backend stands in for inductor: what is counted is dynamo's graphs.
    """
    config = dataclasses.replace(small_config, token_shift=True, residual_gate="gru")
    net = make(config).train()
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    th._dynamo.reset()
    compiled = net.compile_parallel(dynamic_batch=dynamic_batch, backend=counting_backend)
    generator = th.Generator().manual_seed(3)
    for batch in (5, 7):
        starts = random_starts(batch, 4 * config.segment_len, 0.05, generator)
        index, timesteps = block_layout(starts, config.segment_len)
        features = th.randn(batch, index.shape[1], 6, generator=generator)
        memory = net.initial_memory(batch)
        results = []
        for forward in (net.forward_towers, compiled):
            net.zero_grad()
            out, after = forward(features, timesteps, memory, memory_bptt=None, check_layout=False)
            (out.square().mean() + after.vectors.square().mean()).backward()
            results.append((out, after.vectors, [p.grad.clone() for p in net.parameters() if p.grad is not None]))
        (out, vectors, grads), (out_c, vectors_c, grads_c) = results
        assert th.allclose(out, out_c, atol=1e-5) and th.allclose(vectors, vectors_c, atol=1e-5)
        assert len(grads) == len(grads_c) and all(th.allclose(a, b, atol=1e-5) for a, b in zip(grads, grads_c, strict=True))
        assert len(graphs) == (1 if batch == 5 or dynamic_batch else 2), f"{len(graphs)} graphs after batch {batch}"
    th._dynamo.reset()
