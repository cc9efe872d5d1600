"""
Throughput on a device (a GPU when there is one, else the CPU): ElmurPPO vs RecurrentPPO training steps/s at
growing numbers of envs, and ElmurBC samples/s.

The agents are those of :mod:`ppo_comparison` (comparable parameter counts, same PPO settings) on
CartPoleNoVel-v1; each runs ``learn`` for ``--rollouts`` rollouts after a warm-up, alternating with the
other in ``--rounds`` rounds (per-round ratios, as in :mod:`ppo_throughput`). Behaviour cloning trains the
ELMUR policy of the T-Maze benchmark on oracle data (64 trajectories of up to 30 steps per update).

    python benchmarks/device_throughput.py --device cuda --n-envs 8 64 256
"""

import argparse
import time

import numpy as np
import torch as th
from ppo_comparison import agent, make_env

from sb3_elmur import ElmurPPO
from sb3_elmur.bc import ElmurBC
from sb3_elmur.data import collect_trajectories
from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv


def ppo_speeds(n_envs: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Steps/s of ElmurPPO and RecurrentPPO per round at ``n_envs`` envs."""
    models = {
        algo: agent(algo, make_env("CartPoleNoVel-v1", n_envs, args.seed), args.seed, args.width, device=args.device)
        for algo in ("elmur", "lstm")
    }
    steps = {algo: args.rollouts * n_envs * model.n_steps for algo, model in models.items()}
    for model in models.values():
        model.learn(n_envs * model.n_steps, reset_num_timesteps=False)
    speeds: dict[str, list[float]] = {algo: [] for algo in models}
    for round_index in range(args.rounds):
        for algo in list(models)[round_index % 2 :] + list(models)[: round_index % 2]:
            start = time.perf_counter()
            models[algo].learn(steps[algo], reset_num_timesteps=False)
            if args.device.startswith("cuda"):
                th.cuda.synchronize()
            speeds[algo].append(steps[algo] / (time.perf_counter() - start))
    return speeds


def bc_samples_per_second(args: argparse.Namespace) -> float:
    """Trajectories per second of ElmurBC updates (batch 64) on T-Maze oracle data."""
    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=args.seed)
    data = collect_trajectories(env, TMazeOracle(), 1000)
    elmur = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2}
    model = ElmurPPO("MlpElmurPolicy", env, seed=args.seed, device=args.device, policy_kwargs={"elmur_kwargs": elmur})
    trainer = ElmurBC(model, data, segments_per_sample=3, batch_size=64, seed=args.seed)
    trainer.learn(5, progress_bar=False)
    start = time.perf_counter()
    trainer.learn(5 + args.bc_updates, progress_bar=False)
    if args.device.startswith("cuda"):
        th.cuda.synchronize()
    return args.bc_updates * 64 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--n-envs", nargs="+", type=int, default=[8, 64, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts per agent per round")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--bc-updates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    name = th.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {th.get_num_threads()} thread(s)"
    print(f"Device: {args.device} ({name}), torch {th.__version__}\n")
    print("| envs | ElmurPPO steps/s | RecurrentPPO steps/s | ratio (median, range) |")
    print("|---:|---:|---:|---:|")
    for n_envs in args.n_envs:
        speeds = {algo: np.array(v) for algo, v in ppo_speeds(n_envs, args).items()}
        ratios = speeds["elmur"] / speeds["lstm"]
        print(
            f"| {n_envs} | {np.median(speeds['elmur']):.0f} | {np.median(speeds['lstm']):.0f} "
            f"| {np.median(ratios):.2f}x ({ratios.min():.2f} - {ratios.max():.2f}) |",
            flush=True,
        )
    print(f"\nElmurBC: {bc_samples_per_second(args):.0f} trajectories/s (batch 64, T-Maze, d_model 32, 2 layers)")


if __name__ == "__main__":
    main()
