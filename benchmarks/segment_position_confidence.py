"""
How sure a trained ElmurPPO policy is at each position of its segment.

A token attends only to the steps of its own segment; the first step of a segment sees the memory alone. On a task
whose state must be read from the last few observations (CartPole without velocities) that shows as a policy less
sure of its action at the start of each segment. This script trains one recipe of ``ppo_recipes.py`` (one variant,
one seed), runs the greedy policy on fresh envs and prints, per position in the segment, the mean probability of the
chosen action and the share of steps where it is below 0.6.

    python benchmarks/segment_position_confidence.py --variant small-gru --seed 0
"""

import argparse

import numpy as np
import torch as th
from ppo_recipes import RECIPES, VARIANTS, make_env, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="cartpole-rppo", choices=list(RECIPES))
    parser.add_argument("--variant", default="default", choices=list(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=5000, help="evaluation steps of each of the 8 envs")
    args = parser.parse_args()
    th.set_num_threads(1)
    recipe = RECIPES[args.recipe]
    env = make_env(recipe["env"], recipe["n_envs"], args.seed)
    agent = model(f"elmur:{args.variant}", recipe, env, args.seed)
    agent.learn(recipe["timesteps"])
    eval_env = make_env(recipe["env"], 8, args.seed + 1000, training=False)
    eval_env.obs_rms = env.obs_rms
    policy, k = agent.policy, agent.policy.segment_len
    obs, starts, state = eval_env.reset(), np.ones(8, dtype=bool), policy.initial_states(8)
    position, sure = np.zeros(8, dtype=int), [[] for _ in range(k)]
    for _ in range(args.steps):
        with th.no_grad():
            distribution, state = policy.get_distribution(policy.obs_to_tensor(obs)[0], state, th.as_tensor(starts))
            probs = distribution.distribution.probs.numpy()
        position = np.where(starts, 0, position + 1)
        for env_index in range(8):
            sure[position[env_index] % k].append(probs[env_index].max())
        obs, _, starts, _ = eval_env.step(probs.argmax(1))
    print(f"{args.recipe}, ElmurPPO ({args.variant}), seed {args.seed}: greedy policy, {8 * args.steps} steps")
    print("position in segment:       " + " ".join(f"{p:5d}" for p in range(k)))
    print("mean chosen-action prob:   " + " ".join(f"{np.mean(s):5.2f}" for s in sure))
    print("share of steps below 0.6:  " + " ".join(f"{np.mean(np.array(s) < 0.6):5.2f}" for s in sure))


if __name__ == "__main__":
    main()
