"""Gradient through memory: the write path learns unless memory is detached; MoE routers learn."""

import pytest
import torch as th

from sb3_elmur.elmur import ElmurBackbone, ElmurConfig

MEMORY_TRACK = ("write", "memory_ffn", "slot_init", "candidate_norm")


def write_path_grads(config: ElmurConfig) -> dict[str, th.Tensor]:
    th.manual_seed(0)
    net = ElmurBackbone(5, config)
    k = config.segment_len
    features = th.randn(3, 3 * k, 5)
    out, _ = net(features, th.arange(3 * k).expand(3, -1))
    (out[:, k:] ** 2).mean().backward()  # loss on the segments that read written memory
    return {
        name: (param.grad if param.grad is not None else th.zeros_like(param))
        for name, param in net.named_parameters()
        if any(part in name for part in MEMORY_TRACK)
    }


@pytest.mark.parametrize("norm_first", [True, False])
def test_write_path_learns_through_memory(norm_first):
    config = ElmurConfig(d_model=16, n_heads=2, segment_len=4, n_slots=2, memory_bptt=None, norm_first=norm_first)
    grads = write_path_grads(config)
    assert grads, "the memory track has parameters"
    zero = [name for name, grad in grads.items() if not grad.abs().sum() > 0]
    assert not zero, f"write-path parameters without gradient: {zero}"


def test_detached_memory_gives_the_write_path_exactly_zero_gradient():
    config = ElmurConfig(d_model=16, n_heads=2, segment_len=4, n_slots=2, memory_bptt=1)
    grads = write_path_grads(config)
    assert all(th.count_nonzero(grad) == 0 for grad in grads.values())


def test_memory_bptt_truncates_after_the_given_number_of_segments():
    config = ElmurConfig(d_model=16, n_heads=2, segment_len=4, n_slots=4)
    th.manual_seed(0)
    net = ElmurBackbone(5, config)
    k = config.segment_len

    projection = th.randn(config.d_model, generator=th.Generator().manual_seed(1))

    def input_grad_per_segment(bptt):
        features = th.randn(2, 4 * k, 5, requires_grad=True)
        out, _ = net(features, th.arange(4 * k).expand(2, -1), memory_bptt=bptt)
        # Loss on the last segment only, through a fixed projection: the sum of layer-normed outputs is
        # constant, so a plain sum would give gradient that is zero up to rounding.
        (out[:, 3 * k :] @ projection).sum().backward()
        return features.grad.abs().view(2, 4, k, 5).sum(dim=(0, 2, 3))

    assert (input_grad_per_segment(None) > 0).all()
    truncated = input_grad_per_segment(2)  # memory detached before segments 2 (and 4, ...)
    assert truncated[0] == 0 and truncated[1] == 0
    assert truncated[2] > 0 and truncated[3] > 0
    detached = input_grad_per_segment(1)
    assert detached[:3].sum() == 0 and detached[3] > 0


@pytest.mark.parametrize("top_k", [1, 2])
def test_moe_router_receives_gradient(top_k):
    config = ElmurConfig(d_model=16, n_heads=2, segment_len=4, ffn="moe", n_experts=4, moe_top_k=top_k)
    th.manual_seed(0)
    net = ElmurBackbone(5, config)
    out, _ = net(th.randn(2, 8, 5), th.arange(8).expand(2, -1))
    out.pow(2).mean().backward()
    routers = [p.grad for n, p in net.named_parameters() if "router" in n]
    assert routers and all(g is not None and g.abs().sum() > 0 for g in routers)


def test_moe_uses_only_top_k_experts():
    from sb3_elmur.elmur.feedforward import MoEFeedForward

    th.manual_seed(0)
    moe = MoEFeedForward(1, 8, 16, n_experts=4, top_k=1)
    x = th.randn(1, 5, 8)
    probs = th.softmax(moe.router(x), -1)[0]
    chosen = probs.argmax(-1)
    expected = th.stack(
        [
            probs[i, e]
            * (
                th.nn.functional.gelu(x[0, i] @ moe.w_in[0, e] + moe.b_in[0, e], approximate="tanh") @ moe.w_out[0, e]
                + moe.b_out[0, e]
            )
            for i, e in enumerate(chosen.tolist())
        ]
    )
    assert th.allclose(moe(x)[0], expected, atol=1e-6)


def test_detaching_does_not_change_the_forward_values():
    base = ElmurConfig(d_model=16, n_heads=2, segment_len=4)
    th.manual_seed(0)
    net = ElmurBackbone(5, base)
    features = th.randn(2, 12, 5)
    times = th.arange(12).expand(2, -1)
    a, _ = net(features, times, memory_bptt=None)
    b, _ = net(features, times, memory_bptt=1)
    assert th.equal(a, b)
