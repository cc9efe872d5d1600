"""
What ``compile_backbone="auto"`` (ElmurPPO's default) decides on each recipe of ``benchmarks/ppo_recipes.py``: the
default ElmurPPO learns a recipe's budget until the decision is made (after its second update), then stops and
prints the timed seconds per eager update, the updates left and the decision.

    python benchmarks/compile_decisions.py                      # every recipe of the recipe benchmark
    python benchmarks/compile_decisions.py --recipes cartpole-zoo --threads 2
"""

import argparse
import sys
from pathlib import Path

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ppo_recipes

from sb3_elmur.common.compilation import COMPILE_SECONDS, COMPILED_SPEEDUP

RECIPES = ["cartpole-rppo", "cartpole-zoo", "pendulum-zoo", "mountaincar-continuous-zoo", "mountaincar-zoo"]


class StopWhenDecided(BaseCallback):
    """Stops ``learn`` once ElmurPPO has made its ``compile_backbone="auto"`` decision."""

    def _on_step(self) -> bool:
        return self.model._compile_decision is None


def decide(name: str, seed: int) -> dict[str, float | int | bool]:
    """The decision of the default ElmurPPO on recipe ``name``."""
    recipe = ppo_recipes.RECIPES[name]
    env = ppo_recipes.make_env(recipe["env"], recipe["n_envs"], seed)
    model = ppo_recipes.model("elmur:default", recipe, env, seed)
    model.learn(recipe["timesteps"], callback=StopWhenDecided())
    per_rollout = model.n_steps * model.n_envs
    seconds = model._eager_update_seconds[-1]
    left = -(-(recipe["timesteps"] - model.num_timesteps) // per_rollout)
    env.close()
    return {"seconds": seconds, "left": left, "compiles": bool(model._compile_decision)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=list(ppo_recipes.RECIPES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    print(f"compile_pays: {COMPILE_SECONDS:.0f} s of compilation + eager time left / {COMPILED_SPEEDUP} < eager time left\n")
    print("| recipe | s per eager update | updates left | eager s left | expected compiled s | decision |")
    print("|---|---:|---:|---:|---:|---|")
    for name in args.recipes:
        d = decide(name, args.seed)
        eager = d["seconds"] * d["left"]
        compiled = COMPILE_SECONDS + eager / COMPILED_SPEEDUP
        choice = "compile" if d["compiles"] else "eager"
        print(f"| {name} | {d['seconds']:.2f} | {d['left']:,} | {eager:.0f} | {compiled:.0f} | {choice} |", flush=True)


if __name__ == "__main__":
    main()
