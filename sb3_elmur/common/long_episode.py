"""Drive one long episode through a backbone and measure streaming latency and memory use along the way."""

from dataclasses import dataclass

import numpy as np
import torch as th
from tqdm.auto import tqdm

from sb3_elmur.common.profiling import rss_mib, time_calls
from sb3_elmur.elmur import ElmurBackbone, StreamState


@dataclass
class LatencyRow:
    """Measurements taken at one point of the episode."""

    step: int
    median_ms: float
    p90_ms: float
    state_kib: float
    rss_mib: float


class LongEpisode:
    """
    A batch of episodes fed with random observations, advanced by the streaming path or, between
    checkpoints, by the parallel path segment by segment (the same function, see the tests).

    :param net: The backbone.
    :param batch_size: Episodes run side by side.
    :param seed: Seed of the random observations.
    :param compiled: Stream through the backbone's compiled branch-free step
        (:meth:`~sb3_elmur.elmur.ElmurBackbone.compile_step`) instead of the eager step.
    """

    def __init__(self, net: ElmurBackbone, batch_size: int = 1, seed: int = 0, compiled: bool = False) -> None:
        self.net = net
        self._step = net.compile_step() if compiled else net.step_towers
        self.k = net.config.segment_len
        generator = th.Generator().manual_seed(seed)
        self.pool = th.randn(4096, batch_size, net.in_features, generator=generator)
        self.state: StreamState = net.initial_state(batch_size)
        self.nan_seen = False

    @property
    def t(self) -> int:
        return int(self.state.step[0])

    def _features(self, start: int, length: int) -> th.Tensor:
        return self.pool[th.arange(start, start + length) % self.pool.shape[0]]  # [length, batch, in]

    def stream(self, n_steps: int) -> None:
        """Act ``n_steps`` steps one at a time."""
        for _ in range(n_steps):
            out, self.state = self._step(self._features(self.t, 1)[0], self.state, None)
            self.nan_seen |= not bool(th.isfinite(out).all())

    def fast_forward(self, target: int, chunk_segments: int = 200, progress: tqdm | None = None) -> None:
        """Finish the current segment by streaming, then advance to the segment start at or before ``target`` in parallel."""
        start = self.t
        self.stream(min((-self.t) % self.k, max(target - self.t, 0)))
        memory = self.state.memory
        batch = self.state.batch_size
        while target - self.t >= self.k:
            length = min(chunk_segments, (target - self.t) // self.k) * self.k
            steps = th.arange(self.t, self.t + length).expand(batch, -1)
            features = self._features(self.t, length).transpose(0, 1)
            out, memory = self.net(features, steps, memory=memory, check_layout=False)
            self.nan_seen |= not bool(th.isfinite(out).all())
            self.state = self.net.state_at_segment_start(memory, steps[:, -1] + 1)
            if progress is not None:
                progress.update(self.t - start)
                start = self.t
        if progress is not None:
            progress.update(self.t - start)

    def measure(self, checkpoints: list[int], timed_steps: int = 100, stream_all: bool = False) -> list[LatencyRow]:
        """
        Reach each checkpoint and time ``timed_steps`` streaming steps there (a checkpoint that the
        previous timing already passed is measured where the episode stands).

        :param checkpoints: Steps at which to measure.
        :param timed_steps: Streaming steps timed per checkpoint.
        :param stream_all: Stream every step instead of fast-forwarding with the parallel path.
        """
        rows = []
        checkpoints = sorted(checkpoints)
        with th.inference_mode(), tqdm(total=checkpoints[-1], unit="step", unit_scale=True, desc="episode") as progress:
            for checkpoint in checkpoints:
                if not stream_all:
                    self.fast_forward(checkpoint, progress=progress)
                before = self.t
                self.stream(max(checkpoint - self.t, 0))
                progress.update(self.t - before)
                at = self.t
                latency = time_calls(lambda: self.stream(1), repeats=timed_steps, warmup=0) * 1e3
                rows.append(
                    LatencyRow(
                        at, float(np.median(latency)), float(np.percentile(latency, 90)), self.state.nbytes() / 1024, rss_mib()
                    )
                )
        return rows


def latency_table(rows: list[LatencyRow]) -> str:
    """Markdown table of the measurements."""
    lines = ["| t | median ms/step | p90 ms/step | state KiB | process RSS MiB |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.step:,} | {r.median_ms:.3f} | {r.p90_ms:.3f} | {r.state_kib:.1f} | {r.rss_mib:.1f} |" for r in rows]
    return "\n".join(lines)
