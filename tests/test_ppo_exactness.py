"""ElmurPPO's training forward reproduces its acting forward exactly (PPO ratio 1 at lr = 0)."""

import numpy as np
import pytest
import torch as th
from envs import RandomLengthEnv
from ppo_utils import learn_recording_kl_and_clipping, recompute
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur import ElmurPPO

CRITICS = {
    "separate critic backbone": {},
    "shared backbone": {"shared_backbone": True, "enable_critic_backbone": False},
    "critic without memory": {"enable_critic_backbone": False},
}


def make_model(
    critic: dict,
    n_envs: int = 3,
    n_steps: int = 17,
    policy_kwargs_extra: dict | None = None,
    elmur_extra: dict | None = None,
    **kwargs,
) -> ElmurPPO:
    env = make_vec_env(RandomLengthEnv, n_envs=n_envs, seed=0)
    elmur = {"d_model": 16, "n_layers": 2, "n_heads": 2, "segment_len": 5, "n_slots": 2, "lru_lambda": 0.5}
    elmur.update(elmur_extra or {})
    return ElmurPPO(
        "MlpElmurPolicy",
        env,
        n_steps=n_steps,  # K = 5 does not divide n_steps = 17: segments cross rollout boundaries
        batch_size=20,
        seed=0,
        policy_kwargs={"elmur_kwargs": elmur, "net_arch": [16], **critic, **(policy_kwargs_extra or {})},
        **{"learning_rate": 0.0, "n_epochs": 1, **kwargs},
    )


#: Backbone options checked with the separate critic backbone.
OPTIONS = {
    "gated residuals": {"residual_gate": "gru"},
    "previous-segment read": {"read_previous_segment": True},
    "token shift": {"token_shift": True},
}


def perturb_token_shift(model: ElmurPPO) -> None:
    """A token shift that does something at learning rate 0 (it starts at zero)."""
    with th.no_grad():
        for name, param in model.policy.backbone.named_parameters():
            if ".shift." in name:
                param.normal_(0.0, 0.3)


@pytest.mark.parametrize("critic", [*CRITICS, *OPTIONS])
def test_training_forward_reproduces_acting(critic):
    option = OPTIONS.get(critic)
    model = make_model(CRITICS["separate critic backbone" if option else critic], elmur_extra=option)
    perturb_token_shift(model)
    model.learn(5 * 17 * 3)  # 5 rollouts: envs at different phases, episodes crossing rollout boundaries
    prefixes = model.rollout_buffer.prefix_length
    assert prefixes.any(), "the test must cover segments cut by the rollout boundary"
    old_lp, new_lp, old_v, new_v, n_steps = recompute(model)
    assert n_steps == model.n_steps * model.n_envs, "every step of the rollout enters the loss exactly once"
    assert np.abs(old_lp - new_lp).max() < 1e-5
    assert np.abs(old_v - new_v).max() < 1e-5


def test_first_epoch_reports_zero_kl_and_no_clipping():
    model = make_model(CRITICS["separate critic backbone"])
    logged = learn_recording_kl_and_clipping(model, 6 * 17 * 3)
    assert len(logged) == 6
    for approx_kl, clip_fraction in logged:
        # Zero up to float32 rounding of (exp(r) - 1) - r with |r| ~ 1e-7; a log-prob error of 1e-3 would give 5e-7.
        assert abs(approx_kl) < 1e-7
        assert clip_fraction == 0.0


def test_rollout_memory_is_stored_once_per_segment_start():
    model = make_model(CRITICS["separate critic backbone"])
    model.learn(3 * 17 * 3)
    buffer = model.rollout_buffer
    k = model.policy.segment_len
    rollout = buffer.timesteps[k - 1 :]
    stored = (buffer.memory_timestamps[k - 1 :] != -1).any(axis=(-1, -2))
    # Memory is only written at segment starts (where a fresh episode's memory is still empty).
    assert not (stored & (rollout % k != 0)).any()
    assert stored[rollout % k == 0].any()


@pytest.mark.parametrize("option", ["plain", "token shift"])
def test_exact_after_updates_thanks_to_prefix_prefill(option):
    """With lr > 0 the caches of segments cut by the rollout boundary are rebuilt with the new parameters."""
    model = make_model(CRITICS["separate critic backbone"], learning_rate=3e-3, elmur_extra=OPTIONS.get(option))
    model.learn(4 * 17 * 3)
    from stable_baselines3.common.callbacks import CallbackList

    callback = CallbackList([])
    callback.init_callback(model)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    assert model.rollout_buffer.prefix_length.any()
    old_lp, new_lp, old_v, new_v, _ = recompute(model)
    assert np.abs(old_lp - new_lp).max() < 1e-5
    assert np.abs(old_v - new_v).max() < 1e-5


@pytest.mark.parametrize("memory_bptt", [None, 1])
def test_write_path_trains_through_memory_only_when_asked(memory_bptt):
    """segments_per_sample=3 with memory_bptt=None trains the write path from PPO; memory_bptt=1 leaves it untouched."""
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0, env_kwargs={"min_len": 30, "max_len": 40})
    elmur = {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2, "memory_bptt": memory_bptt}
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=24, batch_size=24, n_epochs=1, learning_rate=1e-3, seed=0, segments_per_sample=3,
        policy_kwargs={"elmur_kwargs": elmur, "net_arch": [16], "enable_critic_backbone": False},
    )  # fmt: skip
    write_path = {n: p.detach().clone() for n, p in model.policy.backbone.named_parameters() if ".write." in n}
    model.learn(48)
    changed = [n for n, p in model.policy.backbone.named_parameters() if n in write_path and not th.equal(p, write_path[n])]
    if memory_bptt is None:
        assert changed, "the write attention must learn through memory"
    else:
        assert not changed, f"detached memory must leave the write path untouched, changed: {changed}"


def test_minibatches_have_a_fixed_number_of_whole_samples():
    model = make_model(CRITICS["separate critic backbone"])
    model.learn(3 * 17 * 3)
    k, s = model.policy.segment_len, model.segments_per_sample
    batches = list(model.rollout_buffer.get(model.batch_size))
    shapes = {tuple(b.observations.timesteps.shape) for b in batches}
    assert shapes == {(model.rollout_buffer.samples_per_batch(model.batch_size), s * k)}
    covered = sum(int(b.observations.mask.sum()) for b in batches)
    assert covered == model.n_steps * model.n_envs
    for batch in batches:  # a sample starts at a segment start; padding only at the end of a block
        timesteps = batch.observations.timesteps
        real = timesteps[:, 0] >= 0
        assert (timesteps[real, 0] % k == 0).all()


@pytest.mark.slow  # two compilations (with and without gradient): minutes on a 2-core CPU with a cold cache
def test_compiled_training_forward_reproduces_acting():
    """With compile_backbone the update runs through torch.compile; it still recomputes the acting forward."""
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0)
    elmur = {"d_model": 8, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=12, batch_size=24, learning_rate=0.0, n_epochs=1, seed=0,
        policy_kwargs={"elmur_kwargs": elmur, "net_arch": [8], "compile_backbone": True},
    )  # fmt: skip
    model.learn(3 * 12 * 2)
    assert model.policy._compiled_forward is not None
    old_lp, new_lp, old_v, new_v, _ = recompute(model)
    assert np.abs(old_lp - new_lp).max() < 1e-5
    assert np.abs(old_v - new_v).max() < 1e-5


@pytest.mark.parametrize("critic", ["separate critic backbone", "critic without memory"])
def test_compile_acting_rolls_out_through_the_branch_free_step(monkeypatch, critic):
    """
    compile_acting acts through the backbone's branch-free step (here with torch.compile replaced by the function
    itself, to test the routing without a compilation): training still recomputes the acting forward exactly.
    """
    calls = []

    def no_compile(fn, **kwargs):
        calls.append(kwargs)
        return fn

    monkeypatch.setattr(th, "compile", no_compile)
    model = make_model(CRITICS[critic], policy_kwargs_extra={"compile_acting": True})
    step_towers = model.policy.backbone.step_towers
    branch_free = []
    monkeypatch.setattr(
        model.policy.backbone,
        "step_towers",
        lambda *a, **kw: branch_free.append(kw.get("branch_free")) or step_towers(*a, **kw),
    )
    model.policy._compiled_step = None  # built again on the patched step
    model.learn(4 * 17 * 3)
    assert len(calls) == 2, "one compiled step (its two graphs), built once"
    assert branch_free and all(branch_free)
    old_lp, new_lp, old_v, new_v, _ = recompute(model)
    assert np.abs(old_lp - new_lp).max() < 1e-5
    assert np.abs(old_v - new_v).max() < 1e-5
    assert ElmurPPO("MlpElmurPolicy", model.env, policy_kwargs={"compile_acting": True}).policy.compile_acting
