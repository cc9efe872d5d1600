"""
Behaviour cloning of an ELMUR policy (the paper trains offline).

Every trajectory is laid out in blocks of K steps from its first step; a batch of trajectories is
processed S segments at a time with the backbone's parallel path, memory carried from chunk to chunk
(gradient through memory inside a chunk per ``memory_bptt``; detached between chunks: truncated
backpropagation through time). The loss is the negative log-likelihood of the expert actions on the
real steps (padding masked). AdamW, linear warm-up then cosine decay, gradient clipping, a progress
bar, TensorBoard, checkpoints and resume. The trained policy stays inside its ElmurPPO model: save it
with ``model.save`` and fine-tune it with ``ElmurPPO.load(...).learn(...)``.
"""

import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
import torch.distributed as dist
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import set_random_seed

from sb3_elmur.common.compilation import compile_pays, decision_message, timed_seconds_per_update
from sb3_elmur.common.normalization import set_observation_statistics
from sb3_elmur.common.policies import ElmurActorCriticPolicy
from sb3_elmur.common.sequence import actor_sequence, check_sequence_policy, detach_carry
from sb3_elmur.data.trajectories import TrajectoryDataset
from sb3_elmur.elmur import pack_rows, segment_blocks

#: ``compile_backbone="auto"``: eager updates timed (after the first) before deciding.
AUTO_TIMED_UPDATES = 3


def warmup_cosine(warmup_steps: int, total_steps: int, final_fraction: float = 0.0):
    """Learning-rate multiplier: linear warm-up over ``warmup_steps``, then cosine decay to ``final_fraction``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class ElmurBC:
    """
    Behaviour-cloning trainer for the actor of an :class:`~sb3_elmur.ElmurPPO` model.

    :param model: The model whose ``policy`` (an ElmurActorCriticPolicy) is trained in place.
    :param dataset: Expert trajectories (each starting at an episode start).
    :param segments_per_sample: S, segments per chunk (gradient may cross memory inside a chunk).
    :param batch_size: Trajectories per gradient step.
    :param learning_rate: Peak learning rate of AdamW.
    :param weight_decay: AdamW weight decay.
    :param warmup_steps: Linear warm-up steps.
    :param max_grad_norm: Gradient clipping norm.
    :param memory_bptt: Override of the backbone's ``memory_bptt`` during training (-1: keep the config).
    :param ent_coef: Entropy bonus coefficient.
    :param tensorboard_log: Folder for TensorBoard logs (None: no logging).
    :param seed: Seed of the batch order (and of torch/numpy when given).
    :param segment_len: Chunk unit for the baselines (an LSTM is unrolled ``segments_per_sample * segment_len``
        steps per chunk, its state carried and detached between chunks); ELMUR policies use their K.
    :param process_group: Data-parallel training under ``torch.distributed`` (launched by ``torchrun``; gloo on a
        CPU, nccl on GPUs): every process draws the same batch of ``batch_size`` trajectories, trains on its share
        (every ``world_size``-th trajectory) and the gradients are summed across processes before each step, so
        every process makes the step one process would make on the whole batch. Default: the default group when
        ``torch.distributed`` is initialised, else none. Give every process the same model (seed) and dataset;
        only rank 0 shows a progress bar and writes TensorBoard logs; save checkpoints from rank 0.
    :param compile_backbone: ELMUR policies: train through ``torch.compile`` of the backbone's parallel path
        (True) or eagerly (False); None follows the policy's own ``compile_backbone`` (its ``"auto"`` too); ``"auto"``
        (the default) times the first eager updates and compiles only when the rest of the run is long enough to win
        back a first compilation (:func:`compile_pays`; the decision is printed to stderr). Only training is affected:
        the model keeps its setting for acting, evaluation and saving. On a CPU a compiled update is about 2x faster on
        T-Maze and more on longer episodes; the first compilation of a model shape costs about 100 s on 2 cores
        (packed rows: one compilation for every batch size), later runs reuse torch's on-disk cache (see docs/bc.md).
        Compiled and eager updates compute the same numbers up to float rounding; pass True or False where runs must
        repeat bit for bit. Ignored for LSTM and MLP policies.
    :param normalize_observations: Standardize the policy's inputs with the dataset's per-feature mean and std
        (Box observations; the policy must be built with ``policy_kwargs={"features_extractor_class":
        StandardizedFlattenExtractor}`` from :mod:`sb3_elmur.common.normalization`). The statistics live in the
        policy, so the saved model acts on raw observations.
    :param pack: ELMUR policies: pack several short trajectories into one batch row (see
        :func:`~sb3_elmur.elmur.segment.pack_rows`; each trajectory starts at a block with step 0, which empties the
        memory, and stays inside one chunk) instead of one trajectory per row. Every trajectory gets the same
        computation, so the loss and the gradient are the same up to float rounding (tested), with fewer padded
        steps to compute: on T-Maze (episodes of 2-29 steps, S = 3, K = 10) two thirds of the tokens. LSTM
        policies keep one trajectory per row (sb3-contrib's fast path needs rows without resets inside).
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        dataset: TrajectoryDataset,
        segments_per_sample: int = 3,
        batch_size: int = 64,
        learning_rate: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        max_grad_norm: float = 1.0,
        memory_bptt: int | None = -1,
        ent_coef: float = 0.0,
        tensorboard_log: str | None = None,
        seed: int | None = None,
        segment_len: int = 10,
        process_group: Any = None,
        compile_backbone: bool | str | None = "auto",
        normalize_observations: bool = False,
        pack: bool = True,
    ) -> None:
        check_sequence_policy(model.policy)
        if segments_per_sample < 1 or batch_size < 1:
            raise ValueError("segments_per_sample and batch_size must be >= 1")
        distributed = dist.is_available() and dist.is_initialized()
        self.process_group = process_group if process_group is not None or not distributed else dist.group.WORLD
        self.world_size = dist.get_world_size(self.process_group) if self.process_group is not None else 1
        self.rank = dist.get_rank(self.process_group) if self.process_group is not None else 0
        if min(batch_size, dataset.n_episodes) < self.world_size:
            batch = min(batch_size, dataset.n_episodes)
            raise ValueError(f"batch_size ({batch}) must be at least the number of processes ({self.world_size})")
        dataset.validate(model.observation_space, model.action_space)
        if normalize_observations:
            set_observation_statistics(model.policy, dataset.observations)
        self.model = model
        self.policy: ActorCriticPolicy = model.policy
        self.dataset = dataset
        self.segments_per_sample = segments_per_sample
        self.batch_size = min(batch_size, dataset.n_episodes)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.max_grad_norm = max_grad_norm
        self.memory_bptt = memory_bptt
        self.ent_coef = ent_coef
        self.tensorboard_log = tensorboard_log
        if compile_backbone not in (True, False, None, "auto"):
            raise ValueError(f"compile_backbone must be True, False, None or 'auto', got {compile_backbone!r}")
        if compile_backbone is None and getattr(model.policy, "compile_backbone", None) == "auto":
            compile_backbone = "auto"  # the policy's own setting
        #: The setting of the coming updates; ``"auto"`` until :meth:`learn` has timed the first eager updates.
        self.compile_backbone: bool | str | None = compile_backbone
        # Batch order derives from (seed, update index): a resumed run draws the same batches.
        self.seed = int(np.random.SeedSequence().entropy % 2**62) if seed is None else seed
        if seed is not None:
            set_random_seed(seed)
        self.k = self.policy.segment_len if isinstance(self.policy, ElmurActorCriticPolicy) else segment_len
        self.blocks = [segment_blocks(np.arange(n), self.k) for n in dataset.episode_lengths]
        self.pack = pack and isinstance(self.policy, ElmurActorCriticPolicy)
        self.optimizer = th.optim.AdamW(self.policy.parameters(), lr=learning_rate, weight_decay=weight_decay, fused=True)
        self.scheduler: th.optim.lr_scheduler.LambdaLR | None = None
        self.num_updates = 0
        self.total_updates = 0
        self._writer: Any = None

    # ------------------------------------------------------------------ data
    def _rows(self, episodes: np.ndarray) -> list[list[tuple[int, int]]]:
        """The batch rows: ``(position in episodes, first block)`` of the trajectories in each row."""
        if not self.pack:
            return [[(i, 0)] for i in range(len(episodes))]
        bptt = self.policy.backbone.config.memory_bptt if self.memory_bptt == -1 else self.memory_bptt
        # Memory is detached at the chunk's blocks that are multiples of memory_bptt: offsets keep to that grid.
        unit = bptt if bptt is not None and bptt < self.segments_per_sample else 1
        return pack_rows([self.blocks[e].shape[0] for e in episodes], self.segments_per_sample, unit)

    def _batch(self, episodes: np.ndarray) -> tuple[Any, th.Tensor, th.Tensor, th.Tensor]:
        """Observations, timesteps, mask and actions, laid out ``[rows, n_blocks*K, ...]``."""
        n_blocks = max(self.blocks[e].shape[0] for e in episodes)
        n_blocks += (-n_blocks) % self.segments_per_sample
        starts = self.dataset.episode_starts
        rows = self._rows(episodes)
        timesteps = np.full((len(rows), n_blocks * self.k), -1, dtype=np.int64)
        index = np.full_like(timesteps, -1)
        for row, trajectories in enumerate(rows):
            for position, first_block in trajectories:
                episode = episodes[position]
                steps = self.blocks[episode].reshape(-1)  # the episode's steps in its block layout, -1 = padding
                span = slice(first_block * self.k, first_block * self.k + steps.size)
                timesteps[row, span] = steps
                index[row, span] = np.where(steps >= 0, steps + starts[episode], -1)
        valid = index >= 0
        safe = np.where(valid, index, 0)
        device = self.policy.device

        def gather(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(array[safe], device=device)

        obs = self.dataset.observations
        observations = {k: gather(v) for k, v in obs.items()} if isinstance(obs, dict) else gather(obs)
        actions = th.as_tensor(self.dataset.actions[safe], device=device).float()  # padding: any valid action
        if isinstance(self.model.action_space, spaces.Discrete):
            actions = actions.long().view(len(rows), -1)
        return observations, th.as_tensor(timesteps, device=device), th.as_tensor(valid, device=device), actions

    # ------------------------------------------------------------------ training
    def train_step(self, episodes: np.ndarray) -> dict[str, float]:
        """
        One gradient step on a batch of trajectories (processed S segments at a time). Under data parallelism each
        process computes its share of ``episodes`` and the gradients are summed before the step.
        """
        self.policy.set_training_mode(True)
        n_valid = int(self.dataset.episode_lengths[episodes].sum())  # of the whole batch: the loss is a global mean
        episodes = episodes[self.rank :: self.world_size]
        observations, timesteps, valid, actions = self._batch(episodes)
        chunk = self.segments_per_sample * self.k
        carry: Any = None
        self.optimizer.zero_grad()
        nll_total, entropy_total = 0.0, 0.0
        for start in range(0, timesteps.shape[1], chunk):
            window = slice(start, start + chunk)
            mask = valid[:, window]
            if not mask.any():
                break
            obs = (
                {k: v[:, window] for k, v in observations.items()}
                if isinstance(observations, dict)
                else observations[:, window]
            )
            log_prob, entropy, carry = self._chunk_log_prob(obs, timesteps[:, window], mask, actions[:, window], carry)
            loss = -log_prob.sum() / n_valid
            if self.ent_coef and entropy is not None:
                loss = loss - self.ent_coef * entropy.sum() / n_valid
            loss.backward()
            nll_total += float(-log_prob.detach().sum())
            entropy_total += float(entropy.detach().sum()) if entropy is not None else 0.0
        if self.process_group is not None:
            nll_total, entropy_total = self._all_reduce_gradients(nll_total, entropy_total)
        grad_norm = th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.num_updates += 1
        return {
            "bc/nll": nll_total / n_valid,
            "bc/entropy": entropy_total / n_valid,
            "bc/grad_norm": float(grad_norm),
            "bc/learning_rate": self.optimizer.param_groups[0]["lr"],
        }

    def _all_reduce_gradients(self, *totals: float) -> list[float]:
        """
        Sum the gradients (one flat buffer, one collective) and the loss totals over the processes. Which parameters
        have a gradient depends on the model only (the critic's head has none in behaviour cloning), so it is the
        same in every process; those without one keep None (AdamW then leaves them alone, weight decay included).
        """
        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        flat = th.cat([g.reshape(-1) for g in grads] + [th.tensor(totals, device=grads[0].device, dtype=grads[0].dtype)])
        dist.all_reduce(flat, group=self.process_group)
        offset = 0
        for grad in grads:  # the sums back into the gradients, in place
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
        return flat[offset:].tolist()

    def _chunk_log_prob(
        self, obs: Any, timesteps: th.Tensor, mask: th.Tensor, actions: th.Tensor, carry: Any
    ) -> tuple[th.Tensor, th.Tensor | None, Any]:
        """
        Log-probabilities and entropies of a chunk's real steps (row by row) and the recurrent state to
        carry into the next chunk (ELMUR memory, LSTM states, or nothing for an MLP), detached.
        """
        elmur = isinstance(self.policy, ElmurActorCriticPolicy)
        enabled = False if self.compile_backbone == "auto" else self.compile_backbone
        with self.policy.compiled_training(enabled, any_batch=self.pack) if elmur else nullcontext():
            distribution, carry = actor_sequence(self.policy, obs, timesteps, mask, carry, memory_bptt=self.memory_bptt)
        return distribution.log_prob(actions[mask]), distribution.entropy(), detach_carry(carry)

    def learn(self, n_updates: int, progress_bar: bool = True, log_interval: int = 10) -> BaseAlgorithm:
        """
        Train for ``n_updates`` gradient steps (continuing from a resumed checkpoint if any).

        :param n_updates: Total gradient steps of the schedule.
        :param progress_bar: Show a tqdm progress bar.
        :param log_interval: TensorBoard logging period (updates).
        :return: The model, with its policy trained.
        """
        self.total_updates = n_updates
        if self.scheduler is None:
            self.scheduler = th.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(self.warmup_steps, n_updates))
        if self.tensorboard_log is not None and self._writer is None and self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.tensorboard_log)
        progress = None
        if progress_bar and self.rank == 0:
            from tqdm.auto import tqdm

            progress = tqdm(total=n_updates, initial=self.num_updates, unit="update", desc="behaviour cloning")
        eager_seconds: list[float] = []
        while self.num_updates < n_updates:
            rng = np.random.default_rng((self.seed, self.num_updates))
            episodes = rng.choice(self.dataset.n_episodes, size=self.batch_size, replace=False)
            started = time.perf_counter()
            stats = self.train_step(episodes)
            if self.compile_backbone == "auto" and isinstance(self.policy, ElmurActorCriticPolicy):
                eager_seconds.append(time.perf_counter() - started)
                seconds_per_update = timed_seconds_per_update(eager_seconds, AUTO_TIMED_UPDATES)
                if seconds_per_update is not None:
                    self._decide_compile(seconds_per_update, n_updates - self.num_updates, progress)
            if self._writer is not None and self.num_updates % log_interval == 0:
                for key, value in stats.items():
                    self._writer.add_scalar(key, value, self.num_updates)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(nll=f"{stats['bc/nll']:.4f}")
        if progress is not None:
            progress.close()
        if self._writer is not None:
            self._writer.flush()
        return self.model

    def _decide_compile(self, seconds_per_update: float, updates_left: int, progress: Any) -> None:
        """``compile_backbone="auto"``: compile the remaining updates where :func:`compile_pays` says so (every
        process of a data-parallel run takes rank 0's decision), else stay eager; printed either way."""
        compiled = compile_pays(seconds_per_update, updates_left)
        if self.process_group is not None:
            flag = th.tensor([float(compiled)], device=self.policy.device)
            dist.broadcast(flag, src=dist.get_global_rank(self.process_group, 0), group=self.process_group)
            compiled = bool(flag.item())
        self.compile_backbone = compiled
        if self.rank == 0:
            message = decision_message(seconds_per_update, updates_left, compiled)
            if progress is not None:
                progress.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> None:
        """Save the model (``<path>.zip``, loadable by ElmurPPO) and the trainer state (``<path>.pth``, tensors only)."""
        path = Path(path)
        self.model.save(path.with_suffix(".zip"))
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "num_updates": th.tensor(self.num_updates),
            "total_updates": th.tensor(self.total_updates),
            "seed": th.tensor(self.seed),
        }
        th.save(state, path.with_suffix(".pth"))

    def resume(self, path: str | Path) -> None:
        """Restore the policy weights and the trainer state saved by :meth:`save_checkpoint`."""
        path = Path(path)
        self.model.set_parameters(str(path.with_suffix(".zip")), exact_match=True, device=self.policy.device)
        state = th.load(path.with_suffix(".pth"), weights_only=True)
        self.num_updates = int(state["num_updates"])
        self.total_updates = int(state["total_updates"])
        self.seed = int(state["seed"])
        if state["scheduler"]:
            # The scheduler first (its constructor sets the learning rate), then the saved optimizer state.
            schedule = warmup_cosine(self.warmup_steps, self.total_updates)
            self.scheduler = th.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
            self.scheduler.load_state_dict(state["scheduler"])
        self.optimizer.load_state_dict(state["optimizer"])
