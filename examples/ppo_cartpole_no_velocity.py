"""
Train ElmurPPO on CartPole without velocities (positions only: the agent must infer speed from memory),
evaluate it with a predict() loop, save it and load it back.

    python examples/ppo_cartpole_no_velocity.py --timesteps 50000
    tensorboard --logdir runs/   # rollout/ep_rew_mean, train/approx_kl, memory/slot_occupancy, ...
"""

import argparse

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import sb3_elmur.envs  # noqa: F401  (registers CartPoleNoVel-v1)
from sb3_elmur import ElmurPPO


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tensorboard-log", default="runs")
    parser.add_argument("--save", default="elmur_cartpole_novel")
    args = parser.parse_args()

    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=8, seed=args.seed))
    # The same call as with sb3-contrib's RecurrentPPO, with "MlpLstmPolicy" -> "MlpElmurPolicy" and
    # the LSTM settings replaced by elmur_kwargs.
    model = ElmurPPO(
        "MlpElmurPolicy",
        env,
        n_steps=128,
        batch_size=256,
        n_epochs=10,
        learning_rate=7e-4,
        gae_lambda=0.98,
        max_grad_norm=1,
        segments_per_sample=2,
        seed=args.seed,
        verbose=1,
        tensorboard_log=args.tensorboard_log,
        policy_kwargs={
            "net_arch": {"vf": [64], "pi": []},
            "ortho_init": False,
            "elmur_kwargs": {"d_model": 32, "n_layers": 1, "n_heads": 4, "segment_len": 10, "n_slots": 4, "lru_lambda": 0.5},
        },
    )
    model.learn(args.timesteps, progress_bar=True)
    model.save(args.save)
    env.save(f"{args.save}_vecnormalize.pkl")

    # Evaluate with the recurrent predict() loop, exactly as with RecurrentPPO.
    env.training = False
    env.norm_reward = False
    model = ElmurPPO.load(args.save, env=env)
    obs = env.reset()
    state = None
    episode_starts = np.ones((env.num_envs,), dtype=bool)
    returns, current = [], np.zeros(env.num_envs)
    while len(returns) < 16:
        action, state = model.predict(obs, state=state, episode_start=episode_starts, deterministic=True)
        obs, rewards, dones, _ = env.step(action)
        current += rewards
        episode_starts = dones
        for i in np.flatnonzero(dones):
            returns.append(current[i])
            current[i] = 0
    print(f"mean return over {len(returns)} episodes: {np.mean(returns):.1f} (max 500)")


if __name__ == "__main__":
    main()
