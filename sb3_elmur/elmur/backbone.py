"""The ELMUR backbone: a stack of layers with layer-local memory, run in parallel over segments or one step at a time."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch as th
from torch import nn

from sb3_elmur.elmur.config import ElmurConfig
from sb3_elmur.elmur.layer import ElmurLayer
from sb3_elmur.elmur.memory import EMPTY, LruPlan, MemoryState, lru_plan
from sb3_elmur.elmur.segment import validate_segment_layout
from sb3_elmur.elmur.time_bias import bucket_boundaries, distance_buckets
from sb3_elmur.elmur.towers import TowerLinear, TowerModule, tower_norm


@dataclass
class StreamState:
    """
    Everything the streaming path needs to continue a batch of episodes one step at a time.

    Its size does not depend on how long the episodes have run.

    :param memory: Committed memory of every layer (see :class:`MemoryState`).
    :param step: ``[batch]`` int64, absolute index (inside the episode) of the next step. It lives on the CPU
        whatever the device of the rest: the per-step decisions (reset, commit) then never wait for a GPU.
    :param keys: ``[batch, n_towers, n_layers, K, d_model]`` self-attention keys of the current segment.
    :param values: ``[batch, n_towers, n_layers, K, d_model]`` self-attention values of the current segment.
    :param outputs: ``[batch, n_towers, n_layers, K, d_model]`` each layer's final token states of the
        current segment (what the write attention reads when the segment completes).
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

    def rows(self, index: th.Tensor | slice) -> "StreamState":
        """The state of some episodes (a copy)."""
        return StreamState.from_tensors(tuple(t[index].clone() for t in self.tensors()))


@dataclass
class SegmentPlan:
    """
    What depends on times only, for a run of blocks (one per segment), computed once per forward and
    shared by all layers and towers: the slot timestamps each block reads, their distance buckets to
    the block's tokens, and the LRU plan of each block's commit.

    Leading dimension: the block. ``L`` layers, ``M`` memory slots, ``S`` slots of the state (``config.slots_per_layer``:
    the ``R = config.read_slots`` that the read attends, then the previous step's input with ``token_shift``), ``K``
    positions.

    :param steps: ``[blocks, batch, K]`` absolute step of each position, -1 = padding.
    :param reset: ``[blocks, batch]`` bool, the block starts an episode (memory emptied first).
    :param complete: ``[blocks, batch]`` bool, the block's last position is a real step (it commits).
    :param occupied: ``[blocks, batch, L, S]`` bool, slots written before the block.
    :param any_slot: ``[blocks, batch, L, 1, 1]`` float, 1 where a layer has at least one written slot that is read.
    :param bucket: ``[blocks, batch, L, K, S]`` int64 time-distance buckets (token, slot).
    :param lru: LRU plan of each block's commit (``keep``/``take`` ``[blocks, batch, L, M, 1]``, ``timestamps``
        ``[blocks, batch, L, S]`` after the commit); episodes whose block is incomplete keep their memory.
    """

    steps: th.Tensor
    reset: th.Tensor
    complete: th.Tensor
    occupied: th.Tensor
    any_slot: th.Tensor
    bucket: th.Tensor
    lru: LruPlan

    @property
    def valid(self) -> th.Tensor:
        return self.steps >= 0


#: Inductor options of the compiled acting step (:meth:`ElmurBackbone.compile_step`). The C++ wrapper pays at one
#: step's small kernels; it does not speed up the compiled training path (ElmurBC on T-Maze: 0.46x the eager
#: baseline's time with it, 0.45x without), which keeps torch's defaults.
STEP_COMPILE_OPTIONS: dict[str, bool] = {"cpp_wrapper": True}


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

    With ``n_towers > 1`` the module holds that many independent backbones with the same settings
    (ElmurPPO's actor and critic) and evaluates them together, each torch op launched once for all:
    inputs are shared (``[batch, ...]``) or per tower (``[n_towers, batch, ...]``), outputs are
    towers-first. A single-tower backbone has no tower dimension in its inputs and outputs.

    :param in_features: Width of the input features (projected to ``config.d_model``).
    :param config: Backbone settings.
    :param n_towers: Number of towers.
    """

    def __init__(self, in_features: int, config: ElmurConfig, n_towers: int = 1) -> None:
        super().__init__()
        if n_towers < 1:
            raise ValueError(f"n_towers must be >= 1, got {n_towers}")
        self.config = config
        # A Python int even when given a numpy integer (SB3's flattened dims are): torch.compile traces ints only.
        self.in_features = in_features = int(in_features)
        self.n_towers = n_towers
        self.input_proj = TowerLinear(n_towers, in_features, config.d_model)
        self.layers = nn.ModuleList(ElmurLayer(config, n_towers) for _ in range(config.n_layers))
        self.final_norm = tower_norm(n_towers, config.d_model, config.norm_first)
        if config.norm_first:
            nn.init.constant_(self.final_norm.weight, config.output_scale)
        self.register_buffer("_positions", th.arange(config.segment_len), persistent=False)
        boundaries = bucket_boundaries(config.n_time_buckets, config.max_time_distance)
        self.register_buffer("_boundaries", boundaries, persistent=False)

    @property
    def out_features(self) -> int:
        return self.config.d_model

    @property
    def active_towers(self) -> int:
        """Towers computed now: all of them, or the first ones inside :meth:`first_towers`."""
        return self.input_proj.active_towers or self.n_towers

    @contextmanager
    def first_towers(self, n: int) -> Iterator[None]:
        """
        Inside this context only the first ``n`` towers are computed (``n = 1``: the actor alone, for
        behaviour cloning); states and memories then hold ``n`` towers.

        :param n: Number of towers, ``1 <= n <= n_towers``.
        """
        if not 1 <= n <= self.n_towers:
            raise ValueError(f"n must be in [1, {self.n_towers}], got {n}")
        modules = [m for m in self.modules() if isinstance(m, TowerModule)]
        for module in modules:
            module.active_towers = None if n == self.n_towers else n
        try:
            yield
        finally:
            for module in modules:
                module.active_towers = None

    # ------------------------------------------------------------------ states
    def initial_memory(self, batch_size: int) -> MemoryState:
        """Empty memory for ``batch_size`` episodes."""
        c = self.config
        param = self.input_proj.weight
        return MemoryState.empty(
            batch_size, self.active_towers, c.n_layers, c.slots_per_layer, c.d_model, param.device, param.dtype
        )

    def initial_state(self, batch_size: int) -> StreamState:
        """Fresh streaming state (empty memory, step 0) for ``batch_size`` episodes."""
        c = self.config
        param = self.input_proj.weight
        shape = (batch_size, self.active_towers, c.n_layers, c.segment_len, c.d_model)
        cache = th.zeros(shape, device=param.device, dtype=param.dtype)
        return StreamState(
            memory=self.initial_memory(batch_size),
            step=th.zeros(batch_size, dtype=th.long),
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
        step = step.cpu()
        if (step % self.config.segment_len != 0).any():
            raise ValueError(f"step must be a segment start (a multiple of K={self.config.segment_len}), got {step.tolist()}")
        state = self.initial_state(memory.batch_size)
        state.memory = MemoryState(memory.vectors.clone(), memory.timestamps.clone())
        state.step = step.to(th.long).clone()
        return state

    @staticmethod
    def reset_state(state: StreamState, mask: th.Tensor) -> StreamState:
        """
        Start new episodes for the flagged rows; the other rows are untouched.

        :param state: Streaming state.
        :param mask: ``[batch]`` bool (best on the CPU: a mask on a GPU costs a synchronisation here).
        """
        rows = mask.to(state.keys.device).view(-1, 1, 1, 1, 1)
        return StreamState(
            memory=state.memory.reset(rows.view(-1)),
            step=state.step.masked_fill(mask.cpu(), 0),
            keys=state.keys.masked_fill(rows, 0.0),
            values=state.values.masked_fill(rows, 0.0),
            outputs=state.outputs.masked_fill(rows, 0.0),
        )

    # ------------------------------------------------------------------ shared pieces
    def _project(self, features: th.Tensor, shared_dims: int) -> th.Tensor:
        """Input projection to ``[G, ...]``: shared features have ``shared_dims`` dimensions, per-tower ones one more."""
        if features.dim() == shared_dims:
            return self.input_proj.shared(features)
        return self.input_proj(features)

    def _check_features(self, features: th.Tensor, leading: tuple[int, ...], names: str) -> None:
        """Shape check of shared (``[*leading, F]``) or per-tower (``[G, *leading, F]``) features."""
        n, towers = len(leading) + 1, self.active_towers
        per_tower = towers > 1 and features.dim() == n + 1 and features.shape[0] == towers
        if not (features.dim() == n or per_tower) or features.shape[-1] != self.in_features:
            expected = f"[{names}, {self.in_features}]"
            if towers > 1:
                expected += f" or, per tower, [{towers}, {names}, {self.in_features}]"
            raise ValueError(f"features must have shape {expected}, got {tuple(features.shape)}")
        if tuple(features.shape[-n:-1]) != leading:
            raise ValueError(f"features hold [{names}] = {list(features.shape[-n:-1])} rows, expected {list(leading)}")

    def _squeeze(self, out: th.Tensor) -> th.Tensor:
        return out[0] if self.n_towers == 1 else out

    def _check_memory(self, memory: MemoryState) -> None:
        if memory.vectors.shape[1] != self.active_towers:
            raise ValueError(f"memory holds {memory.vectors.shape[1]} tower(s), the backbone computes {self.active_towers}")
        slots = self.config.slots_per_layer
        if memory.vectors.shape[3] != slots or memory.timestamps.shape[-1] != slots:
            raise ValueError(
                f"memory holds {memory.vectors.shape[3]} slots per layer, the backbone's config has {slots} "
                f"(n_slots {self.config.n_slots}, read_previous_segment {self.config.read_previous_segment})"
            )

    def plan(self, timesteps: th.Tensor, timestamps: th.Tensor) -> SegmentPlan:
        """
        The :class:`SegmentPlan` of a block layout (see :meth:`forward`): a loop over blocks on integer
        tensors only (the LRU rule needs timestamps, never vectors).

        :param timesteps: ``[batch, n_blocks * K]`` int64, -1 = padding.
        :param timestamps: ``[batch, L, S]`` slot timestamps before the first block.
        """
        c = self.config
        batch, m = timesteps.shape[0], c.n_slots
        steps = timesteps.view(batch, -1, c.segment_len).transpose(0, 1).contiguous()  # [blocks, batch, K]
        complete = steps[:, :, -1] >= 0
        slot_times, plans = [], []
        for block_steps, block_complete in zip(steps, complete, strict=True):
            timestamps = timestamps.masked_fill((block_steps[:, 0] == 0).view(-1, 1, 1), EMPTY)
            slot_times.append(timestamps)
            # Without a write path nothing is ever written into the memory slots.
            writes = block_complete & c.use_write
            plan = lru_plan(timestamps[..., :m], block_steps[:, -1], c.lru_lambda, c.use_lru, complete=writes)
            after = plan.timestamps
            if c.read_previous_segment:
                # The previous-segment slots take the steps of a completed segment.
                tokens = block_steps.unsqueeze(1).expand(-1, c.n_layers, -1)
                kept = timestamps[..., m : c.read_slots]
                after = th.cat([after, th.where(block_complete.view(-1, 1, 1), tokens, kept)], dim=-1)
            if c.token_shift:
                # The shift slot takes the last real step of the block (its valid steps are a prefix).
                last = block_steps.max(-1).values.view(-1, 1, 1)
                after = th.cat([after, th.where(last >= 0, last, timestamps[..., -1:]).expand(-1, c.n_layers, 1)], dim=-1)
            plans.append(LruPlan(plan.keep, plan.take, after))
            timestamps = after
        slot_time = th.stack(slot_times)
        occupied = slot_time >= 0
        dtype = self.input_proj.weight.dtype
        return SegmentPlan(
            steps=steps,
            reset=steps[:, :, 0] == 0,
            complete=complete,
            occupied=occupied,
            any_slot=occupied[..., : c.read_slots].any(-1).to(dtype)[..., None, None],
            bucket=distance_buckets(steps.clamp(min=0), slot_time, self._boundaries),
            lru=LruPlan(*(th.stack([getattr(p, f) for p in plans]) for f in ("keep", "take", "timestamps"))),
        )

    def _commit(
        self, vectors: list[th.Tensor], plan: SegmentPlan, block: int, outputs: list[th.Tensor], write_bias: list
    ) -> list[th.Tensor]:
        """
        Memory track of every layer for one block (layer l writes only its own slots); with
        ``read_previous_segment`` a completed block's token states also replace the previous-segment slots.
        Returns the :attr:`~ElmurConfig.read_slots` of every layer (the token-shift slot is the caller's).
        """
        lru, m, r = plan.lru, self.config.n_slots, self.config.read_slots
        complete = plan.complete[block].view(1, -1, 1, 1)
        new = []
        for index, layer in enumerate(self.layers):
            slots = vectors[index]
            written = layer.memory_track(
                slots[:, :, :m],
                plan.occupied[block, :, index, :m, None],
                outputs[index],
                write_bias[index][:, block] if write_bias[index] is not None else None,
                LruPlan(lru.keep[block, :, index], lru.take[block, :, index], lru.timestamps[block, :, index, :m]),
            )
            if self.config.read_previous_segment:
                previous = th.where(complete, layer.previous_segment(outputs[index]), slots[:, :, m:r])
                written = th.cat([written, previous], dim=2)
            new.append(written)
        return new

    def _write_biases(self, plan: SegmentPlan) -> list:
        """Per layer: the write bias of every block over the memory slots, ``[G, blocks, batch, M, K, H]`` (or None)."""
        m = self.config.n_slots
        return [
            layer.write.bias(plan.bucket[:, :, index, :, :m], plan.valid) if layer.write is not None else None
            for index, layer in enumerate(self.layers)
        ]

    def _memory_state(self, vectors: list[th.Tensor], timestamps: th.Tensor) -> MemoryState:
        """Per-layer ``[G, batch, M, d]`` vectors back into a :class:`MemoryState`."""
        return MemoryState(th.stack(vectors, dim=2).transpose(0, 1), timestamps)

    def _block_biases(self, plan: SegmentPlan) -> tuple[list[th.Tensor], list, list]:
        """Per layer: the self-attention bias ``[G, 1, K, K, H]`` and the read and write biases of all blocks."""
        self_bias, read_bias, r = [], [], self.config.read_slots
        for index, layer in enumerate(self.layers):
            self_bias.append(layer.self_attn.position_bias().unsqueeze(1))
            bucket, occupied = plan.bucket[:, :, index, :, :r], plan.occupied[:, :, index, :r]
            read_bias.append(layer.read.bias(bucket, occupied) if layer.read is not None else None)
        return self_bias, read_bias, self._write_biases(plan)

    # ------------------------------------------------------------------ parallel path (training)
    def forward(self, *args: Any, **kwargs: Any) -> tuple[th.Tensor, MemoryState | None]:
        """
        Run whole segments in parallel: :meth:`forward_towers` with the same arguments; a single-tower
        backbone returns ``[batch, n_blocks * K, d_model]``.
        """
        out, memory = self.forward_towers(*args, **kwargs)
        return self._squeeze(out), memory

    def forward_towers(
        self,
        features: th.Tensor,
        timesteps: th.Tensor,
        memory: MemoryState | None = None,
        memory_bptt: int | None = -1,
        check_layout: bool = True,
        final_memory: bool = True,
    ) -> tuple[th.Tensor, MemoryState | None]:
        """
        Run whole segments in parallel.

        Row ``b`` is a sequence of blocks of K steps; block position ``j`` holds the step with
        ``t % K == j`` (see :mod:`sb3_elmur.elmur.segment`). A block whose first step is ``t = 0``
        starts a new episode (memory emptied first). Memory is committed after each block whose last
        position is a real step; partial blocks (an episode that ended) commit nothing.

        :param features: ``[batch, n_blocks * K, in_features]`` (all towers) or ``[G, batch, n_blocks * K, in_features]``.
        :param timesteps: ``[batch, n_blocks * K]`` int64 absolute step in the episode, -1 = padding.
        :param memory: Memory at the start of the first block (default: empty).
        :param memory_bptt: Segments that gradient may cross through memory (``None``: no limit,
            ``1``: detached at every segment start); ``-1`` (default) uses ``config.memory_bptt``.
        :param check_layout: Validate the block layout (cheap; raises ``ValueError`` naming the problem).
        :param final_memory: Compute the memory after the last block; without it (PPO's loss does not use it)
            the last block's commit is skipped and None is returned in its place.
        :return: Token states ``[G, batch, n_blocks * K, d_model]`` (padding positions hold unused values)
            and the memory after the last block.
        """
        c = self.config
        if timesteps.dim() != 2:
            raise ValueError(f"timesteps must have shape [batch, time], got {tuple(timesteps.shape)}")
        self._check_features(features, tuple(timesteps.shape), "batch, time")
        if check_layout:
            validate_segment_layout(timesteps, c.segment_len)
        bptt = c.memory_bptt if memory_bptt == -1 else memory_bptt
        batch, length = timesteps.shape
        if memory is None:
            memory = self.initial_memory(batch)
        self._check_memory(memory)
        plan = self.plan(timesteps, memory.timestamps)
        # Padding never reaches a real token, whatever the caller put there (even NaN).
        hidden = self._project(features, 3).masked_fill((timesteps < 0).unsqueeze(-1), 0.0)
        biases = self._block_biases(plan)
        vectors = [memory.layer(index) for index in range(c.n_layers)]
        outputs = []
        n_blocks = length // c.segment_len
        for block in range(n_blocks):
            reset = plan.reset[block].view(-1, 1, 1)
            vectors = [v.masked_fill(reset, 0.0) for v in vectors]
            if bptt is not None and block > 0 and block % bptt == 0:
                vectors = [v.detach() for v in vectors]
            window = slice(block * c.segment_len, (block + 1) * c.segment_len)
            commit = final_memory or block < n_blocks - 1
            out, vectors, _ = self._block(hidden[:, :, window], vectors, plan, block, biases, commit)
            outputs.append(out)
        memory = self._memory_state(vectors, plan.lru.timestamps[-1]) if final_memory else None
        return th.cat(outputs, dim=2), memory

    def compile_parallel(
        self, dynamic_batch: bool = False, backend: str | Callable = "inductor"
    ) -> Callable[..., tuple[th.Tensor, MemoryState | None]]:
        """
        :meth:`forward_towers` through ``torch.compile`` (the same arguments; call it with ``check_layout=False``:
        the check is data-dependent). A new compiled function per call.

        :param dynamic_batch: Calls have varying numbers of rows (behaviour cloning's packed rows): the batch size is
            symbolic from the first compilation on, one compilation for every size (torch's default would compile
            the first size, then again with a symbolic size at the second). Otherwise the shapes are fixed (PPO's
            minibatches all have the same size) and another size compiles again.
        :param backend: ``torch.compile``'s backend.
        """
        compiled = th.compile(self.forward_towers, dynamic=None if dynamic_batch else False, backend=backend)
        if not dynamic_batch:
            return compiled

        def forward(
            features: th.Tensor, timesteps: th.Tensor, memory: MemoryState | None = None, *args: Any, **kwargs: Any
        ) -> tuple[th.Tensor, MemoryState | None]:
            # The batch: dimension 0 of the times and the memory, 0 or (towers first) 1 of the features.
            th._dynamo.maybe_mark_dynamic(features, 1 if features.dim() == 4 else 0)
            for tensor in (timesteps, *((memory.vectors, memory.timestamps) if memory is not None else ())):
                th._dynamo.maybe_mark_dynamic(tensor, 0)
            return compiled(features, timesteps, memory, *args, **kwargs)

        return forward

    def _block(
        self,
        hidden: th.Tensor,
        vectors: list[th.Tensor],
        plan: SegmentPlan,
        block: int,
        biases: tuple[list, list, list],
        commit: bool = True,
    ) -> tuple[th.Tensor, list[th.Tensor], list[tuple[th.Tensor, th.Tensor, th.Tensor]]]:
        """
        One block of K positions in parallel: token track of every layer, then the commit (if asked). Returns the
        final token states, the per-layer memory after the block, and per layer the keys, values and
        outputs of the block (what the streaming cache holds).
        """
        self_bias, read_bias, write_bias = biases
        r = self.config.read_slots
        captured: list[tuple[th.Tensor, th.Tensor, th.Tensor]] = []
        h, layer_inputs, layer_outputs = hidden, [], []
        for index, layer in enumerate(self.layers):
            kv: list[th.Tensor] = []

            def kv_hook(key: th.Tensor, value: th.Tensor, kv: list = kv) -> tuple[th.Tensor, th.Tensor]:
                kv[:] = [key, value]
                return key, value

            read = read_bias[index][:, block] if read_bias[index] is not None else None
            occupied, any_slot = plan.occupied[block, :, index, :r], plan.any_slot[block, :, index]
            # With token shift every position sees the layer's input one step back (block position 0: the state's).
            previous = th.cat([vectors[index][:, :, r:], h[:, :, :-1]], dim=2) if self.config.token_shift else None
            layer_inputs.append(h)
            h = layer.token_track(h, kv_hook, self_bias[index], vectors[index][:, :, :r], occupied, read, any_slot, previous)
            layer_outputs.append(h)
            captured.append((kv[0], kv[1], h))
        if commit:
            read_slots = self._commit(vectors, plan, block, layer_outputs, write_bias)
        else:
            read_slots = [v[:, :, :r] for v in vectors]
        if self.config.token_shift:
            # The shift slot takes each layer's input at the block's last real step (valid steps are a prefix).
            last = plan.valid[block].sum(-1) - 1  # [batch]
            index = last.clamp(min=0).view(1, -1, 1, 1).expand(h.shape[0], -1, 1, h.shape[-1])
            seen = (last >= 0).view(1, -1, 1, 1)
            shift = [th.where(seen, x.gather(2, index), v[:, :, r:]) for x, v in zip(layer_inputs, vectors, strict=True)]
            read_slots = [th.cat(pair, dim=2) for pair in zip(read_slots, shift, strict=True)]
        return self.final_norm(h), read_slots, captured

    def prefill(self, features: th.Tensor, memory: MemoryState, segment_start: th.Tensor, length: th.Tensor) -> StreamState:
        """
        Streaming state of episodes that stand ``length`` steps into a segment, rebuilt from the
        observations of those steps and the memory committed before the segment (for example after
        the parameters changed, so that acting continues with caches of the current parameters).

        :param features: ``[batch, K, in_features]`` (or per tower ``[G, batch, K, in_features]``); row ``b``
            holds the segment's first ``length[b]`` steps.
        :param memory: Memory at the segment start.
        :param segment_start: ``[batch]`` absolute step of the segment's first step (a multiple of K).
        :param length: ``[batch]`` steps already taken in the segment, ``0 <= length < K``.
        """
        c = self.config
        if ((length < 0) | (length >= c.segment_len)).any() or (segment_start % c.segment_len != 0).any():
            raise ValueError("prefill needs 0 <= length < K and segment_start a multiple of K")
        steps = segment_start.unsqueeze(1) + self._positions
        steps = steps.masked_fill(self._positions >= length.unsqueeze(1), -1)
        self._check_features(features, tuple(steps.shape), "batch, K")
        plan = self.plan(steps, memory.timestamps)
        hidden = self._project(features, 3).masked_fill((steps < 0).unsqueeze(-1), 0.0)
        vectors = [memory.layer(index) for index in range(c.n_layers)]
        _, vectors, captured = self._block(hidden, vectors, plan, 0, self._block_biases(plan), commit=False)
        keep = (steps >= 0)[:, None, None, :, None]  # [batch, 1, 1, K, 1]
        cache = [th.stack([layer[i] for layer in captured], dim=2).transpose(0, 1).masked_fill(~keep, 0.0) for i in range(3)]
        # Nothing is committed inside a segment; only a token-shift slot moves on to the prefix's last step.
        return StreamState(self._memory_state(vectors, plan.lru.timestamps[0]), (segment_start + length).cpu(), *cache)

    # ------------------------------------------------------------------ streaming path (acting)
    def _cache_writer(
        self, rows: th.Tensor, position: th.Tensor, branch_free: bool
    ) -> Callable[[th.Tensor, int, th.Tensor], th.Tensor]:
        """
        How a step stores its entry of layer ``index`` into a cache ``[batch, G, L, K, d]`` at each row's position:
        in place (indexed write), or branch-free by a mask (a new tensor, for export).

        :param rows: ``[batch]`` row indices.
        :param position: ``[batch]`` position of the step in its segment.
        :param branch_free: Write by a mask.
        """
        if not branch_free:

            def write_in_place(cache: th.Tensor, index: int, entry: th.Tensor) -> th.Tensor:
                cache[rows, :, index, position] = entry.transpose(0, 1)
                return cache

            return write_in_place
        layers = th.arange(self.config.n_layers, device=position.device)
        at_position = (self._positions == position.unsqueeze(1))[:, None, None, :, None]  # [batch, 1, 1, K, 1]

        def write_by_mask(cache: th.Tensor, index: int, entry: th.Tensor) -> th.Tensor:
            where = at_position & (layers == index)[:, None, None]
            return th.where(where, entry.transpose(0, 1)[:, :, None, None], cache)

        return write_by_mask

    def step(
        self, features: th.Tensor, state: StreamState, episode_start: th.Tensor | None = None, branch_free: bool = False
    ) -> tuple[th.Tensor, StreamState]:
        """
        Advance every episode by one step (see :meth:`step_towers`); a single-tower backbone returns
        ``[batch, d_model]``.
        """
        out, state = self.step_towers(features, state, episode_start, branch_free)
        return self._squeeze(out), state

    def compile_step(self, options: dict[str, bool] | None = None) -> "CompiledStep":
        """
        A new compiled acting step (see :class:`CompiledStep`): :meth:`step_towers` with ``branch_free=True``
        through ``torch.compile``, as two graphs without breaks (no per-step decisions on the host inside them; a
        test checks it): one for the steps at which a row completes its segment and goes through the commit, one
        for the other steps. Each is compiled at its first call, and once more with a dynamic batch size when the
        batch size changes; keep the returned callable. Past torch's recompilation limit (many backbones or
        shapes in one process) it runs eagerly, as torch does. Like the branch-free step, it does not modify the
        given state.

        The 10^6-step stream runs at 0.36-0.38x the first published stream's time per step, measured side by side
        (benchmarks/speed_against_revision.py). With one graph that commits at every step it was 0.53x. Inductor's
        C++ wrapper (:data:`STEP_COMPILE_OPTIONS`) calls the step's many small kernels from C++ instead of Python;
        before the split it gave 0.50x, against 0.67x without it.

        :param options: Inductor options in place of :data:`STEP_COMPILE_OPTIONS` (e.g. to measure the default wrapper).
        """
        return CompiledStep(self, STEP_COMPILE_OPTIONS if options is None else options)

    def completes_segment(self, state: StreamState, episode_start: th.Tensor | None = None) -> bool | None:
        """
        Whether the next step completes the segment of a row (after the resets of ``episode_start``), decided on
        the host from the step counters; None when the reset flags are on another device (reading them would
        wait for it).
        """
        step = state.step
        if episode_start is not None:
            if episode_start.device.type != "cpu":
                return None
            step = step.masked_fill(episode_start.to(th.bool).view(-1), 0)
        return bool((step % self.config.segment_len == self.config.segment_len - 1).any())

    def step_towers(
        self,
        features: th.Tensor,
        state: StreamState,
        episode_start: th.Tensor | None = None,
        branch_free: bool = False,
        commit: bool | None = None,
    ) -> tuple[th.Tensor, StreamState]:
        """
        Advance every episode of the batch by one step.

        :param features: ``[batch, in_features]`` input of the current step (all towers), or ``[G, batch, in_features]``.
        :param state: State from :meth:`initial_state` or a previous call. Its caches are updated in
            place; use :meth:`StreamState.clone` to keep an old state.
        :param episode_start: ``[batch]`` bool; True starts a new episode for that row before the step (best on
            the CPU, like the step counters: then no step waits for the GPU).
        :param branch_free: The same step without data-dependent control flow or in-place writes, for export
            (ONNX): every row is reset through a mask and goes through the commit (whose plan leaves rows
            inside a segment unchanged), the caches are rebuilt rather than written in place (the given
            state is not modified).
        :param commit: Whether the step goes through the memory track. None: when a row completes its segment
            (at every step with ``branch_free``); True: always (the plan leaves the other rows unchanged); False:
            never, for a step at which no row completes its segment (the caller checks it, see
            :meth:`completes_segment`; :class:`CompiledStep` does).
        :return: Token states ``[G, batch, d_model]`` of this step and the new state.
        """
        c = self.config
        self._check_features(features, (state.batch_size,), "batch")
        if branch_free:
            state = StreamState(state.memory, state.step, state.keys, state.values, state.outputs)
        if episode_start is not None:
            episode_start = episode_start.to(th.bool).view(-1)
            if branch_free or episode_start.cpu().any():
                state = self.reset_state(state, episode_start)
        rows = th.arange(state.batch_size, device=features.device)
        memory, device = state.memory, features.device
        host_position = state.step % c.segment_len
        step, position = state.step.to(device, non_blocking=True), host_position.to(device, non_blocking=True)
        r = c.read_slots
        occupied = memory.timestamps[..., :r] >= 0  # [batch, L, R]
        any_slot = occupied.any(-1).to(features.dtype)[..., None, None]
        bucket = distance_buckets(step.unsqueeze(1), memory.timestamps[..., :r], self._boundaries)  # [batch, L, 1, R]
        h = self._project(features, 2).unsqueeze(-2)  # [G, batch, 1, d]
        write = self._cache_writer(rows, position, branch_free)
        layer_inputs = []
        for index, layer in enumerate(self.layers):

            def kv_hook(key: th.Tensor, value: th.Tensor, index: int = index) -> tuple[th.Tensor, th.Tensor]:
                # Positions after the current one hold stale entries; the causal bias masks them.
                state.keys = write(state.keys, index, key[:, :, 0])
                state.values = write(state.values, index, value[:, :, 0])
                return state.keys[:, :, index].transpose(0, 1), state.values[:, :, index].transpose(0, 1)

            self_bias = layer.self_attn.position_bias()[:, position].unsqueeze(2)  # [G, batch, 1, K, H]
            read_bias = layer.read.bias(bucket[:, index], occupied[:, index]) if layer.read is not None else None
            slots = memory.layer(index)
            layer_inputs.append(h)
            previous = slots[:, :, r:] if c.token_shift else None  # the layer's input at the previous step
            read_slots, read_occupied = slots[:, :, :r], occupied[:, index]
            h = layer.token_track(h, kv_hook, self_bias, read_slots, read_occupied, read_bias, any_slot[:, index], previous)
            state.outputs = write(state.outputs, index, h[:, :, 0])
        out = self.final_norm(h[:, :, 0])

        host_complete = host_position == c.segment_len - 1
        if commit is None:
            commit = branch_free or bool(host_complete.any())
        if commit:
            # Every row goes through the memory track; the plan commits only the rows whose segment is complete
            # (the others get a padded last position).
            token_time = (step - position).unsqueeze(1) + self._positions
            incomplete = (~host_complete).to(device, non_blocking=True)
            plan = self.plan(
                token_time.masked_fill(incomplete.unsqueeze(1) & (self._positions == c.segment_len - 1), -1), memory.timestamps
            )
            write_bias = self._write_biases(plan)
            outputs = [state.outputs[:, :, index].transpose(0, 1) for index in range(c.n_layers)]
            vectors = self._commit([memory.layer(i) for i in range(c.n_layers)], plan, 0, outputs, write_bias)
            memory = self._memory_state(vectors, plan.lru.timestamps[0][..., :r])  # the read slots (the shift's below)
        if c.token_shift:
            # The shift slot moves on every step: this step's layer inputs, with this step as their timestamp.
            inputs = th.stack(layer_inputs, dim=2).transpose(0, 1)  # [batch, G, L, 1, d]
            vectors = th.cat([memory.vectors[:, :, :, :r], inputs], dim=3)
            now = step.view(-1, 1, 1).expand(-1, c.n_layers, 1)
            memory = MemoryState(vectors, th.cat([memory.timestamps[..., :r], now], dim=-1))
        if memory is not state.memory:
            state = StreamState(memory, state.step, state.keys, state.values, state.outputs)
        state.step = state.step + 1
        if branch_free:  # one layout whatever the graph made: a compiled step is not recompiled for other strides
            state = StreamState.from_tensors(tuple(t.contiguous() for t in state.tensors()))
        return out, state


class CompiledStep:
    """
    The compiled acting step of :meth:`ElmurBackbone.compile_step`: the branch-free step as two graphs, one that
    goes through the commit and one for the steps at which no row completes its segment (K - 1 of every K steps
    of a stream), picked on the host from the step counters, which live on the CPU. With reset flags on another
    device it takes the commit graph, which is right for every step, so that no step waits for the device.

    :param net: The backbone.
    :param options: Inductor options of both graphs.
    """

    def __init__(self, net: ElmurBackbone, options: dict[str, bool]) -> None:
        self.net = net
        # Two functions of their own, so that each graph has its own entries in torch's recompilation limit.
        self.within_segment = th.compile(self._step_within_segment, options=options)
        self.completing_segment = th.compile(self._step_completing_segment, options=options)

    def _step_within_segment(
        self, features: th.Tensor, state: StreamState, episode_start: th.Tensor | None
    ) -> tuple[th.Tensor, StreamState]:
        return self.net.step_towers(features, state, episode_start, branch_free=True, commit=False)

    def _step_completing_segment(
        self, features: th.Tensor, state: StreamState, episode_start: th.Tensor | None
    ) -> tuple[th.Tensor, StreamState]:
        return self.net.step_towers(features, state, episode_start, branch_free=True, commit=True)

    def __call__(
        self, features: th.Tensor, state: StreamState, episode_start: th.Tensor | None = None
    ) -> tuple[th.Tensor, StreamState]:
        """One acting step (see :meth:`ElmurBackbone.step_towers`); the given state is not modified."""
        # One layout for the graphs' inputs as for their outputs: views of a larger state (e.g. one tower's) would
        # each cost a recompilation.
        state = StreamState.from_tensors(tuple(t.contiguous() for t in state.tensors()))
        if self.net.completes_segment(state, episode_start) is False:
            return self.within_segment(features, state, episode_start)
        return self.completing_segment(features, state, episode_start)
