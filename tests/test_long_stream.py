"""A 10^5-step stream: no NaN, no growth of the state, bounded memory."""

import pytest
import torch as th

from sb3_elmur.elmur import ElmurBackbone, ElmurConfig


@pytest.mark.parametrize(
    "previous, shift", [(False, False), (True, False), (True, True)], ids=["memory", "memory-and-previous-segment", "all"]
)
def test_hundred_thousand_steps_in_constant_state(previous, shift):
    config = ElmurConfig(
        d_model=16, n_layers=1, n_heads=2, segment_len=10, n_slots=3, lru_lambda=0.5, read_previous_segment=previous,
        token_shift=shift,
    )  # fmt: skip
    th.manual_seed(0)
    net = ElmurBackbone(4, config).eval()
    with th.no_grad():  # a token shift that does something (it starts at zero)
        for name, param in net.named_parameters():
            if ".shift." in name:
                param.normal_()
    state = net.initial_state(2)
    shapes = [tuple(t.shape) for t in state.tensors()]
    nbytes = state.nbytes()
    generator = th.Generator().manual_seed(0)
    n_steps = 100_000
    chunk = th.randn(1000, 2, 4, generator=generator) * 3
    max_norm = 0.0
    with th.inference_mode():
        for t in range(n_steps):
            out, state = net.step(chunk[t % 1000], state)
            if t % 997 == 0:
                assert th.isfinite(out).all(), f"non-finite output at step {t}"
                max_norm = max(max_norm, state.memory.vectors.norm(dim=-1).max().item())
    assert all(th.isfinite(t.float()).all() for t in state.tensors())
    assert [tuple(t.shape) for t in state.tensors()] == shapes and state.nbytes() == nbytes
    assert state.step.tolist() == [n_steps, n_steps]
    # The last three segments ended at steps 99_999, 99_989, 99_979, one per slot.
    assert sorted(state.memory.timestamps[0, 0, :3].tolist()) == [99_979, 99_989, 99_999]
    if previous:  # and the previous-segment slots hold the last segment's steps
        assert state.memory.timestamps[0, 0, 3:13].tolist() == list(range(99_990, 100_000))
    if shift:  # and the shift slot the last step
        assert state.memory.timestamps[:, 0, -1].tolist() == [99_999, 99_999]
    # Candidates leave through a LayerNorm and the LRU blend is convex: slot norms stay bounded.
    assert max_norm < 4 * config.d_model**0.5


@pytest.mark.parametrize("shift", [False, True], ids=["memory", "token-shift"])
def test_compiled_step_commits_only_when_a_row_completes_its_segment(monkeypatch, shift):
    """
    CompiledStep (torch.compile replaced by the function itself, to test the routing without a compilation): the
    graph without the commit runs exactly at the steps where no row completes its segment after the resets, and
    the stream equals the eager one (a step that skipped a due commit would lose that segment's memory).
    """
    monkeypatch.setattr(th, "compile", lambda fn, **kwargs: fn)
    config = ElmurConfig(d_model=16, n_layers=2, n_heads=2, segment_len=4, n_slots=2, lru_lambda=0.5, token_shift=shift)
    th.manual_seed(0)
    net = ElmurBackbone(3, config).eval()
    compiled = net.compile_step()
    graphs = []
    for name in ("within_segment", "completing_segment"):
        fn = getattr(compiled, name)
        setattr(compiled, name, lambda *a, fn=fn, name=name: graphs.append(name) or fn(*a))
    eager_state, compiled_state = net.initial_state(2), net.initial_state(2)
    generator = th.Generator().manual_seed(1)
    expected = []
    with th.inference_mode():
        for t in range(30):
            features = th.randn(2, 3, generator=generator)
            starts = th.tensor([t in (3, 13), t in (1, 14, 15)])  # at t = 3 row 0 is reset where it would commit
            positions = eager_state.step.masked_fill(starts, 0) % config.segment_len
            expected.append("completing_segment" if (positions == config.segment_len - 1).any() else "within_segment")
            eager_out, eager_state = net.step(features, eager_state, starts)
            compiled_out, compiled_state = compiled(features, compiled_state, starts)
            assert th.allclose(eager_out, compiled_out[0], atol=1e-5), f"step {t}"
            for a, b in zip(eager_state.tensors(), compiled_state.tensors(), strict=True):
                assert th.allclose(a.float(), b.float(), atol=1e-5), f"step {t}"
    assert graphs == expected and set(graphs) == {"within_segment", "completing_segment"}
    assert int((compiled_state.memory.timestamps >= 0).sum()) > 0


@pytest.mark.slow  # one compilation of the acting step: a minute or two on a 2-core CPU with a cold cache
def test_compiled_step_streams_what_the_eager_step_streams():
    """ElmurBackbone.compile_step: the same outputs and states as the eager step over commits and resets."""
    config = ElmurConfig(d_model=16, n_layers=2, n_heads=2, segment_len=4, n_slots=2, lru_lambda=0.5)
    th.manual_seed(0)
    net = ElmurBackbone(3, config, n_towers=2).eval()
    compiled = net.compile_step()
    for commit in (True, False):  # each one graph: no break at the reset, the commit or the cache writes
        with th.inference_mode():
            explained = th._dynamo.explain(net.step_towers)(
                th.randn(3, 3), net.initial_state(3), th.ones(3, dtype=th.bool), True, commit
            )
        assert explained.graph_break_count == 0 and explained.graph_count == 1, f"commit={commit}"
    eager_state, compiled_state = net.initial_state(3), net.initial_state(3)
    generator = th.Generator().manual_seed(1)
    with th.inference_mode():
        for t in range(40):
            features = th.randn(3, 3, generator=generator)
            starts = th.tensor([t == 17, t % 9 == 0, False])
            eager_out, eager_state = net.step_towers(features, eager_state, starts)
            before = [x.clone() for x in compiled_state.tensors()]
            compiled_out, new_state = compiled(features, compiled_state, starts)
            assert all(th.equal(a, b) for a, b in zip(before, compiled_state.tensors(), strict=True)), "input untouched"
            compiled_state = new_state
            assert th.allclose(eager_out, compiled_out, atol=1e-5)
            for a, b in zip(eager_state.tensors(), compiled_state.tensors(), strict=True):
                assert th.allclose(a.float(), b.float(), atol=1e-5)
    assert int((eager_state.memory.timestamps >= 0).sum()) > 0
