"""
Pictures of the memory at work: ELMUR trained by behaviour cloning on T-Maze and on POPGym RepeatFirstEasy, then one
recorded episode each, drawn as a memory timeline (which slot each layer wrote at which segment end, slot ages,
read-attention mass on each slot at every step). About 3 minutes on a CPU.

    python examples/memory_pictures.py                      # docs/figures/memory_tmaze.png, memory_popgym.png
"""

import argparse
from pathlib import Path

import torch as th

from sb3_elmur import ElmurBC, ElmurPPO
from sb3_elmur.common.plotting import plot_memory_timeline, record_memory_timeline
from sb3_elmur.data import collect_trajectories
from sb3_elmur.elmur import PAPER_LAYER
from sb3_elmur.envs.popgym import make_popgym_env
from sb3_elmur.envs.popgym.datasets import collect_expert_dataset
from sb3_elmur.envs.tmaze import TMazeEnv, TMazeOracle, TMazeVecEnv

ELMUR = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2, "lru_lambda": 0.1, **PAPER_LAYER}


def tmaze(output: Path, corridor: int, seed: int) -> None:
    """BC on corridors 1..28 (the T-Maze demo's settings), then one episode of a longer corridor."""
    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=seed)
    data = collect_trajectories(env, TMazeOracle(), 2000)
    model = ElmurPPO("MlpElmurPolicy", env, seed=seed, policy_kwargs={"elmur_kwargs": ELMUR, "net_arch": [32]})
    ElmurBC(model, data, segments_per_sample=3, batch_size=64, learning_rate=1e-3, warmup_steps=20, seed=seed).learn(600)
    timeline = record_memory_timeline(model, TMazeEnv(corridor_length=corridor), seed=seed,
                                      events={"cue": 0, "junction": corridor})  # fmt: skip
    title = f"T-Maze, corridor {corridor} (trained on 1..28), K = 10, M = 2, λ = 0.1: return {timeline.rewards.sum():.0f}"
    print(plot_memory_timeline(timeline, output / "memory_tmaze.png", title=title))


def popgym(output: Path, task: str, seed: int) -> None:
    """BC on the task's history-based expert, then one episode."""
    data = collect_expert_dataset(task, n_episodes=500, seed=seed)
    env = make_popgym_env(task)
    model = ElmurPPO("MlpElmurPolicy", env, seed=seed, policy_kwargs={"elmur_kwargs": ELMUR, "net_arch": [32]})
    ElmurBC(model, data, segments_per_sample=3, batch_size=64, learning_rate=1e-3, warmup_steps=20, seed=seed).learn(400)
    timeline = record_memory_timeline(model, env, seed=seed)
    title = f"{task.removeprefix('popgym-')} (BC from the expert), K = 10, M = 2: return {timeline.rewards.sum():.2f}"
    print(plot_memory_timeline(timeline, output / "memory_popgym.png", title=title))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="docs/figures")
    parser.add_argument("--corridor", type=int, default=60)
    parser.add_argument("--task", default="popgym-RepeatFirstEasy-v0")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    th.set_num_threads(1)
    tmaze(Path(args.output), args.corridor, args.seed)
    popgym(Path(args.output), args.task, args.seed)


if __name__ == "__main__":
    main()
