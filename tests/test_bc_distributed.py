"""ElmurBC under torch.distributed: 2 processes (gloo) make the same steps as one process on the whole batch."""

import numpy as np
import pytest
import torch as th
import torch.distributed as dist
import torch.multiprocessing as mp
from envs import RecallEnv
from stable_baselines3.common.env_util import make_vec_env
from test_data import CueOracle

from sb3_elmur import ElmurBC, ElmurPPO
from sb3_elmur.data import collect_trajectories

ELMUR = {"d_model": 16, "n_layers": 1, "n_heads": 2, "segment_len": 4, "n_slots": 2}
UPDATES = 4


def train(rank: int | None = None, world_size: int = 1) -> dict:
    """The same model and data in every process (``rank`` None: one process, no torch.distributed): parameters after
    ``UPDATES`` steps, and the statistics of one more step on a fixed batch of 6 trajectories."""
    th.set_num_threads(1)
    env = make_vec_env(RecallEnv, n_envs=2, seed=0, env_kwargs={"length": 11})
    data = collect_trajectories(env, CueOracle(), 12)  # episodes of 11 steps, K = 4: memory carried between chunks
    model = ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs={"elmur_kwargs": ELMUR, "net_arch": [16]})
    trainer = ElmurBC(model, data, segments_per_sample=2, batch_size=6, learning_rate=3e-3, warmup_steps=1, seed=0)
    assert (trainer.rank, trainer.world_size) == ((rank or 0), world_size)
    if world_size > 1:
        with pytest.raises(ValueError, match="number of processes"):
            ElmurBC(model, data, batch_size=1)
    trainer.learn(UPDATES, progress_bar=False)
    stats = trainer.train_step(np.arange(6))
    params = list(model.policy.parameters())
    return {
        "params": [p.detach().clone() for p in params],
        "grads": [None if p.grad is None else p.grad.clone() for p in params],
        "stats": stats,
    }


def worker(rank: int, folder: str, world_size: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size)
    try:
        th.save(train(rank, world_size), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_make_the_steps_of_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(worker, args=(str(tmp_path), 2), nprocs=2, join=True)
    single = train()
    rank0, rank1 = (th.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for a, b, c in zip(rank0["params"], rank1["params"], single["params"], strict=True):
        assert th.equal(a, b), "the processes stay in step"
        # Adam turns float rounding of near-zero gradient entries into differences of a fraction of its step size.
        assert (a - c).abs().max() < 1e-4, "the parameters of one process on the whole batch"
    for a, b, c in zip(rank0["grads"], rank1["grads"], single["grads"], strict=True):
        assert (a is None) == (b is None) == (c is None)
        if c is None:
            continue
        assert th.equal(a, b)
        assert (a - c).abs().max() < 1e-6 * max(1.0, c.abs().max()), "the gradient of the whole batch"
    # The same loss and gradient norm as the whole batch: each process took its share, and the shares were summed
    # once (Adam alone would hide a gradient counted twice).
    for key in ("bc/nll", "bc/grad_norm"):
        assert rank0["stats"][key] == rank1["stats"][key]
        assert rank0["stats"][key] == pytest.approx(single["stats"][key], rel=1e-5)
