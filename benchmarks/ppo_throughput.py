"""
Training throughput of ElmurPPO relative to RecurrentPPO, measured robustly on a shared machine.

The two agents of :mod:`ppo_comparison` (same PPO settings, comparable parameter counts) train in the
same process in alternation: each round runs ``learn`` for ``--steps`` steps with one agent, then the
other (the order alternates). Background load hits both agents alike, so the per-round ratio of
steps/s is stable even when the absolute figures are not. Reported: median steps/s of each agent and
the median and range of the per-round ratio, per env.

    python benchmarks/ppo_throughput.py --output docs/results/ppo_throughput.md
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch as th
from ppo_comparison import ENVS, agent, make_env


def measure(env_id: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Steps/s of each agent, one value per round."""
    models = {algo: agent(algo, make_env(env_id, args.n_envs, args.seed), args.seed, args.width) for algo in ("elmur", "lstm")}
    for model in models.values():  # warm-up: first rollout and update (allocations, lazy init)
        model.learn(args.n_envs * 128, reset_num_timesteps=False)
    speeds: dict[str, list[float]] = {algo: [] for algo in models}
    for round_index in range(args.rounds):
        order = list(models) if round_index % 2 == 0 else list(models)[::-1]
        for algo in order:
            start = time.perf_counter()
            models[algo].learn(args.steps, reset_num_timesteps=False)
            speeds[algo].append(args.steps / (time.perf_counter() - start))
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2048, help="steps per agent per round (whole rollouts)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", help="write the Markdown table here")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    lines = [
        f"{args.rounds} alternating rounds of {args.steps:,} steps per agent, {args.n_envs} envs, "
        f"{args.threads} torch thread(s); ratio = ElmurPPO / RecurrentPPO steps/s in the same round.",
        "",
        "| env | ElmurPPO steps/s | RecurrentPPO steps/s | ratio (median) | ratio (min - max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for env_id in args.envs:
        speeds = measure(env_id, args)
        ratios = np.array(speeds["elmur"]) / np.array(speeds["lstm"])
        lines.append(
            f"| {env_id} | {np.median(speeds['elmur']):.0f} | {np.median(speeds['lstm']):.0f} "
            f"| {np.median(ratios):.2f}x | {ratios.min():.2f}x - {ratios.max():.2f}x |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        Path(args.output).write_text(table)


if __name__ == "__main__":
    main()
