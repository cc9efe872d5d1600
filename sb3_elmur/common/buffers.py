"""
Rollout buffers for ELMUR policies: SB3's rollout buffers plus segment bookkeeping.

Per step the buffer keeps the usual PPO fields and the step's absolute index in its episode; at
each segment start it keeps the per-layer memory vectors and LRU timestamps the policy acted with.
A segment that began in the previous rollout keeps its earlier steps as a *prefix* (they are part
of the computation but not of the loss). :meth:`get` serves fixed-size minibatches of samples, each
a run of S consecutive segments of one env laid out in blocks of K steps, with a loss mask: the
training forward is the backbone's parallel path, with no Python loop over time steps.
"""

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.preprocessing import get_obs_shape

from sb3_elmur.common.type_aliases import ElmurRolloutBufferSamples, SegmentBatch
from sb3_elmur.elmur import EMPTY, MemoryState, StreamState, segment_blocks

NumpyObs = np.ndarray | dict[str, np.ndarray]


def map_obs(fn: Callable[..., Any], *observations: Any) -> Any:
    """Apply ``fn`` to an array observation, or key by key to dict observations."""
    if isinstance(observations[0], dict):
        return {key: fn(*(obs[key] for obs in observations)) for key in observations[0]}
    return fn(*observations)


def obs_zeros(observation_space: spaces.Space, leading: tuple[int, ...]) -> NumpyObs:
    """Zero observations of shape ``leading + obs_shape`` (a dict for Dict spaces)."""
    shape = get_obs_shape(observation_space)
    if isinstance(shape, dict):
        sub = observation_space.spaces  # type: ignore[attr-defined]
        return {key: np.zeros((*leading, *value), dtype=sub[key].dtype) for key, value in shape.items()}
    return np.zeros((*leading, *shape), dtype=observation_space.dtype)


def reshape_obs(observation_space: spaces.Space, obs: NumpyObs, n_envs: int) -> NumpyObs:
    """Observations of one vectorized step as ``[n_envs, *obs_shape]`` (Discrete ones come as ``[n_envs]``)."""
    shape = get_obs_shape(observation_space)
    if isinstance(shape, dict):
        return {key: np.asarray(obs[key]).reshape((n_envs, *value)) for key, value in shape.items()}  # type: ignore[index]
    return np.asarray(obs).reshape((n_envs, *shape))


def action_mask_dims(action_space: spaces.Space) -> int:
    """Width of a valid-action mask (sb3-contrib's convention): one entry per action of each sub-action."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return 2 * int(np.prod(action_space.shape))
    raise ValueError(f"Action masking needs Discrete, MultiDiscrete or MultiBinary actions, got {action_space}")


class SegmentContext:
    """
    What an algorithm keeps of each env's current segment between rollouts: the observations of
    its steps so far and the memory committed before it.

    :param observation_space: Observation space.
    :param n_envs: Number of envs.
    :param segment_len: K.
    """

    def __init__(self, observation_space: spaces.Space, n_envs: int, segment_len: int) -> None:
        self.observation_space = observation_space
        self.n_envs = n_envs
        self.segment_len = segment_len
        self.observations = obs_zeros(observation_space, (n_envs, segment_len))
        self.memory: MemoryState | None = None

    def observe(self, obs: NumpyObs, timesteps: np.ndarray, states: StreamState) -> None:
        """
        Record the observations of one step (before acting on them) and, for envs at a segment start,
        the memory in ``states`` (already reset for new episodes).
        """
        rows = np.arange(self.n_envs)
        position = timesteps % self.segment_len
        obs = reshape_obs(self.observation_space, obs, self.n_envs)

        def store(target: np.ndarray, value: np.ndarray) -> None:
            target[rows, position] = value

        map_obs(store, self.observations, obs)
        start = position == 0
        if self.memory is None or start.all():
            self.memory = states.memory
        elif start.any():
            self.memory = states.memory.select(th.as_tensor(start, device=states.memory.vectors.device), self.memory)


class ElmurRolloutBufferMixin:
    """
    Segment bookkeeping shared by the array and Dict rollout buffers.

    :param buffer_size: Steps per env (``n_steps``).
    :param observation_space: Observation space.
    :param action_space: Action space.
    :param memory_shape: ``(n_towers, n_layers, n_slots, d_model)`` of the backbone memory.
    :param segment_len: K.
    :param segments_per_sample: S, consecutive segments per training sample (gradient may flow
        through memory inside a sample; each sample starts from the memory the policy acted with).
    :param device: Torch device of the served tensors.
    :param action_masks: Also keep each step's valid-action mask (see :meth:`add_segments`) and serve it with
        the samples (MaskableElmurPPO).
    :param gae_lambda: GAE lambda.
    :param gamma: Discount factor.
    :param n_envs: Number of envs.
    """

    buffer_size: int
    n_envs: int
    device: th.device
    observation_space: spaces.Space
    observations: NumpyObs
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray
    pos: int
    full: bool

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        memory_shape: tuple[int, int, int, int],
        segment_len: int,
        segments_per_sample: int = 3,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        action_masks: bool = False,
    ):
        if segments_per_sample < 1:
            raise ValueError(f"segments_per_sample must be >= 1, got {segments_per_sample}")
        self.mask_dims = action_mask_dims(action_space) if action_masks else None
        self.memory_shape = memory_shape
        self.segment_len = segment_len
        self.segments_per_sample = segments_per_sample
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)  # type: ignore[call-arg]

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self._reset_segments()

    def _reset_segments(self) -> None:
        prefix_rows = self.segment_len - 1
        rows = prefix_rows + self.buffer_size
        self.timesteps = np.full((rows, self.n_envs), -1, dtype=np.int64)
        self.prefix_observations = obs_zeros(self.observation_space, (prefix_rows, self.n_envs))
        self.prefix_length = np.zeros(self.n_envs, dtype=np.int64)
        self.memory_vectors = np.zeros((rows, self.n_envs, *self.memory_shape), dtype=np.float32)
        self.memory_timestamps = np.full((rows, self.n_envs, *self.memory_shape[1:3]), EMPTY, dtype=np.int64)
        if self.mask_dims is not None:
            self.action_masks = np.ones((self.buffer_size, self.n_envs, self.mask_dims), dtype=bool)
        self._samples: dict[str, Any] | None = None

    def _store_memory(self, row: int, envs: np.ndarray, memory: MemoryState) -> None:
        self.memory_vectors[row, envs] = memory.vectors[envs].cpu().numpy()
        self.memory_timestamps[row, envs] = memory.timestamps[envs].cpu().numpy()

    def set_prefix(self, context: SegmentContext, length: np.ndarray, segment_start: np.ndarray) -> None:
        """
        Record, before the first :meth:`add`, the steps each env already took in its current segment.

        :param context: The algorithm's segment context (observations and memory at the segment start).
        :param length: ``[n_envs]`` steps already taken in the segment (0 for envs at a segment start
            or about to start an episode).
        :param segment_start: ``[n_envs]`` absolute step of that segment's start.
        """
        assert self.pos == 0, "set_prefix() must come before the first add()"
        prefix_rows = self.segment_len - 1
        self.prefix_length = np.asarray(length, dtype=np.int64)
        for env in np.flatnonzero(self.prefix_length):
            p = int(self.prefix_length[env])
            rows = slice(prefix_rows - p, prefix_rows)

            def copy(target: np.ndarray, source: np.ndarray, env: int = env, p: int = p, rows: slice = rows) -> None:
                target[rows, env] = source[env, :p]

            map_obs(copy, self.prefix_observations, context.observations)
            self.timesteps[rows, env] = segment_start[env] + np.arange(p)
            self._store_memory(prefix_rows - p, np.array([env]), context.memory)  # type: ignore[arg-type]

    def add_segments(self, timesteps: np.ndarray, memory: MemoryState, action_masks: np.ndarray | None = None) -> None:
        """
        Segment bookkeeping of the step just added: its episode step and, for envs at a segment
        start, the memory the policy acted with.

        :param timesteps: ``[n_envs]`` absolute episode step of each env's step.
        :param memory: Memory (all towers) before the step (after resets).
        :param action_masks: ``[n_envs, mask_dims]`` valid actions of the step (buffers made with ``action_masks``;
            None: all valid).
        """
        if self.mask_dims is not None:  # no masks given: every action was valid
            masks = True if action_masks is None else np.asarray(action_masks, dtype=bool).reshape(self.n_envs, self.mask_dims)
            self.action_masks[self.pos - 1] = masks
        row = self.segment_len - 1 + self.pos - 1
        self.timesteps[row] = timesteps
        starts = np.flatnonzero(timesteps % self.segment_len == 0)
        if starts.size:
            self._store_memory(row, starts, memory)

    # ------------------------------------------------------------------ sampling
    def _prepare_samples(self) -> None:
        """Cut every env's steps (prefix + rollout) into samples of S blocks of K positions."""
        k, s = self.segment_len, self.segments_per_sample
        prefix_rows = k - 1
        per_env = []
        for env in range(self.n_envs):
            first = prefix_rows - int(self.prefix_length[env])
            blocks = segment_blocks(self.timesteps[first:, env], k)
            blocks = np.where(blocks >= 0, (blocks + first) * self.n_envs + env, -1)
            n_pad = (-len(blocks)) % s
            blocks = np.concatenate([blocks, np.full((n_pad, k), -1, dtype=np.int64)])
            per_env.append(blocks.reshape(-1, s * k))
        # One extra all-padding sample fills the last minibatch to the fixed size.
        index = np.concatenate([*per_env, np.full((1, s * k), -1, dtype=np.int64)])
        valid = index >= 0
        safe = np.where(valid, index, 0)
        row = safe // self.n_envs
        loss = valid & (row >= prefix_rows)
        rollout_index = np.where(loss, safe - prefix_rows * self.n_envs, 0)

        def layout(prefix: np.ndarray, rollout: np.ndarray) -> th.Tensor:
            data = np.concatenate([prefix, rollout]).reshape(-1, *rollout.shape[2:])
            return self.to_torch(data[safe])  # type: ignore[attr-defined]

        first = safe[:, 0]
        vectors = self.memory_vectors.reshape(-1, *self.memory_shape)[first]
        timestamps = self.memory_timestamps.reshape(-1, *self.memory_shape[1:3])[first]
        timestamps[~valid[:, 0]] = EMPTY
        memory = MemoryState(self.to_torch(vectors), th.as_tensor(timestamps, device=self.device))

        def flat(array: np.ndarray) -> th.Tensor:
            return self.to_torch(array.reshape(self.buffer_size * self.n_envs, *array.shape[2:]))  # type: ignore[attr-defined]

        self._samples = {
            "observations": map_obs(layout, self.prefix_observations, self.observations),
            "timesteps": th.as_tensor(np.where(valid, self.timesteps.reshape(-1)[safe], -1), device=self.device),
            "mask": th.as_tensor(loss, device=self.device),
            "rollout_index": th.as_tensor(rollout_index, device=self.device),
            "memory": memory,
            "actions": flat(self.actions.astype(np.float32, copy=False)),
            "values": flat(self.values).flatten(),
            "log_probs": flat(self.log_probs).flatten(),
            "advantages": flat(self.advantages).flatten(),
            "returns": flat(self.returns).flatten(),
        }
        if self.mask_dims is not None:
            self._samples["action_masks"] = th.as_tensor(self.action_masks.reshape(-1, self.mask_dims), device=self.device)

    @property
    def n_samples(self) -> int:
        """Number of training samples in the rollout (available after :meth:`get` started)."""
        assert self._samples is not None
        return self._samples["mask"].shape[0] - 1

    def samples_per_batch(self, batch_size: int | None) -> int:
        """
        Samples per minibatch for a ``batch_size`` counted in steps: an epoch makes as many gradient steps as PPO's
        (``ceil(n_steps * n_envs / batch_size)``) over the rollout's nominal sample count
        (``n_envs * ceil(ceil(n_steps / K) / S)``). It depends on the settings only, so that minibatch shapes stay
        the same from rollout to rollout (a compiled backbone is not recompiled); a rollout with more samples
        (episode ends and segment prefixes add some) gets an extra minibatch.

        :param batch_size: Minibatch size in steps (``None``: the whole rollout).
        """
        total = self.buffer_size * self.n_envs
        n_minibatches = math.ceil(total / (batch_size or total))
        nominal = self.n_envs * math.ceil(math.ceil(self.buffer_size / self.segment_len) / self.segments_per_sample)
        return max(1, math.ceil(nominal / n_minibatches))

    def get(self, batch_size: int | None = None) -> Generator[ElmurRolloutBufferSamples, None, None]:  # type: ignore[override]
        """
        Shuffled minibatches of whole samples; every minibatch has the same number of samples
        (the last one is completed with all-padding samples that carry no loss).

        :param batch_size: Minibatch size in steps (SB3 convention); see :meth:`samples_per_batch`.
        """
        assert self.full, "the rollout buffer is not full"
        if self._samples is None:
            self._prepare_samples()
        per_batch = self.samples_per_batch(batch_size)
        order = np.random.permutation(self.n_samples)
        order = np.concatenate([order, np.full((-len(order)) % per_batch, self.n_samples, dtype=np.int64)])
        for chunk in order.reshape(-1, per_batch):
            yield self._get_samples(chunk)

    def _get_samples(self, chunk: np.ndarray, env: Any = None) -> ElmurRolloutBufferSamples:  # type: ignore[override]
        data = self._samples
        assert data is not None
        index = th.as_tensor(chunk, device=self.device)
        mask = data["mask"][index]
        steps = data["rollout_index"][index][mask]
        memory = data["memory"]
        batch = SegmentBatch(
            observations=map_obs(lambda obs: obs[index], data["observations"]),
            timesteps=data["timesteps"][index],
            mask=mask,
            memory=MemoryState(memory.vectors[index], memory.timestamps[index]),
            action_masks=data["action_masks"][steps] if "action_masks" in data else None,
        )
        return ElmurRolloutBufferSamples(
            observations=batch,
            actions=data["actions"][steps],
            old_values=data["values"][steps],
            old_log_prob=data["log_probs"][steps],
            advantages=data["advantages"][steps],
            returns=data["returns"][steps],
        )


class ElmurRolloutBuffer(ElmurRolloutBufferMixin, RolloutBuffer):
    """Rollout buffer of ELMUR policies for array observations (see :class:`ElmurRolloutBufferMixin`)."""


class ElmurDictRolloutBuffer(ElmurRolloutBufferMixin, DictRolloutBuffer):
    """Rollout buffer of ELMUR policies for Dict observations (see :class:`ElmurRolloutBufferMixin`)."""
