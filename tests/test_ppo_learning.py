"""Learning tests (slow): ElmurPPO must solve what RecurrentPPO's own tests ask of it, and memory tasks."""

import pytest
from envs import RecallEnv
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize

import sb3_elmur.envs  # noqa: F401  (registers CartPoleNoVel-v1)
from sb3_elmur import ElmurPPO
from sb3_elmur.envs.tmaze import TMazeVecEnv
from sb3_elmur.envs.tmaze_parallel import evaluate_tmaze_parallel


def test_recall_cue_across_segments():
    """Fast check that memory is used: the cue of step 0 decides the reward at step 11 (K = 4)."""
    env = make_vec_env(RecallEnv, n_envs=8, seed=0, env_kwargs={"length": 12})
    elmur = {"d_model": 32, "n_layers": 1, "n_heads": 4, "segment_len": 4, "n_slots": 4, "lru_lambda": 0.5}
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=48, batch_size=96, n_epochs=8, learning_rate=1e-3, seed=0,
        segments_per_sample=3, policy_kwargs={"elmur_kwargs": elmur, "net_arch": [32]},
    )  # fmt: skip
    model.learn(12_000)
    mean, _ = evaluate_policy(model, make_vec_env(RecallEnv, n_envs=8, seed=1, env_kwargs={"length": 12}), 64)
    assert mean >= 0.9, f"the cue must be recalled 3 segments later, success {mean:.2f}"


@pytest.mark.slow
def test_cartpole_without_velocities():
    """RecurrentPPO's bar and seed: CartPole with positions only, 8 envs, eval mean >= 450 within 50k steps.

    With these settings seeds 0 to 3 end at 478, 484, 394 and 500 (measured with one torch thread):
    the bar on three seeds out of four; RecurrentPPO reaches 500."""
    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=1))
    elmur = {"d_model": 32, "n_layers": 1, "n_heads": 4, "segment_len": 10, "n_slots": 4, "lru_lambda": 1.0}
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=128, learning_rate=LinearSchedule(7e-4, 0.0, 1.0), batch_size=256, seed=1,
        n_epochs=10, max_grad_norm=1, gae_lambda=0.98, segments_per_sample=2, target_kl=0.02,
        policy_kwargs={"net_arch": {"vf": [64], "pi": []}, "ortho_init": False, "elmur_kwargs": elmur},
    )  # fmt: skip
    model.learn(50_000)
    env.training = False
    mean, _ = evaluate_policy(model, env, n_eval_episodes=20)
    assert mean >= 450, f"evaluation mean {mean:.1f} < 450"


@pytest.mark.slow
def test_recurrent_ppo_cartpole_recipe_with_default_settings():
    """RecurrentPPO's CartPoleNoVel recipe with only the class and policy name changed (issue 9, part 6): the
    default ElmurConfig must reach RecurrentPPO's bar, an evaluation mean >= 450 within 50k steps.

    benchmarks/ppo_recipes.py (cartpole-rppo, seeds 0-2) measures 500 [474, 500] with these defaults; RecurrentPPO 500."""
    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=1))
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=128, batch_size=256, n_epochs=10, learning_rate=7e-4, gae_lambda=0.98, seed=1
    )
    model.learn(50_000)
    env.training, env.norm_reward = False, False
    mean, _ = evaluate_policy(model, env, n_eval_episodes=20)
    assert mean >= 450, f"evaluation mean {mean:.1f} < 450"


@pytest.mark.slow
def test_tmaze_online_from_short_corridors():
    """ElmurPPO learns the passive T-Maze online (no demonstrations) on corridors 1..28 and keeps the hint at 10x that."""
    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=0)
    elmur = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2, "lru_lambda": 0.1}
    model = ElmurPPO(
        "MlpElmurPolicy", env, n_steps=64, batch_size=480, n_epochs=4, learning_rate=1e-3, ent_coef=0.01, seed=0,
        policy_kwargs={"elmur_kwargs": elmur, "net_arch": [32]},
    )  # fmt: skip
    model.learn(100_000)
    assert evaluate_tmaze_parallel(model, 28, n_episodes=100, seed=7).success_rate == 1.0
    assert evaluate_tmaze_parallel(model, 300, n_episodes=100, seed=8).success_rate == 1.0
