"""
T-Maze evaluation with the policy run over whole chunks of steps at once (exact, and fast enough for
corridors of 10^6 steps).

Acting one step at a time costs one forward pass per step. Here the policy acts on a chunk of C steps
in one forward pass (ELMUR's parallel path over whole segments, the LSTM's sequence kernel, a batched
MLP), by *speculative rollout*:

1. guess the chunk's actions (go right),
2. simulate the T-Maze dynamics (:func:`~sb3_elmur.envs.tmaze.tmaze_step`) to get the observations those
   actions lead to,
3. run the policy on those observations: if its greedy actions equal the guess at every step where the
   episode is still running, the chunk is exactly what step-by-step acting would have produced; otherwise
   take the policy's actions as the new guess and repeat.

The policy is causal, so each round fixes at least one more step (at most C + 1 rounds; in practice 1,
and 2 in the chunk where the agent turns). The result is the same trajectory as stepping a
:class:`~sb3_elmur.envs.tmaze.TMazeVecEnv` with greedy actions (up to the float rounding between the
parallel and the streaming path, ~1e-6; see the tests).
"""

from dataclasses import dataclass, field

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from tqdm.auto import tqdm

from sb3_elmur.common.policies import ElmurActorCriticPolicy
from sb3_elmur.common.sequence import Carry, actor_sequence, check_sequence_policy
from sb3_elmur.envs.tmaze import OBS_DIM, RIGHT, TMazeVecEnv, _check_length_range, tmaze_step


@dataclass
class ParallelEvaluation:
    """
    Outcome of :func:`evaluate_tmaze_parallel`.

    :param success_rate: Fraction of episodes that ended in the goal arm.
    :param successes: ``[n_episodes]`` bool, per episode.
    :param episode_lengths: ``[n_episodes]`` steps each episode lasted.
    :param forward_passes: Policy forward passes (over a chunk of the batch) that were run.
    :param chunks: Chunks that were accepted (forward passes minus the repeated rounds).
    :param trajectories: With ``record=True``: per batch, the observations ``[n, T, 4]`` and actions ``[n, T]``
        of every step (for checking against step-by-step acting).
    """

    success_rate: float
    successes: np.ndarray
    episode_lengths: np.ndarray
    forward_passes: int = 0
    chunks: int = 0
    trajectories: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass
class _Mazes:
    """State of a batch of mazes between chunks."""

    x: np.ndarray
    elapsed: np.ndarray
    alive: np.ndarray
    success: np.ndarray
    observation: np.ndarray  # the next input of the policy


def _simulate(
    mazes: _Mazes, lengths: np.ndarray, goals: np.ndarray, actions: np.ndarray, noise: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, _Mazes]:
    """Observations ``[n, C, 4]`` that ``actions`` ``[n, C]`` lead to, where each episode runs, and the state after."""
    n, length = actions.shape
    observations = np.empty((n, length, OBS_DIM), dtype=np.float32)
    running = np.empty((n, length), dtype=bool)
    x, elapsed, alive, success, current = mazes.x, mazes.elapsed, mazes.alive, mazes.success, mazes.observation
    for i in range(length):
        observations[:, i] = current
        running[:, i] = alive
        step = tmaze_step(x, elapsed, lengths, goals, actions[:, i], None if noise is None else noise[:, i])
        # Finished episodes stay as they ended.
        x = np.where(alive, step.x, x)
        elapsed = np.where(alive, step.elapsed, elapsed)
        success = success | (alive & step.success)
        current = np.where(alive[:, None], step.observations, current)
        alive = alive & ~(step.terminated | step.truncated)
    return observations, running, _Mazes(x, elapsed, alive, success, current)


def _policy_of(model: BaseAlgorithm | BasePolicy) -> BasePolicy:
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    check_sequence_policy(policy)
    return policy


def evaluate_tmaze_parallel(
    model: BaseAlgorithm | BasePolicy,
    corridor_length: int | tuple[int, int],
    n_episodes: int = 100,
    seed: int = 0,
    batch_size: int = 100,
    noise: bool = True,
    chunk_len: int | None = None,
    progress_bar: bool = False,
    record: bool = False,
) -> ParallelEvaluation:
    """
    Greedy success rate of a policy over ``n_episodes`` fixed-seed T-Maze episodes, acting a chunk of steps per
    forward pass (see the module docstring). Episode ``i`` of batch ``k`` has the goal and corridor length of
    env ``i`` of ``TMazeVecEnv(n, corridor_length, noise, seed=seed + k)`` after ``reset()``, as in
    :func:`~sb3_elmur.envs.tmaze.evaluate_tmaze`; the noise entries come from a generator seeded with
    ``(seed, k)``.

    :param model: An ElmurPPO / RecurrentPPO / PPO model, or its policy (ELMUR, sb3-contrib LSTM or SB3 MLP).
    :param corridor_length: Corridor length, or an inclusive ``(low, high)`` range.
    :param n_episodes: Number of episodes.
    :param seed: Seed of the first batch.
    :param batch_size: Maximum number of episodes run side by side.
    :param noise: Whether the observations contain the noise entry.
    :param chunk_len: Steps per forward pass (default: 1 segment K for ELMUR, 1000 otherwise); for ELMUR a
        multiple of K.
    :param progress_bar: Show a progress bar over the steps.
    :param record: Keep every observation and action (memory grows with the episode: short corridors only).
    :return: Success rate, per-episode outcomes and the work done.
    """
    policy = _policy_of(model)
    for name, value in (("n_episodes", n_episodes), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    max_steps = _check_length_range(corridor_length)[1] + 2
    is_elmur = isinstance(policy, ElmurActorCriticPolicy)
    if chunk_len is None:
        chunk_len = policy.segment_len if is_elmur else 1000
    if chunk_len < 1 or (is_elmur and chunk_len % policy.segment_len != 0):
        raise ValueError(f"chunk_len must be >= 1 (and a multiple of K for ELMUR policies), got {chunk_len}")
    policy.set_training_mode(False)
    result = ParallelEvaluation(0.0, np.zeros(n_episodes, dtype=bool), np.zeros(n_episodes, dtype=np.int64))
    progress = tqdm(total=n_episodes * max_steps, unit="step", unit_scale=True, disable=not progress_bar, desc="T-Maze")
    with th.inference_mode(), progress:
        for batch, start in enumerate(range(0, n_episodes, batch_size)):
            n = min(batch_size, n_episodes - start)
            env = TMazeVecEnv(n, corridor_length, noise=noise, seed=seed + batch)
            mazes = _Mazes(np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n, bool), np.zeros(n, bool), env.reset())
            lengths, goals = env.corridor_lengths, env.goals
            rng = np.random.default_rng((seed, batch))
            carry: Carry = None
            t = 0
            mask = th.ones(n, chunk_len, dtype=th.bool, device=policy.device)
            recorded: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            while mazes.alive.any():
                noise_chunk = rng.integers(-1, 2, size=(n, chunk_len)).astype(np.float32) if noise else None
                actions = np.full((n, chunk_len), RIGHT, dtype=np.int64)
                timesteps = th.arange(t, t + chunk_len, device=policy.device).expand(n, -1)
                for _ in range(chunk_len + 1):
                    observations, running, after = _simulate(mazes, lengths, goals, actions, noise_chunk)
                    obs = th.as_tensor(observations, device=policy.device)
                    distribution, new_carry = actor_sequence(policy, obs, timesteps, mask, carry)
                    greedy = distribution.mode().reshape(n, chunk_len).cpu().numpy().astype(np.int64)
                    result.forward_passes += 1
                    if np.array_equal(greedy[running], actions[running]):
                        break
                    actions = np.where(running, greedy, actions)
                else:  # pragma: no cover - causality makes every round fix at least one more step
                    raise RuntimeError("speculative T-Maze rollout did not converge")
                result.chunks += 1
                if record:
                    recorded.append((observations, actions, running))
                mazes, carry = after, new_carry
                t += chunk_len
                progress.update(min(n * chunk_len, progress.total - progress.n))
            result.successes[start : start + n] = mazes.success
            result.episode_lengths[start : start + n] = mazes.elapsed
            if record:
                observations, actions, running = (np.concatenate(parts, axis=1) for parts in zip(*recorded, strict=True))
                keep = int(running.sum(axis=1).max())
                result.trajectories.append((observations[:, :keep], np.where(running, actions, -1)[:, :keep]))
            env.close()
        progress.update(progress.total - progress.n)
    result.success_rate = float(result.successes.mean())
    return result


__all__ = ["ParallelEvaluation", "evaluate_tmaze_parallel"]
