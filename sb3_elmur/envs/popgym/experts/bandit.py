"""History-based expert of POPGym's MultiarmedBandit: deterministic KL-UCB, vectorised over the arms."""

import math
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings


class BernoulliArms:
    """
    Pull and payout counts of Bernoulli arms, with the per-arm terms of their KL-UCB index cached: a pull updates one
    arm's terms (scalar arithmetic), so that :meth:`kl_ucb` costs about 70 small numpy operations (some 40 us) whatever
    the number of arms.

    :param num_arms: The number of arms.
    """

    def __init__(self, num_arms: int) -> None:
        self.pulls = np.zeros(num_arms, dtype=np.int64)
        self.payouts = np.zeros(num_arms, dtype=np.int64)
        self.total = 0  # pulls of all arms
        self.unpulled = num_arms  # arms never pulled
        # Cached per arm: the mean p (0.5 in place of 1, see kl_ucb), 1 - p, p log p + (1 - p) log(1 - p), 1 / pulls,
        # and min(1/2, 2 (1 - p)), with which (q - p)^2 <= spread * kl(p, q) for q >= p.
        self.mean = np.full(num_arms, 0.5)
        self.complement = np.full(num_arms, 0.5)
        self.neg_entropy = np.full(num_arms, math.log(0.5))
        self.inv_pulls = np.zeros(num_arms)
        self.spread = np.full(num_arms, 0.5)
        self.certain = np.zeros(num_arms, dtype=bool)  # arms that paid out at every pull (index 1)

    @classmethod
    def from_counts(cls, payouts: np.ndarray, pulls: np.ndarray) -> "BernoulliArms":
        """
        Arms with the given counts.

        :param payouts: Number of payouts of each arm.
        :param pulls: Number of pulls of each arm.
        """
        arms = cls(len(pulls))
        for arm, (payout, pull) in enumerate(zip(payouts, pulls, strict=True)):
            if not 0 <= payout <= pull:
                raise ValueError(f"Arm {arm}: {payout} payouts in {pull} pulls")
            arms.pulls[arm], arms.payouts[arm] = pull, payout
            arms.total += int(pull)
            arms.unpulled -= int(pull > 0)
            arms._cache(arm)
        return arms

    def pull(self, arm: int, payout: int) -> None:
        """
        Record one pull.

        :param arm: The arm pulled.
        :param payout: 1 if it paid out, else 0.
        """
        self.unpulled -= int(self.pulls[arm] == 0)
        self.total += 1
        self.pulls[arm] += 1
        self.payouts[arm] += payout
        self._cache(arm)

    def _cache(self, arm: int) -> None:
        pulls, payouts = int(self.pulls[arm]), int(self.payouts[arm])
        if pulls == 0:
            return
        certain = payouts == pulls
        mean = 0.5 if certain else payouts / pulls  # any mean < 1 keeps the discarded iterates of a certain arm finite
        self.mean[arm], self.complement[arm], self.certain[arm] = mean, 1.0 - mean, certain
        self.neg_entropy[arm] = (mean * math.log(mean) if mean > 0.0 else 0.0) + (1.0 - mean) * math.log(1.0 - mean)
        self.inv_pulls[arm] = 1.0 / pulls
        self.spread[arm] = min(0.5, 2.0 * (1.0 - mean))

    def kl_ucb(self, threshold: float, iterations: int = 5) -> np.ndarray:
        """
        KL-UCB indices: for each arm, the largest ``q`` in ``[p, 1]`` with ``pulls * kl(p, q) <= threshold``, where
        ``p`` is the arm's empirical mean and ``kl`` the Bernoulli KL divergence. Arms with ``p = 1`` have index 1.

        Solved by Newton's method, vectorised over the arms: ``q -> kl(p, q)`` is convex and increasing on ``[p, 1)``,
        so from any start above the root the iterates decrease monotonically to it. The start is the smallest of three
        closed-form upper bounds on the root, from ``kl(p, q) >= 2 (q - p)^2`` (Pinsker),
        ``kl(p, q) >= (q - p)^2 / (2 (1 - p))`` (the two as ``(q - p)^2 <= spread * kl(p, q)``) and
        ``kl(p, q) >= -H(p) - (1 - p) log(1 - q)``; from there 5 iterations
        reach machine precision (1e-15 on random counts up to 600 pulls; 4 reach 4e-10). Arms with equal counts get
        bit-identical indices.

        :param threshold: The exploration level (positive), ``log(t)`` for KL-UCB after ``t`` pulls.
        :param iterations: Number of Newton steps.
        :return: The index of each arm (float64); all arms must have been pulled.
        """
        p, complement = self.mean, self.complement
        level = threshold * self.inv_pulls  # kl(p, q) <= level
        offset = self.neg_entropy - level
        q = np.minimum(p + np.sqrt(level * self.spread), -np.expm1(offset / complement))
        for _ in range(iterations):
            q_complement = 1.0 - q
            excess = offset - p * np.log(q) - complement * np.log(q_complement)  # kl(p, q) - level
            q = q - excess * (q * q_complement) / (q - p)  # d kl / dq = (q - p) / (q (1 - q))
        return np.where(self.certain, 1.0, q)


def kl_ucb_indices(payouts: np.ndarray, pulls: np.ndarray, threshold: float, iterations: int = 5) -> np.ndarray:
    """
    KL-UCB indices of Bernoulli arms from their counts (see :meth:`BernoulliArms.kl_ucb`).

    :param payouts: Number of payouts of each arm.
    :param pulls: Number of pulls of each arm (all positive).
    :param threshold: The exploration level (positive), ``log(t)`` for KL-UCB after ``t`` pulls.
    :param iterations: Number of Newton steps.
    :return: The index of each arm (float64).
    """
    return BernoulliArms.from_counts(np.asarray(payouts), np.asarray(pulls)).kl_ucb(threshold, iterations)


class MultiarmedBanditExpert(HistoryExpert):
    """
    MultiarmedBandit: KL-UCB (Garivier and Cappé, 2011) on the counts of its own pulls and payouts. It first pulls
    every arm once, in index order; after ``t`` pulls it then plays the arm of highest index at threshold ``log(t)``
    (:meth:`BernoulliArms.kl_ucb`), the lowest-index arm among equal indices. The observation after a pull is its
    payout bit; the reset observation carries nothing.

    :param env_id: The POPGym id the expert plays (10 / 20 / 30 arms for Easy / Medium / Hard).
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        (self.num_arms,) = task_settings(env_id, "num_bandits")

    def reset(self, observation: Any) -> None:
        self.arms = BernoulliArms(self.num_arms)

    def act(self) -> int:
        if self.arms.unpulled:
            return int(np.argmin(self.arms.pulls))  # the lowest-index arm never pulled
        return int(np.argmax(self.arms.kl_ucb(math.log(self.arms.total))))

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        self.arms.pull(int(action), int(observation))
