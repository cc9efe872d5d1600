"""ElmurPPO as a drop-in RecurrentPPO: predict, callbacks, wrappers, logging, save/load."""

import glob
import zipfile

import numpy as np
import pytest
import torch as th
from envs import RandomLengthEnv, RecallEnv
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

from sb3_elmur import ElmurPPO
from sb3_elmur.common.policies import ElmurActorCriticPolicy
from sb3_elmur.elmur import PAPER_LAYER, ElmurConfig
from sb3_elmur.elmur.config import DEFAULTS_BEFORE_RECIPES

TINY = {"elmur_kwargs": {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}, "net_arch": [16]}


def make_model(n_envs: int = 2, **kwargs) -> ElmurPPO:
    env = make_vec_env(RecallEnv, n_envs=n_envs, seed=0)
    return ElmurPPO("MlpElmurPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, policy_kwargs=TINY, **kwargs)


def stream_actions(model: ElmurPPO, observations: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    state, actions = None, []
    for obs, start in zip(observations, starts, strict=True):
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(action)
    return actions


def test_predict_returns_numpy_state_and_carries_memory():
    model = make_model()
    obs = np.zeros((2, 2), dtype=np.float32)
    action, state = model.predict(obs)
    assert action.shape == (2,)
    assert isinstance(state, tuple) and all(isinstance(a, np.ndarray) and a.shape[0] == 2 for a in state)
    for _ in range(5):
        _, state = model.predict(obs, state=state, episode_start=np.array([False, False]))
    assert state[2].tolist() == [6, 6], "step counter advances"
    read = model.policy.elmur_config.read_slots  # the memory slots; with token_shift the previous step's slot follows
    assert (state[1][..., :read] >= 0).any(), "a segment completed and memory was written"
    _, reset = model.predict(obs, state=state, episode_start=np.array([True, False]))
    assert reset[2].tolist() == [1, 7], "only env 0 restarts"
    assert (reset[1][0][..., :read] == -1).all() and np.array_equal(reset[1][1][..., :read], state[1][1][..., :read])
    assert (reset[1][:, :, read:] == np.array([0, 6])[:, None, None]).all(), "the shift slot holds the step just taken"


def test_predict_single_observation():
    model = make_model()
    action, state = model.predict(np.zeros(2, dtype=np.float32), deterministic=True)
    assert np.ndim(action) == 0 and state[0].shape[0] == 1


def test_predict_rejects_bad_input():
    model = make_model()
    other = make_model()
    obs = np.zeros((2, 2), dtype=np.float32)
    _, state = model.predict(obs)
    with pytest.raises(ValueError, match=r"(?i)observation"):
        model.predict(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.predict(np.array([[np.nan, 0.0], [0.0, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.predict(np.zeros((3, 2), dtype=np.float32), state=state)
    with pytest.raises(ValueError, match="tuple"):
        model.predict(obs, state=state[:3])
    with pytest.raises(ValueError, match="another model"):
        other.predict(obs, state=state)
    with pytest.raises(ValueError, match="episode_start"):
        model.predict(obs, state=state, episode_start=np.array([True]))


def test_evaluate_policy_and_callbacks_with_progress_bar_and_tensorboard(tmp_path):
    model = make_model(tensorboard_log=str(tmp_path / "tb"), verbose=0)
    eval_env = make_vec_env(RecallEnv, n_envs=3, seed=1)
    callbacks = [
        EvalCallback(eval_env, n_eval_episodes=3, eval_freq=32, log_path=str(tmp_path / "eval"), verbose=0),
        CheckpointCallback(save_freq=32, save_path=str(tmp_path / "ckpt"), name_prefix="elmur"),
    ]
    model.learn(128, callback=callbacks, progress_bar=True)
    assert glob.glob(str(tmp_path / "ckpt" / "elmur_*_steps.zip"))
    assert (tmp_path / "eval" / "evaluations.npz").exists()
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=6)
    assert 0.0 <= mean <= 1.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = glob.glob(str(tmp_path / "tb" / "ElmurPPO_1" / "events.*"))
    assert events
    accumulator = EventAccumulator(events[0])
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    for key in ("rollout/ep_rew_mean", "time/fps", "train/approx_kl", "train/clip_fraction", "memory/slot_occupancy"):
        assert key in tags, f"{key} missing from TensorBoard ({sorted(tags)})"


def test_vecnormalize_and_subprocvecenv():
    env = VecNormalize(make_vec_env(RecallEnv, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv))
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0, policy_kwargs=TINY)
    model.learn(64)
    assert model.num_timesteps == 64
    env.close()


def test_save_load_same_predictions_and_other_env_count(tmp_path):
    model = make_model()
    model.learn(64)
    path = tmp_path / "agent.zip"
    model.save(path)
    with zipfile.ZipFile(path) as archive, archive.open("policy.pth") as file:
        th.load(file, weights_only=True)  # only tensors in the .pth files
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(12, 2, 2)).astype(np.float32)
    starts = np.zeros((12, 2), dtype=bool)
    starts[0] = True
    starts[7, 1] = True
    loaded = ElmurPPO.load(path)
    assert loaded.policy.elmur_config == model.policy.elmur_config
    for a, b in zip(stream_actions(model, observations, starts), stream_actions(loaded, observations, starts), strict=True):
        assert np.array_equal(a, b)
    # Load with a different number of envs and keep training.
    more_envs = make_vec_env(RecallEnv, n_envs=5, seed=3)
    resumed = ElmurPPO.load(path, env=more_envs)
    resumed.learn(80, reset_num_timesteps=False)
    assert resumed.num_timesteps == 64 + 80


def test_models_saved_before_the_default_change_still_load(tmp_path):
    """A model or policy saved by an earlier version holds only the settings its user gave (or lacks ones added
    since): the missing ones take the defaults of then, so the weights fit the network that is rebuilt."""
    env = make_vec_env(RecallEnv, n_envs=2, seed=0)
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                     policy_kwargs={"elmur_kwargs": DEFAULTS_BEFORE_RECIPES, "net_arch": [16]})  # fmt: skip
    assert model.policy.elmur_config != ElmurConfig()  # the defaults did change
    model.policy_kwargs = {"elmur_kwargs": {}, "net_arch": [16]}  # what an earlier version saved for ElmurConfig()
    model.save(tmp_path / "old.zip")
    obs = np.random.default_rng(0).normal(size=(2, 2)).astype(np.float32)
    expected = model.predict(obs, deterministic=True)[0]
    loaded = ElmurPPO.load(tmp_path / "old.zip")
    assert loaded.policy.elmur_config == model.policy.elmur_config
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    # Saved now: every setting is in the file, whatever the defaults become.
    fresh = make_model()
    assert fresh.policy_kwargs["elmur_kwargs"] == fresh.policy.elmur_config.to_dict()
    # The policy alone, saved without the settings added since (residual_gate, token_shift).
    model.policy.save(tmp_path / "policy.zip")
    saved = th.load(tmp_path / "policy.zip", weights_only=False)
    saved["data"]["elmur_kwargs"] = {k: v for k, v in saved["data"]["elmur_kwargs"].items() if k not in PAPER_LAYER}
    th.save(saved, tmp_path / "policy.zip")
    policy = ElmurActorCriticPolicy.load(tmp_path / "policy.zip")
    assert policy.elmur_config == model.policy.elmur_config
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], expected)


def test_policy_saved_alone_keeps_its_settings(tmp_path):
    model = make_model()
    model.policy.save(tmp_path / "policy.zip")
    policy = ElmurActorCriticPolicy.load(tmp_path / "policy.zip")
    assert policy.elmur_config == model.policy.elmur_config
    assert policy.enable_critic_backbone == model.policy.enable_critic_backbone
    obs = np.ones((2, 2), dtype=np.float32)
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # States made by the original model are accepted by its reloaded copy.
    _, state = model.predict(obs)
    policy.predict(obs, state=state)


def test_predict_never_modifies_the_state_it_was_given():
    model = make_model()
    obs = np.ones((2, 2), dtype=np.float32)
    _, state = model.predict(obs)
    snapshot = tuple(a.copy() for a in state)
    model.predict(obs, state=state)
    model.predict(obs, state=state)
    assert all(np.array_equal(a, b) for a, b in zip(state, snapshot, strict=True))


def test_predict_stream_equals_predict():
    model = make_model()
    rng = np.random.default_rng(1)
    state_np, state_th = None, None
    for t in range(9):
        obs = rng.normal(size=(2, 2)).astype(np.float32)
        starts = np.array([t == 0, t in (0, 5)])
        a, state_np = model.predict(obs, state=state_np, episode_start=starts, deterministic=True)
        b, state_th = model.policy.predict_stream(obs, state_th, starts, deterministic=True)
        assert np.array_equal(a, b)
    assert all(np.allclose(x, y.numpy()) for x, y in zip(state_np[:-1], state_th.tensors(), strict=True))
    with pytest.raises(ValueError, match="holds 2 env"):
        model.policy.predict_stream(np.zeros((3, 2), dtype=np.float32), state_th)


def test_adam_is_fused_unless_the_user_chose_an_implementation():
    env = make_vec_env(RandomLengthEnv, n_envs=2, seed=0)
    elmur = {"d_model": 8, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}
    default = ElmurPPO("MlpElmurPolicy", env, n_steps=8, policy_kwargs={"elmur_kwargs": elmur})
    assert default.policy.optimizer.defaults["fused"] is True
    assert default.policy.optimizer.defaults["eps"] == 1e-5, "SB3's Adam settings are kept"
    chosen = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=8, policy_kwargs={"elmur_kwargs": elmur, "optimizer_kwargs": {"foreach": True}}
    )
    assert chosen.policy.optimizer.defaults["foreach"] is True and not chosen.policy.optimizer.defaults["fused"]
    assert "fused" not in chosen.policy.optimizer_kwargs, "the saved settings stay the user's"


def test_training_success_curve_is_the_success_rate_of_the_last_training_episodes():
    """TrainingSuccess (the MIKASA online learning curve): a point per eval_freq steps, equal to the mean of
    info["is_success"] over the episodes ended so far (here: success iff the episode ran to an even length)."""
    import gymnasium as gym

    from sb3_elmur.common.callbacks import TrainingSuccess

    class EvenLengthSucceeds(gym.Wrapper):
        def reset(self, **kwargs):
            self.t = 0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.t += 1
            return obs, reward, terminated, truncated, {**info, "is_success": self.t % 2 == 0}

    ended = []

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            infos, dones = self.locals["infos"], self.locals["dones"]
            ended.extend(bool(info["is_success"]) for info, done in zip(infos, dones, strict=True) if done)
            return True

    env = make_vec_env(lambda: EvenLengthSucceeds(RandomLengthEnv()), n_envs=2, seed=0)
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, policy_kwargs=TINY)
    curve = TrainingSuccess(eval_freq=64)
    model.learn(256, callback=[Record(), curve])
    assert [steps for steps, _ in curve.curve] == [64, 128, 192, 256]
    assert 0 < curve.curve[-1][1] < 1
    assert curve.curve[-1][1] == pytest.approx(np.mean(ended[-100:]))


def test_backbone_lr_scale_follows_the_schedule_and_survives_save_load(tmp_path):
    schedule = lambda progress: 1e-3 * (0.5 + 0.5 * progress)  # noqa: E731  (halves over the run)
    kwargs = {**TINY, "backbone_lr_scale": 0.25}
    env = make_vec_env(RecallEnv, n_envs=2, seed=0)
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=16, batch_size=16, n_epochs=1, learning_rate=schedule, policy_kwargs=kwargs
    )
    backbone, others = model.policy.optimizer.param_groups
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.policy.backbone.parameters()}
    assert backbone["lr"] == pytest.approx(0.25e-3) and others["lr"] == pytest.approx(1e-3)
    before = [p.detach().clone() for p in model.policy.backbone.parameters()]
    model.learn(32)
    progress = model._current_progress_remaining
    # Each group follows the schedule at its own scale (SB3's update would set both to the schedule's value).
    assert backbone["lr"] == pytest.approx(0.25 * schedule(progress)) and others["lr"] == pytest.approx(schedule(progress))
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.backbone.parameters(), strict=True))
    model.save(tmp_path / "agent.zip")
    loaded = ElmurPPO.load(tmp_path / "agent.zip", env=env)
    assert loaded.policy.backbone_lr_scale == 0.25 and len(loaded.policy.optimizer.param_groups) == 2
    loaded.learn(32, reset_num_timesteps=False)
    # The default keeps one parameter group, as SB3's policies (and models saved before the option).
    assert len(make_model().policy.optimizer.param_groups) == 1
    with pytest.raises(ValueError, match="backbone_lr_scale"):
        ElmurPPO("MlpElmurPolicy", env, n_steps=16, policy_kwargs={**TINY, "backbone_lr_scale": 0.0})


def short_rollouts_model(policy_extra: dict | None = None) -> ElmurPPO:
    env = make_vec_env(RecallEnv, n_envs=2, seed=0)
    policy_kwargs = {**TINY, **(policy_extra or {})}
    return ElmurPPO("MlpElmurPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0, policy_kwargs=policy_kwargs)


@pytest.mark.parametrize("compile_seconds, compiles", [(0.0, True), (1e9, False)])
def test_auto_compile_times_eager_updates_then_compiles_only_where_it_pays(monkeypatch, capsys, compile_seconds, compiles):
    """compile_backbone="auto" (the default): the first updates of a learn call run eagerly and are timed; the rest
    runs through the compiled path only where compile_pays says the compilation is won back (forced both ways through
    its cost; torch.compile replaced by the function itself, to test the routing without a compilation)."""
    import sb3_elmur.common.compilation as compilation
    from sb3_elmur.ppo import ppo_elmur

    monkeypatch.setattr(compilation, "COMPILE_SECONDS", compile_seconds)
    monkeypatch.setattr(th, "compile", lambda fn, **kwargs: fn)
    model = short_rollouts_model()
    policy = model.policy
    assert policy.compile_backbone == "auto"
    routes: list[bool] = []
    parallel_forward = policy._parallel_forward

    def recording():
        routes.append(policy.compile_backbone is True)
        return parallel_forward()

    monkeypatch.setattr(policy, "_parallel_forward", recording)
    model.learn(6 * 8 * 2)  # 6 updates
    timed = ppo_elmur.AUTO_TIMED_UPDATES + 1
    per_update = len(routes) // 6
    assert per_update and len(routes) == 6 * per_update
    assert not any(routes[: timed * per_update]), "the timed updates are eager"
    assert all(flag is compiles for flag in routes[timed * per_update :])
    assert (policy._compiled_forward is not None) is compiles
    assert policy.compile_backbone == "auto", "the model keeps its setting (saved with it)"
    err = capsys.readouterr().err
    assert ("compiling the backbone's training path" in err) is compiles
    # The next learn call decides again, from its own budget.
    routes.clear()
    monkeypatch.setattr(compilation, "COMPILE_SECONDS", 1e9)
    model.learn(3 * 8 * 2, reset_num_timesteps=False)
    assert routes and not any(routes)


def test_a_failed_compilation_warns_and_training_goes_on_eagerly(monkeypatch):
    import torch._dynamo.exc

    def broken_compile(fn, **kwargs):
        def compiled(*args, **kwargs):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler found")

        return compiled

    monkeypatch.setattr(th, "compile", broken_compile)
    model = short_rollouts_model({"compile_backbone": True})
    with pytest.warns(UserWarning, match="no C.. compiler found.*training goes on eagerly"):
        model.learn(2 * 8 * 2)
    reference = short_rollouts_model({"compile_backbone": False})  # seeds the generators as the first did
    reference.learn(2 * 8 * 2)
    for mine, theirs in zip(model.policy.parameters(), reference.policy.parameters(), strict=True):
        assert th.equal(mine, theirs), "the eager fallback trains exactly as eager training"
    with pytest.raises(ValueError, match="compile_backbone"):
        short_rollouts_model({"compile_backbone": "yes"})
