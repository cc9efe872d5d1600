"""MaskableElmurPPO: masks restrict acting and training alike (PPO ratio 1 at lr 0); invalid actions never happen."""

import numpy as np
import pytest
import torch as th
from envs import FatalActionEnv, RandomLengthEnv
from gymnasium import spaces
from ppo_utils import learn_recording_kl_and_clipping, recompute
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur import ElmurPPO, MaskableElmurPPO

ELMUR = {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 5, "n_slots": 2}


def make(multi: bool = False, algo: type = MaskableElmurPPO, **kwargs) -> ElmurPPO:
    env = make_vec_env(FatalActionEnv, n_envs=3, seed=0, env_kwargs={"multi": multi})
    settings = {"n_steps": 17, "batch_size": 20, "seed": 0, "policy_kwargs": {"elmur_kwargs": ELMUR, "net_arch": [16]}}
    return algo("MlpElmurPolicy", env, **{**settings, **kwargs})


@pytest.mark.parametrize("multi", [False, True], ids=["Discrete", "MultiDiscrete"])
def test_masked_learning_never_takes_an_invalid_action(multi):
    with pytest.raises(RuntimeError, match="invalid action"):
        make(multi, algo=ElmurPPO).learn(200)  # the env is fatal without masks
    model = make(multi)
    model.learn(4 * 17 * 3)  # the env raises on any invalid action
    assert model.num_timesteps >= 4 * 17 * 3


def test_masked_training_reproduces_acting_and_uses_the_masks():
    model = make(learning_rate=0.0, n_epochs=1)
    logged = learn_recording_kl_and_clipping(model, 5 * 17 * 3)
    assert logged and all(abs(kl) < 1e-7 and clip == 0.0 for kl, clip in logged)
    old_lp, new_lp, _, _, n_steps = recompute(model)
    assert n_steps == model.n_steps * model.n_envs
    assert np.abs(old_lp - new_lp).max() < 1e-5
    # Without its masks the same batch gives other log-probs: training really applies them.
    batch = next(model.rollout_buffer.get(model.batch_size))
    assert batch.observations.action_masks is not None and not batch.observations.action_masks.all()
    unmasked = type(batch.observations)(
        *[getattr(batch.observations, f) for f in ("observations", "timesteps", "mask", "memory")]
    )
    with th.no_grad():
        _, masked_lp, _ = model.policy.evaluate_actions(batch.observations, batch.actions.long().flatten())
        _, plain_lp, _ = model.policy.evaluate_actions(unmasked, batch.actions.long().flatten())
    assert (masked_lp - plain_lp).abs().max() > 1e-3


@pytest.mark.parametrize("multi", [False, True], ids=["Discrete", "MultiDiscrete"])
def test_predict_samples_only_valid_actions(multi):
    model = make(multi)
    env = FatalActionEnv(multi, seed=1)
    rng = np.random.default_rng(0)
    state, starts = None, np.ones(8, dtype=bool)
    for _ in range(30):
        masks = []
        for _ in range(8):
            env._new_mask()
            masks.append(env.action_masks())
        masks = np.array(masks)
        obs = rng.uniform(-1, 1, (8, env.observation_space.shape[0])).astype(np.float32)
        actions, state = model.predict(obs, state, starts, action_masks=masks)
        starts = np.zeros(8, dtype=bool)
        offsets = [0, 3] if multi else [0]
        for row, action in enumerate(np.atleast_2d(actions.reshape(8, -1))):
            assert all(masks[row, offset + a] for offset, a in zip(offsets, action, strict=True))


def test_maskable_model_saves_loads_and_evaluates_with_contribs_tools(tmp_path):
    model = make()
    model.learn(17 * 3)
    model.save(tmp_path / "agent")
    loaded = MaskableElmurPPO.load(tmp_path / "agent", env=model.get_env())
    obs = np.zeros((3, 6), dtype=np.float32)
    masks = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=bool)
    a, _ = model.predict(obs, None, np.ones(3, bool), deterministic=True, action_masks=masks)
    b, _ = loaded.predict(obs, None, np.ones(3, bool), deterministic=True, action_masks=masks)
    np.testing.assert_array_equal(a, b)
    assert masks[np.arange(3), a].all()
    # sb3-contrib's maskable evaluation drives it through predict(..., action_masks=...); the env would raise otherwise.
    mean, _ = evaluate_policy(loaded, make_vec_env(FatalActionEnv, n_envs=2, seed=3), n_eval_episodes=6)
    assert 0.0 <= mean <= 1.0


def test_masking_refuses_what_it_cannot_do():
    box_env = make_vec_env(RandomLengthEnv, n_envs=1, env_kwargs={"action_space": spaces.Box(-1, 1, (2,))})
    with pytest.raises(ValueError, match="Action masking needs"):
        MaskableElmurPPO("MlpElmurPolicy", box_env, policy_kwargs={"elmur_kwargs": ELMUR})
    plain = make(algo=ElmurPPO)
    with pytest.raises(ValueError, match="MaskableElmurPPO"):
        plain.policy.predict(np.zeros((1, 6), np.float32), action_masks=np.ones((1, 5), bool))
    no_masks = MaskableElmurPPO(
        "MlpElmurPolicy", make_vec_env(RandomLengthEnv, n_envs=1), policy_kwargs={"elmur_kwargs": ELMUR}
    )
    with pytest.raises(ValueError, match="action masking"):
        no_masks.learn(10)
    no_masks.learn(10, use_masking=False)  # as MaskablePPO: every action valid
    # ActionMasker gives any env the method.
    wrapped = ActionMasker(RandomLengthEnv(), lambda env: np.array([True, False, False]))
    model = MaskableElmurPPO("MlpElmurPolicy", wrapped, n_steps=16, batch_size=16, policy_kwargs={"elmur_kwargs": ELMUR})
    model.learn(32)
    assert (model.rollout_buffer.actions == 0).all()


def test_popgym_cell_masks_forbid_exactly_the_chosen_cells():
    pytest.importorskip("popgym")
    from sb3_elmur.envs.popgym import make_popgym_env

    with pytest.raises(ValueError, match="cell_masks applies to"):
        make_popgym_env("popgym-RepeatFirstEasy-v0", cell_masks=True)
    env = make_popgym_env("popgym-BattleshipEasy-v0", cell_masks=True)
    assert env.action_space == spaces.Discrete(64)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    chosen = set()
    for _ in range(63):
        cell = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, _, terminated, truncated, _ = env.step(cell)
        chosen.add(cell)
        assert set(np.flatnonzero(~env.action_masks())) == chosen
        if terminated or truncated:
            break
    env.reset(seed=1)
    assert env.action_masks().all(), "a new episode allows every cell"


def test_maskable_elmur_ppo_never_reclicks_in_minesweeper():
    pytest.importorskip("popgym")
    from sb3_elmur.envs.popgym import make_popgym_env

    env = make_vec_env(lambda: make_popgym_env("popgym-MineSweeperEasy-v0", cell_masks=True), n_envs=2, seed=0)
    model = MaskableElmurPPO("MlpElmurPolicy", env, n_steps=64, batch_size=64, seed=0, policy_kwargs={"elmur_kwargs": ELMUR})
    model.learn(128)
    # MineSweeperEasy pays -0.5 / (L - 2) = -1/24 for a re-click, and only for that: it never appears.
    rewards = model.rollout_buffer.rewards
    assert not np.isclose(rewards, -0.5 / 12).any()
    plain = ElmurPPO("MlpElmurPolicy", env, n_steps=64, batch_size=64, seed=0, policy_kwargs={"elmur_kwargs": ELMUR})
    plain.learn(128)
    assert np.isclose(plain.rollout_buffer.rewards, -0.5 / 12).any(), "without masks an untrained agent re-clicks"
