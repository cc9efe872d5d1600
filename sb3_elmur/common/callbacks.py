"""Callbacks shared by the benchmarks."""

from abc import abstractmethod

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class EvaluateEvery(BaseCallback):
    """
    Calls :meth:`evaluate` at the end of the first rollout past every multiple of ``eval_freq`` environment steps
    and at the end of training (once per step count), so that one ``learn`` call yields a learning curve; subclasses
    say how to evaluate and record what they measure (and the time it took, to subtract from the training time).

    :param eval_freq: Environment steps between evaluations.
    """

    def __init__(self, eval_freq: int) -> None:
        super().__init__()
        self.eval_freq = eval_freq
        self.curve: list[tuple[int, float]] = []

    @abstractmethod
    def evaluate(self) -> float:
        """Evaluate ``self.model`` now and return the score recorded in :attr:`curve`."""

    def _record(self) -> None:
        self.curve.append((int(self.num_timesteps), float(self.evaluate())))

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        last = self.curve[-1][0] if self.curve else 0
        if self.num_timesteps // self.eval_freq > last // self.eval_freq:
            self._record()

    def _on_training_end(self) -> None:
        if not self.curve or self.curve[-1][0] != self.num_timesteps:
            self._record()


class TrainingSuccess(EvaluateEvery):
    """
    A learning curve that costs no evaluation episodes: the success rate of the last training episodes (SB3's
    ``ep_success_buffer``, filled from ``info["is_success"]`` at each episode end; 0 before any episode has ended).

    :param eval_freq: Environment steps between points.
    """

    def evaluate(self) -> float:
        successes = self.model.ep_success_buffer
        return float(np.mean(successes)) if successes else 0.0
