"""
T-Maze length generalization (the ELMUR paper's protocol): behaviour cloning on corridors of at most
K*S - 2 = 28 steps with a 10-step window, then success over 100 fixed seeds at growing lengths.

    python examples/tmaze_benchmark.py --quick     # a few minutes on a CPU: lengths 9 .. 9600
    python examples/tmaze_benchmark.py             # lengths 9 .. 10^6 (long: 10^6 acting steps per length)

Prints a table (and writes it as Markdown with ``--output``). The policy is an ElmurPPO model: it is
saved with ``--save`` and can be fine-tuned online with ``ElmurPPO.load(...).learn(...)``.
"""

import argparse
import time

import numpy as np
import torch as th

from sb3_elmur import ElmurPPO
from sb3_elmur.bc import ElmurBC
from sb3_elmur.data import collect_trajectories
from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv, evaluate_tmaze

QUICK_LENGTHS = [9, 30, 90, 150, 300, 600, 900, 1200, 2400, 4800, 9600]
FULL_LENGTHS = [*QUICK_LENGTHS, 100_000, 1_000_000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="lengths up to 9600 and a shorter training")
    parser.add_argument("--lengths", type=int, nargs="+", help="corridor lengths to evaluate")
    parser.add_argument("--episodes", type=int, default=2000, help="oracle episodes for training")
    parser.add_argument("--updates", type=int, help="gradient steps (default 600 quick, 2000 full)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--segment-len", type=int, default=10, help="K")
    parser.add_argument("--segments", type=int, default=3, help="S, segments per training sample")
    parser.add_argument("--n-slots", type=int, default=2, help="M (fewer than the segments of long corridors)")
    parser.add_argument("--lru-lambda", type=float, default=0.1)
    parser.add_argument("--memory-bptt", type=int, default=0, help="0: gradient through memory (default); 1: detached")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="save the trained ElmurPPO model here")
    parser.add_argument("--output", help="write the results table (Markdown) here")
    args = parser.parse_args()
    th.manual_seed(args.seed)
    th.set_num_threads(1)
    lengths = args.lengths or (QUICK_LENGTHS if args.quick else FULL_LENGTHS)
    updates = args.updates or (600 if args.quick else 2000)
    k, s = args.segment_len, args.segments

    start = time.perf_counter()
    env = TMazeVecEnv(16, corridor_length=(1, k * s - 2), seed=args.seed)
    data = collect_trajectories(env, TMazeOracle(), args.episodes)
    print(f"oracle data: {data.n_episodes} episodes, {data.n_steps} steps, corridors 1..{k * s - 2}")
    elmur = {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "segment_len": k,
        "n_slots": args.n_slots,
        "lru_lambda": args.lru_lambda,
        "memory_bptt": None if args.memory_bptt == 0 else args.memory_bptt,
    }
    model = ElmurPPO("MlpElmurPolicy", env, seed=args.seed, policy_kwargs={"elmur_kwargs": elmur, "net_arch": [32]})
    trainer = ElmurBC(model, data, segments_per_sample=s, batch_size=64, learning_rate=1e-3, warmup_steps=20, seed=args.seed)
    trainer.learn(updates)
    train_seconds = time.perf_counter() - start
    if args.save:
        model.save(args.save)

    def predict(obs: np.ndarray, state, episode_start: np.ndarray):
        return model.policy.predict_stream(obs, state, episode_start, deterministic=True)

    rows = []
    print(f"\ntrained in {train_seconds:.0f} s; success over {args.eval_episodes} seeds (greedy):\n")
    print(f"{'corridor':>10} | {'success':>7} | {'seconds':>7}")
    for length in lengths:
        begin = time.perf_counter()
        success = evaluate_tmaze(predict, length, n_episodes=args.eval_episodes, seed=1000 + args.seed)
        seconds = time.perf_counter() - begin
        rows.append((length, success, seconds))
        print(f"{length:>10,} | {success:>7.2f} | {seconds:>7.1f}", flush=True)
    if args.output:
        table = ["| corridor length | ELMUR success | eval seconds |", "|---:|---:|---:|"]
        table += [f"| {length:,} | {success:.2f} | {seconds:.0f} |" for length, success, seconds in rows]
        with open(args.output, "w") as file:
            file.write("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
