"""
Action masking with memory: MaskableElmurPPO on a POPGym grid-guessing task (MineSweeper or Battleship).

Both agents act on one Discrete action per cell (``make_popgym_env(..., cell_masks=True)``); MaskableElmurPPO reads
the env's ``action_masks()`` (the cells not chosen yet in the episode) and never chooses a cell twice, ElmurPPO must
learn that from the repeat penalty. Same settings, seed and budget; evaluation on 100 episodes (sampled actions,
masks applied for the maskable agent), beside a random agent that samples among the allowed cells.

    python examples/popgym_masking.py                      # MineSweeperEasy, 30k steps per agent, a few minutes
    python examples/popgym_masking.py --task popgym-BattleshipEasy-v0 --timesteps 100000
"""

import argparse
import time

import numpy as np
import torch as th
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur import ElmurPPO, MaskableElmurPPO
from sb3_elmur.envs.popgym import make_popgym_env


def random_masked_return(task: str, episodes: int, seed: int) -> float:
    """Mean return of uniform choices among the allowed cells."""
    env, rng, returns = make_popgym_env(task, cell_masks=True), np.random.default_rng(seed), []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="popgym-MineSweeperEasy-v0")
    parser.add_argument("--timesteps", type=int, default=30_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=100)
    args = parser.parse_args()
    th.set_num_threads(1)

    def env_fn():
        return make_popgym_env(args.task, cell_masks=True)

    rows = []
    for name, algo, masking in (
        ("MaskableElmurPPO (masks)", MaskableElmurPPO, True),
        ("ElmurPPO (no masks)", ElmurPPO, False),
    ):
        env = make_vec_env(env_fn, n_envs=args.n_envs, seed=args.seed)
        model = algo("MlpElmurPolicy", env, n_steps=128, batch_size=256, seed=args.seed, verbose=0)
        start = time.perf_counter()
        model.learn(args.timesteps, progress_bar=False)
        seconds = time.perf_counter() - start
        eval_env = make_vec_env(env_fn, n_envs=4, seed=args.seed + 1000)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, use_masking=masking)
        rows.append((name, mean, std, seconds))
        print(f"{name}: {mean:.3f} +- {std:.3f} ({seconds:.0f} s)", flush=True)
    rows.append(
        ("random among allowed cells", random_masked_return(args.task, args.eval_episodes, args.seed), float("nan"), 0.0)
    )
    print(f"\n{args.task}, {args.timesteps:,} steps per agent, seed {args.seed}, {args.eval_episodes} evaluation episodes\n")
    print("| agent | mean return | std | train s |")
    print("|---|---:|---:|---:|")
    for name, mean, std, seconds in rows:
        print(f"| {name} | {mean:.3f} | {std:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
