"""History-based experts of the POPGym card games (Autoencode, RepeatPrevious, RepeatFirst, CountRecall,
HigherLower) and of MultiarmedBandit."""

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("popgym")

from popgym_experts import assert_history_only, assert_reaches_reference, play_episode

from sb3_elmur.envs.popgym.experts import make_expert
from sb3_elmur.envs.popgym.experts.bandit import BernoulliArms, kl_ucb_indices

# POPGym's bandit and CountRecall reuse one info dict, which gymnasium's passive env checker warns about.
pytestmark = pytest.mark.filterwarnings("ignore:.*share an object:UserWarning")

FAMILIES = ("Autoencode", "RepeatPrevious", "RepeatFirst", "CountRecall", "HigherLower", "MultiarmedBandit")
ENV_IDS = [f"popgym-{family}{difficulty}-v0" for family in FAMILIES for difficulty in ("Easy", "Medium", "Hard")]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_reaches_reference(env_id: str) -> None:
    assert_reaches_reference(env_id, seeds=range(100))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_acts_on_history_only(env_id: str) -> None:
    assert_history_only(env_id)


def test_public_settings_come_from_the_env_id() -> None:
    assert make_expert("popgym-RepeatPreviousHard-v0").k == 64
    assert make_expert("popgym-CountRecallMedium-v0").num_values == 4
    assert make_expert("popgym-HigherLowerHard-v0").per_rank == 12
    assert make_expert("popgym-MultiarmedBanditMedium-v0").num_arms == 20


def test_autoencode_reads_raw_tuple_observations() -> None:
    env = gym.make("popgym-AutoencodeEasy-v0")
    expert = make_expert("popgym-AutoencodeEasy-v0")
    observation, _ = env.reset(seed=0)
    expert.reset(observation)
    total, done = 0.0, False
    while not done:
        action = expert.act()
        observation, reward, terminated, truncated, _ = env.step(action)
        expert.observe(action, float(reward), observation)
        total, done = total + float(reward), terminated or truncated
    assert total == pytest.approx(1.0)


def test_higher_lower_counts_cards() -> None:
    expert = make_expert("popgym-HigherLowerEasy-v0")
    expert.reset(6)  # a seven: as many ranks above as below, guess higher
    assert expert.act() == 0
    for card in (7, 8, 9, 10):  # four high cards gone, ending on another seven: more low cards left
        expert.observe(0, 0.0, card)
    expert.observe(0, 0.0, 6)
    assert expert.act() == 1


def bisection_indices(payouts: np.ndarray, pulls: np.ndarray, threshold: float) -> np.ndarray:
    """KL-UCB indices by plain bisection (the reference)."""
    p = payouts / pulls
    low, high = p.copy(), np.ones_like(p)
    for _ in range(60):
        middle = (low + high) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(p > 0, p * np.log(p / middle), 0.0) + np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - middle)), 0.0)
        inside = pulls * kl <= threshold
        low, high = np.where(inside, middle, low), np.where(inside, high, middle)
    return low


def test_kl_ucb_matches_bisection() -> None:
    rng = np.random.default_rng(0)
    pulls = rng.integers(1, 601, 2000)
    payouts = rng.binomial(pulls, rng.random(pulls.size))
    payouts[:50], payouts[50:100], payouts[100:150] = 0, pulls[50:100] - 1, np.minimum(pulls[100:150], 1)  # extreme means
    payouts[150:200] = pulls[150:200]  # p = 1: index 1
    thresholds = np.log(np.maximum(pulls, rng.integers(10, 601, pulls.size)))
    for chunk in np.array_split(np.arange(pulls.size), 40):
        threshold = float(thresholds[chunk[0]])
        indices = kl_ucb_indices(payouts[chunk], pulls[chunk], threshold)
        np.testing.assert_allclose(indices, bisection_indices(payouts[chunk], pulls[chunk], threshold), rtol=0, atol=1e-12)
    assert np.all(kl_ucb_indices(np.array([3, 7]), np.array([3, 7]), 2.0) == 1.0)
    assert kl_ucb_indices(np.array([0]), np.array([4]), 2.0)[0] == pytest.approx(-math.expm1(-0.5), abs=1e-15)


def test_kl_ucb_equal_counts_tie_to_the_lowest_arm() -> None:
    arms = BernoulliArms(30)
    for arm in range(30):
        for payout in (1, 0, 0, 1, 0):
            arms.pull(arm, payout)
    arms.pull(29, 1)
    indices = arms.kl_ucb(math.log(arms.pulls.sum()))
    assert np.all(indices[:29] == indices[0])  # bit-identical, so argmax picks the lowest index
    assert indices[29] != indices[0]


def test_bandit_expert_tries_every_arm_in_order_first() -> None:
    _, _, steps = play_episode("popgym-MultiarmedBanditEasy-v0", seed=0)
    assert [action for action, _ in steps[:10]] == list(range(10))
