"""
Wall time of RecurrentPPO's own recipes with ElmurPPO swapped in, measured side by side in one process.

:mod:`ppo_recipes` times each run on its own, so on a shared machine its wall and CPU ratios carry the load of the
moment of each run. Here the agents of a recipe (RecurrentPPO with the recipe's LSTM settings, ElmurPPO with an
ElmurConfig variant of :data:`ppo_recipes.VARIANTS`, by default ``ElmurConfig()``; the same PPO settings, envs and
VecNormalize) train in alternation: each round runs ``learn`` for the same whole number of the recipe's rollouts
with one agent after the other (the order rotates), so background load hits all of them alike and the per-round
ratio of wall times is stable. The first rollouts and updates of every agent are a warm-up (allocations, lazy
initialization, compilation) and are not counted. The rounds are taken from the start of training, where the
agents' episodes are short; the cost per step of both agents does not depend on how well they play.

    python benchmarks/ppo_recipes_timing.py --threads 1 2 --output docs/results/ppo_recipes_timing.md
"""

import argparse
import math
import platform
import time
from typing import Any

import numpy as np
import torch as th
from ppo_recipes import RECIPES, VARIANTS, make_env, model
from ppo_throughput import ratio, rotation, write_table


def measure(name: str, algos: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per round of each agent on one recipe, and the steps of a round."""
    recipe = RECIPES[name]
    rollout = recipe["ppo"]["n_steps"] * recipe["n_envs"]
    steps = rollout * max(1, math.ceil(args.round_steps / rollout))
    models = {}
    for algo in algos:
        th.manual_seed(args.seed)
        models[algo] = model(algo, recipe, make_env(recipe["env"], recipe["n_envs"], args.seed), args.seed)
        models[algo].learn(2 * rollout, reset_num_timesteps=False)  # warm-up
    seconds: dict[str, list[float]] = {algo: [] for algo in algos}
    for round_index in range(args.rounds):
        for algo in rotation(algos, round_index):
            start = time.perf_counter()
            models[algo].learn(steps, reset_num_timesteps=False)
            seconds[algo].append(time.perf_counter() - start)
    params = {algo: sum(p.numel() for p in m.policy.parameters()) for algo, m in models.items()}
    for m in models.values():
        m.get_env().close()
    return {"seconds": {algo: np.array(v) for algo, v in seconds.items()}, "steps": steps, "params": params}


def label(algo: str) -> str:
    return "RecurrentPPO" if algo == "lstm" else f"ElmurPPO ({algo.split(':', 1)[1]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=[*list(RECIPES)[:4], "mountaincar-zoo"], choices=list(RECIPES))
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS), help="ElmurConfig variants")
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-steps", type=int, default=8192, help="steps per agent per round (rounded up to rollouts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the Markdown table here")
    args = parser.parse_args()
    algos = ["lstm"] + [f"elmur:{variant}" for variant in args.variants]
    lines = [
        f"Machine: {platform.machine()}, torch {th.__version__}; {args.rounds} rounds per recipe, agents alternating in "
        "one process (the order rotates), each round the same whole number of the recipe's rollouts per agent, after a "
        "warm-up of two rollouts and updates.",
        "",
        f"Command: `python benchmarks/ppo_recipes_timing.py --recipes {' '.join(args.recipes)} --variants "
        f"{' '.join(args.variants)} --threads {' '.join(map(str, args.threads))} --rounds {args.rounds} "
        f"--round-steps {args.round_steps}`",
        "",
        "Steps/s: medians over the rounds. Wall ratio: ElmurPPO's wall time / RecurrentPPO's in the same round, median "
        "(min - max) over the rounds (< 1: ElmurPPO is faster).",
        "",
        "| recipe | threads | steps per round | agent | parameters | steps/s | wall ratio |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for threads in args.threads:
        th.set_num_threads(threads)
        for name in args.recipes:
            result = measure(name, algos, args)
            steps = result["steps"]
            speeds = {algo: steps / seconds for algo, seconds in result["seconds"].items()}
            for algo in algos:
                # Same steps per round: RecurrentPPO's steps/s over ElmurPPO's is ElmurPPO's wall time over its.
                wall = "1.00" if algo == "lstm" else ratio(speeds, "lstm", algo).replace("x", "")
                lines.append(
                    f"| {name} | {threads} | {steps:,} | {label(algo)} | {result['params'][algo]:,} "
                    f"| {np.median(speeds[algo]):.0f} | {wall} |"
                )
                print(lines[-1], flush=True)
    write_table(lines, args.output)


if __name__ == "__main__":
    main()
