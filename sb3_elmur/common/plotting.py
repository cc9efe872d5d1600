"""
Pictures: the memory timeline of a recorded episode (which slot each layer wrote at which segment end, slot ages, the
read-attention mass on each slot at every step), and learning curves for the benchmark scripts. matplotlib is
imported only when a picture is drawn (the ``extra`` extra).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_elmur.common.policies import ElmurActorCriticPolicy


@dataclass
class MemoryTimeline:
    """
    What the actor's memory did during one recorded episode (one env).

    :param segment_len: K.
    :param timestamps: ``[T, L, M]`` slot timestamps after each step (-1 = empty).
    :param read_mass: ``[T, L, M]`` read-attention weight of each slot at each step (actor tower, mean over heads; 0
        for empty slots, so each row sums to 1 once a slot is written and to 0 before).
    :param rewards: ``[T]`` rewards.
    :param actions: ``[T, ...]`` actions taken.
    :param events: Named steps to mark in the picture (e.g. ``{"cue": 0, "junction": 100}``).
    """

    segment_len: int
    timestamps: np.ndarray
    read_mass: np.ndarray
    rewards: np.ndarray
    actions: np.ndarray
    events: dict[str, int] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.timestamps.shape[0]

    def writes(self) -> list[tuple[int, int, int]]:
        """``(step, layer, slot)`` of every slot write (at the last step of each completed segment)."""
        before = np.concatenate([np.full((1, *self.timestamps.shape[1:]), -1), self.timestamps[:-1]])
        return [(int(t), int(layer), int(slot)) for t, layer, slot in np.argwhere(self.timestamps != before)]

    def ages(self) -> np.ndarray:
        """``[T, L, M]`` steps since each slot was last written, NaN for empty slots."""
        steps = np.arange(self.n_steps)[:, None, None]
        return np.where(self.timestamps >= 0, steps - self.timestamps, np.nan).astype(float)


def record_memory_timeline(
    model: BaseAlgorithm | ElmurActorCriticPolicy,
    env: gym.Env,
    seed: int | None = None,
    max_steps: int = 100_000,
    deterministic: bool = True,
    events: dict[str, int] | None = None,
) -> MemoryTimeline:
    """
    Run one episode with the policy (acting step by step, as ``predict``) and record its memory.

    :param model: An ElmurPPO model or an ELMUR policy.
    :param env: A gymnasium env (not vectorized).
    :param seed: Seed of the episode's ``reset``.
    :param max_steps: Stop after this many steps if the episode has not ended.
    :param deterministic: Greedy actions.
    :param events: Named steps to mark in the picture.
    """
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    if not isinstance(policy, ElmurActorCriticPolicy):
        raise TypeError(f"record_memory_timeline needs an ELMUR policy, got {type(policy).__name__}")
    reads = [layer.read for layer in policy.backbone.layers]
    timestamps, mass, rewards, actions = [], [], [], []
    obs, _ = env.reset(seed=seed)
    state, start = None, np.ones(1, dtype=bool)
    for read in reads:
        if read is not None:
            read.captured_weights = []
    try:
        for _ in range(max_steps):
            action, state = policy.predict_stream(_batch_of_one(obs), state, start, deterministic)
            n_slots = policy.elmur_config.read_slots  # what the read sees (not the token-shift slot)
            step_mass = []
            for index, read in enumerate(reads):
                if read is None or not read.captured_weights:
                    step_mass.append(th.zeros(n_slots))
                    continue
                weights = read.captured_weights.pop()[0, 0, 0].mean(-1)  # actor tower, env 0, the step's token: [M]
                read.captured_weights.clear()
                step_mass.append(weights.cpu() * _read_mask(timestamps, index, n_slots))
            mass.append(th.stack(step_mass).numpy())
            timestamps.append(state.memory.timestamps[0, :, :n_slots].cpu().numpy().copy())
            obs, reward, terminated, truncated, _ = env.step(action[0])
            rewards.append(float(reward))
            actions.append(np.asarray(action[0]))
            start = np.zeros(1, dtype=bool)
            if terminated or truncated:
                break
    finally:
        for read in reads:
            if read is not None:
                read.captured_weights = None
    return MemoryTimeline(
        segment_len=policy.segment_len,
        timestamps=np.array(timestamps),
        read_mass=np.array(mass),
        rewards=np.array(rewards),
        actions=np.array(actions),
        events=dict(events or {}),
    )


def _batch_of_one(obs: Any) -> Any:
    return {k: np.asarray(v)[None] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[None]


def _read_mask(timestamps: list[np.ndarray], layer: int, n_slots: int) -> th.Tensor:
    """Slots the step could read: those written before it (the timestamps after the previous step)."""
    if not timestamps:
        return th.zeros(n_slots)
    return th.as_tensor(timestamps[-1][layer] >= 0, dtype=th.float32)


def plot_memory_timeline(timeline: MemoryTimeline, path: str | Path, title: str | None = None) -> Path:
    """
    Save a memory timeline as PNG: per layer, the read-attention mass on each slot at every step (heat map) with the
    slot writes marked, and the age of each slot.

    :param timeline: From :func:`record_memory_timeline`.
    :param path: The PNG file.
    :param title: Figure title.
    :return: The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers, n_slots = timeline.timestamps.shape[1:]
    fig, axes = plt.subplots(2 * n_layers, 1, figsize=(10, 2.3 * n_layers + 1.6 * n_layers), squeeze=False, sharex=True)
    steps = np.arange(timeline.n_steps)
    writes = timeline.writes()
    ages = timeline.ages()
    for layer in range(n_layers):
        ax = axes[2 * layer][0]
        image = ax.imshow(timeline.read_mass[:, layer].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                          interpolation="nearest", extent=(-0.5, timeline.n_steps - 0.5, n_slots - 0.5, -0.5))  # fmt: skip
        written = [(t, s) for t, lay, s in writes if lay == layer]
        if written:
            ax.scatter(*zip(*written, strict=True), marker="v", s=18, color="white", edgecolors="black", linewidths=0.5,
                       label="slot written (segment end)")  # fmt: skip
        ax.set_yticks(range(n_slots), [f"slot {s}" for s in range(n_slots)], fontsize=7)
        ax.set_title(f"layer {layer}: read-attention mass per slot (colour) and writes (triangles)", fontsize=8)
        fig.colorbar(image, ax=ax, pad=0.01, fraction=0.02)
        age_ax = axes[2 * layer + 1][0]
        for slot in range(n_slots):
            age_ax.plot(steps, ages[:, layer, slot], label=f"slot {slot}", linewidth=1)
        age_ax.set_ylabel("age (steps)", fontsize=7)
        age_ax.legend(fontsize=6, ncol=n_slots, loc="upper left")
        age_ax.grid(alpha=0.3)
        for name, step in timeline.events.items():
            for target in (ax, age_ax):
                target.axvline(step, color="red", linewidth=0.8, linestyle="--")
            ax.annotate(name, (step, -0.5), xytext=(2, 2), textcoords="offset points", color="red", fontsize=7)
    axes[-1][0].set_xlabel(f"step of the episode (K = {timeline.segment_len}; return {timeline.rewards.sum():.2f})")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_learning_curves(ax: Any, curves: Sequence[Sequence[tuple[int, float]]], label: str, color: str | None = None) -> None:
    """
    Draw the mean over runs of evaluation curves against steps, with the min-max band, on a matplotlib axis (runs
    whose evaluation steps differ from the first run's are left out).

    :param ax: The axis.
    :param curves: One list of ``(steps, value)`` per run.
    :param label: Legend label.
    :param color: Line colour.
    """
    if not curves:
        return
    steps = np.array([s for s, _ in curves[0]])
    values = np.array([[v for _, v in curve] for curve in curves if len(curve) == len(steps)])
    line = ax.plot(steps, values.mean(0), color=color, label=label)[0]
    if len(values) > 1:
        ax.fill_between(steps, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)
