"""The ELMUR backbone: a stack of layers with layer-local memory, run in parallel over segments or one step at a time."""

from dataclasses import dataclass

import torch as th
from torch import nn

from sb3_elmur.elmur.config import ElmurConfig
from sb3_elmur.elmur.layer import ElmurLayer
from sb3_elmur.elmur.memory import MemoryState
from sb3_elmur.elmur.segment import validate_segment_layout


@dataclass
class StreamState:
    """
    Everything the streaming path needs to continue a batch of episodes one step at a time.

    Its size does not depend on how long the episodes have run.

    :param memory: Committed memory of every layer (see :class:`MemoryState`).
    :param step: ``[batch]`` int64, absolute index (inside the episode) of the next step.
    :param keys: ``[batch, n_layers, K, d_model]`` self-attention keys of the current segment.
    :param values: ``[batch, n_layers, K, d_model]`` self-attention values of the current segment.
    :param outputs: ``[batch, n_layers, K, d_model]`` each layer's final token states of the current
        segment (what the write attention reads when the segment completes).
    """

    memory: MemoryState
    step: th.Tensor
    keys: th.Tensor
    values: th.Tensor
    outputs: th.Tensor

    @property
    def batch_size(self) -> int:
        return self.step.shape[0]

    def tensors(self) -> tuple[th.Tensor, ...]:
        """The state as a flat tuple (memory vectors, timestamps, step, keys, values, outputs)."""
        return (self.memory.vectors, self.memory.timestamps, self.step, self.keys, self.values, self.outputs)

    @classmethod
    def from_tensors(cls, tensors: tuple[th.Tensor, ...]) -> "StreamState":
        """Inverse of :meth:`tensors`."""
        vectors, timestamps, step, keys, values, outputs = tensors
        return cls(MemoryState(vectors, timestamps), step, keys, values, outputs)

    def nbytes(self) -> int:
        """Bytes held by the state's tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def clone(self) -> "StreamState":
        return StreamState.from_tensors(tuple(t.clone() for t in self.tensors()))


class ElmurBackbone(nn.Module):
    """
    ELMUR backbone (arXiv 2510.07151): a transformer over segments of K steps in which every layer
    owns M memory slots that persist across segments for the whole episode.

    Two ways to run it compute the same function:

    * :meth:`forward` (training): parallel over the K tokens of each segment, segment after segment,
      with gradient through memory controlled by ``config.memory_bptt``;
    * :meth:`step` (acting): one step at a time with a per-layer key/value cache of the current
      segment (O(K) work per step), memory committed when a segment completes. Envs may be at
      different positions in their segments and are reset independently.

    :param in_features: Width of the input features (projected to ``config.d_model``).
    :param config: Backbone settings.
    """

    def __init__(self, in_features: int, config: ElmurConfig) -> None:
        super().__init__()
        self.config = config
        self.in_features = in_features
        self.input_proj = nn.Linear(in_features, config.d_model)
        self.layers = nn.ModuleList(ElmurLayer(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.d_model) if config.norm_first else nn.Identity()
        self.register_buffer("_positions", th.arange(config.segment_len), persistent=False)

    @property
    def out_features(self) -> int:
        return self.config.d_model

    # ------------------------------------------------------------------ states
    def initial_memory(self, batch_size: int) -> MemoryState:
        """Empty memory for ``batch_size`` episodes."""
        c = self.config
        param = self.input_proj.weight
        return MemoryState.empty(batch_size, c.n_layers, c.n_slots, c.d_model, param.device, param.dtype)

    def initial_state(self, batch_size: int) -> StreamState:
        """Fresh streaming state (empty memory, step 0) for ``batch_size`` episodes."""
        c = self.config
        param = self.input_proj.weight
        cache = th.zeros(batch_size, c.n_layers, c.segment_len, c.d_model, device=param.device, dtype=param.dtype)
        return StreamState(
            memory=self.initial_memory(batch_size),
            step=th.zeros(batch_size, dtype=th.long, device=param.device),
            keys=cache,
            values=cache.clone(),
            outputs=cache.clone(),
        )

    def state_at_segment_start(self, memory: MemoryState, step: th.Tensor) -> StreamState:
        """
        Streaming state for episodes that stand at a segment start with the given memory (for
        example memory produced by the parallel path): what :meth:`step` would have reached there.

        :param memory: Committed memory.
        :param step: ``[batch]`` int64 absolute index of the next step; must be a multiple of K.
        """
        if (step % self.config.segment_len != 0).any():
            raise ValueError(f"step must be a segment start (a multiple of K={self.config.segment_len}), got {step.tolist()}")
        state = self.initial_state(memory.batch_size)
        state.memory = MemoryState(memory.vectors.clone(), memory.timestamps.clone())
        state.step = step.to(state.step.device, th.long).clone()
        return state

    @staticmethod
    def reset_state(state: StreamState, mask: th.Tensor) -> StreamState:
        """
        Start new episodes for the flagged rows; the other rows are untouched.

        :param state: Streaming state.
        :param mask: ``[batch]`` bool.
        """
        rows = mask.view(-1, 1, 1, 1)
        return StreamState(
            memory=state.memory.reset(mask),
            step=state.step.masked_fill(mask, 0),
            keys=state.keys.masked_fill(rows, 0.0),
            values=state.values.masked_fill(rows, 0.0),
            outputs=state.outputs.masked_fill(rows, 0.0),
        )

    # ------------------------------------------------------------------ shared pieces
    def _commit(
        self,
        memory: MemoryState,
        outputs: list[th.Tensor],
        token_time: th.Tensor,
        commit_time: th.Tensor,
        token_valid: th.Tensor | None = None,
    ) -> MemoryState:
        """Memory track of every layer for a completed segment (layer l writes only its own slots)."""
        vectors, timestamps = [], []
        for index, layer in enumerate(self.layers):
            slots, slot_time = memory.layer(index)
            new_slots, new_time = layer.memory_track(slots, slot_time, outputs[index], token_time, commit_time, token_valid)
            vectors.append(new_slots)
            timestamps.append(new_time)
        return MemoryState(th.stack(vectors, dim=1), th.stack(timestamps, dim=1))

    # ------------------------------------------------------------------ parallel path (training)
    def forward(
        self,
        features: th.Tensor,
        timesteps: th.Tensor,
        memory: MemoryState | None = None,
        memory_bptt: int | None = -1,
        check_layout: bool = True,
    ) -> tuple[th.Tensor, MemoryState]:
        """
        Run whole segments in parallel.

        Row ``b`` is a sequence of blocks of K steps; block position ``j`` holds the step with
        ``t % K == j`` (see :mod:`sb3_elmur.elmur.segment`). A block whose first step is ``t = 0``
        starts a new episode (memory emptied first). Memory is committed after each block whose last
        position is a real step; partial blocks (an episode that ended) commit nothing.

        :param features: ``[batch, n_blocks * K, in_features]``.
        :param timesteps: ``[batch, n_blocks * K]`` int64 absolute step in the episode, -1 = padding.
        :param memory: Memory at the start of the first block (default: empty).
        :param memory_bptt: Segments that gradient may cross through memory (``None``: no limit,
            ``1``: detached at every segment start); ``-1`` (default) uses ``config.memory_bptt``.
        :param check_layout: Validate the block layout (cheap; raises ``ValueError`` naming the problem).
        :return: Token states ``[batch, n_blocks * K, d_model]`` (padding positions hold unused values)
            and the memory after the last block.
        """
        c = self.config
        self._check_sequence(features, timesteps)
        if check_layout:
            validate_segment_layout(timesteps, c.segment_len)
        bptt = c.memory_bptt if memory_bptt == -1 else memory_bptt
        batch, length = timesteps.shape
        if memory is None:
            memory = self.initial_memory(batch)
        # Padding never reaches a real token, whatever the caller put there (even NaN).
        hidden = self.input_proj(features).masked_fill((timesteps < 0).unsqueeze(-1), 0.0)
        outputs = []
        for block in range(length // c.segment_len):
            window = slice(block * c.segment_len, (block + 1) * c.segment_len)
            memory = memory.reset(timesteps[:, window.start] == 0)
            if bptt is not None and block > 0 and block % bptt == 0:
                memory = memory.detach()
            out, memory, _ = self._block(hidden[:, window], timesteps[:, window], memory)
            outputs.append(out)
        return th.cat(outputs, dim=1), memory

    def _check_sequence(self, features: th.Tensor, timesteps: th.Tensor) -> None:
        if features.dim() != 3 or features.shape[-1] != self.in_features:
            raise ValueError(f"features must have shape [batch, time, {self.in_features}], got {tuple(features.shape)}")
        if timesteps.shape != features.shape[:2]:
            raise ValueError(f"timesteps shape {tuple(timesteps.shape)} does not match features {tuple(features.shape[:2])}")

    def _block(
        self, hidden: th.Tensor, steps: th.Tensor, memory: MemoryState
    ) -> tuple[th.Tensor, MemoryState, list[tuple[th.Tensor, th.Tensor, th.Tensor]]]:
        """
        One block of K positions in parallel: token track of every layer, then the commit if the
        block is complete. Returns the final token states, the memory after the block, and per layer
        the keys, values and outputs of the block (what the streaming cache holds).
        """
        valid = steps >= 0
        token_time = steps.clamp(min=0)
        query_pos = self._positions.expand(steps.shape[0], -1)
        captured: list[tuple[th.Tensor, th.Tensor, th.Tensor]] = []
        h, layer_outputs = hidden, []
        for index, layer in enumerate(self.layers):
            kv: list[th.Tensor] = []

            def kv_hook(key: th.Tensor, value: th.Tensor, kv: list = kv) -> tuple[th.Tensor, ...]:
                kv[:] = [key, value]
                return key, value, valid

            h = layer.token_track(h, token_time, query_pos, kv_hook, *memory.layer(index))
            layer_outputs.append(h)
            captured.append((kv[0], kv[1], h))
        complete = valid[:, -1]
        if complete.any():
            written = self._commit(memory, layer_outputs, token_time, token_time[:, -1], valid)
            memory = written.select(complete, memory)
        return self.final_norm(h), memory, captured

    def prefill(self, features: th.Tensor, memory: MemoryState, segment_start: th.Tensor, length: th.Tensor) -> StreamState:
        """
        Streaming state of episodes that stand ``length`` steps into a segment, rebuilt from the
        observations of those steps and the memory committed before the segment (for example after
        the parameters changed, so that acting continues with caches of the current parameters).

        :param features: ``[batch, K, in_features]``; row ``b`` holds the segment's first ``length[b]`` steps.
        :param memory: Memory at the segment start.
        :param segment_start: ``[batch]`` absolute step of the segment's first step (a multiple of K).
        :param length: ``[batch]`` steps already taken in the segment, ``0 <= length < K``.
        """
        c = self.config
        if ((length < 0) | (length >= c.segment_len)).any() or (segment_start % c.segment_len != 0).any():
            raise ValueError("prefill needs 0 <= length < K and segment_start a multiple of K")
        steps = segment_start.unsqueeze(1) + self._positions
        steps = steps.masked_fill(self._positions >= length.unsqueeze(1), -1)
        self._check_sequence(features, steps)
        hidden = self.input_proj(features).masked_fill((steps < 0).unsqueeze(-1), 0.0)
        _, _, captured = self._block(hidden, steps, memory)
        keep = (steps >= 0).unsqueeze(-1)
        stack = [th.stack([layer[i] for layer in captured], dim=1).masked_fill(~keep.unsqueeze(1), 0.0) for i in range(3)]
        return StreamState(MemoryState(memory.vectors, memory.timestamps), segment_start + length, *stack)

    # ------------------------------------------------------------------ streaming path (acting)
    def step(
        self, features: th.Tensor, state: StreamState, episode_start: th.Tensor | None = None
    ) -> tuple[th.Tensor, StreamState]:
        """
        Advance every episode of the batch by one step.

        :param features: ``[batch, in_features]`` input of the current step.
        :param state: State from :meth:`initial_state` or a previous call. Its caches are updated in
            place; use :meth:`StreamState.clone` to keep an old state.
        :param episode_start: ``[batch]`` bool; True starts a new episode for that row before the step.
        :return: Token state ``[batch, d_model]`` of this step and the new state.
        """
        c = self.config
        if features.dim() != 2 or features.shape[-1] != self.in_features:
            raise ValueError(f"features must have shape [batch, {self.in_features}], got {tuple(features.shape)}")
        if features.shape[0] != state.batch_size:
            raise ValueError(f"features hold {features.shape[0]} rows but the state holds {state.batch_size}")
        if episode_start is not None:
            episode_start = episode_start.to(th.bool).view(-1)
            if episode_start.any():
                state = self.reset_state(state, episode_start)
        rows = th.arange(state.batch_size, device=features.device)
        step = state.step
        position = step % c.segment_len
        all_keys = th.ones(state.batch_size, c.segment_len, dtype=th.bool, device=features.device)
        h = self.input_proj(features).unsqueeze(1)
        for index, layer in enumerate(self.layers):

            def kv_hook(key: th.Tensor, value: th.Tensor, index: int = index) -> tuple[th.Tensor, ...]:
                # Positions after the current one hold stale entries; the causal bias masks them.
                state.keys[rows, index, position] = key[:, 0]
                state.values[rows, index, position] = value[:, 0]
                return state.keys[:, index], state.values[:, index], all_keys

            h = layer.token_track(h, step.unsqueeze(1), position.unsqueeze(1), kv_hook, *state.memory.layer(index))
            state.outputs[rows, index, position] = h[:, 0]
        out = self.final_norm(h[:, 0])

        complete = position == c.segment_len - 1
        if complete.any():
            done = complete.nonzero().squeeze(1)
            token_time = step[done].unsqueeze(1) - (c.segment_len - 1) + self._positions
            sub_memory = MemoryState(state.memory.vectors[done], state.memory.timestamps[done])
            layer_outputs = [state.outputs[done, index] for index in range(c.n_layers)]
            written = self._commit(sub_memory, layer_outputs, token_time, step[done])
            vectors, timestamps = state.memory.vectors.clone(), state.memory.timestamps.clone()
            vectors[done], timestamps[done] = written.vectors, written.timestamps
            state = StreamState(MemoryState(vectors, timestamps), state.step, state.keys, state.values, state.outputs)
        state.step = step + 1
        return out, state
