"""
Behaviour cloning on several processes: ElmurBC on T-Maze under torch.distributed, launched by torchrun.

Every process builds the same model (same seed) and the same oracle dataset, draws the same batch of trajectories,
trains on its share and sums the gradients with the others before each step: the steps of one process on the whole
batch, computed by N. gloo on a CPU, nccl on GPUs (one per process). Rank 0 shows the progress bar, saves the model
and evaluates it.

    torchrun --standalone --nproc_per_node=2 examples/bc_distributed.py
    python examples/bc_distributed.py               # the same training in one process
"""

import argparse
import os
import time

import torch as th
import torch.distributed as dist

from sb3_elmur import ElmurBC, ElmurPPO
from sb3_elmur.data import collect_trajectories
from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv
from sb3_elmur.envs.tmaze_parallel import evaluate_tmaze_parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=2000, help="oracle episodes (corridors 1..28)")
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64, help="trajectories per step, over all processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="tmaze_bc_distributed.zip")
    args = parser.parse_args()
    distributed = "WORLD_SIZE" in os.environ  # set by torchrun
    device = "cpu"
    if distributed:
        cuda = th.cuda.is_available()
        if cuda:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            th.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    th.set_num_threads(1)
    rank = dist.get_rank() if distributed else 0
    try:
        env = TMazeVecEnv(16, corridor_length=(1, 28), seed=args.seed)
        data = collect_trajectories(env, TMazeOracle(), args.episodes)
        elmur = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2, "lru_lambda": 0.1}
        model = ElmurPPO("MlpElmurPolicy", env, seed=args.seed, device=device,
                         policy_kwargs={"elmur_kwargs": elmur, "net_arch": [32]})  # fmt: skip
        trainer = ElmurBC(
            model, data, segments_per_sample=3, batch_size=args.batch_size, learning_rate=1e-3, warmup_steps=20, seed=args.seed
        )
        start = time.perf_counter()
        trainer.learn(args.updates)
        seconds = time.perf_counter() - start
        if rank == 0:
            model.save(args.output)
            for length in (10, 100, 1000):
                success = evaluate_tmaze_parallel(model, length, n_episodes=100, seed=1000).success_rate
                print(f"corridor {length}: success {success:.2f}")
            print(f"{trainer.world_size} process(es), {seconds:.0f} s of training; model saved to {args.output}")
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
