"""
Shared parts of the control experts (cart-pole and pendulum): reading a task's physical constants, the censored
Gaussian likelihood of POPGym's clipped noisy readings, and a vectorised particle filter over a deterministic model.

POPGym's noisy control tasks add ``N(0, sigma^2)`` to the true observation and clip the sum to the observation bounds, so a
reading at a bound only says "at least this far out". The filter weights such a reading by the Gaussian tail mass beyond
the bound (a censored likelihood). The dynamics are deterministic given the action, so after resampling the filter
jitters the copies (a regularised particle filter), and when its particles have all drifted away from the readings (it
has lost track) it restarts from a broad proposal replayed over the last steps.
"""

import math
from abc import abstractmethod
from collections import deque
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert


def weighted_sum(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """
    ``values @ weights`` over the last axis, by ``einsum`` rather than BLAS: OpenBLAS runs large products on threads
    that then spin, which slows the whole filter several-fold on a loaded machine.

    :param values: Shape ``(..., n)``.
    :param weights: Shape ``(n,)``.
    """
    return np.einsum("...n,n->...", values, weights)


def wrap_angle(angle: Any) -> Any:
    """
    Angles wrapped into ``[-pi, pi)``.

    :param angle: Radians (a float or an array).
    """
    return (angle + np.pi) % (2 * np.pi) - np.pi


def log_normal_cdf(z: np.ndarray) -> np.ndarray:
    """
    ``log Phi(z)`` of the standard normal, elementwise, without scipy: Abramowitz & Stegun 7.1.26 for ``erfc``, written
    in log form so that the far lower tail stays finite (``Phi`` is off by under 1e-5 relative for ``z >= -2``, 0.4 % at
    ``z = -6``, 2 % at ``z = -10``: precise enough to weigh particles).

    :param z: Standardised values.
    """
    x = np.abs(z) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    log_cdf = np.log(0.5 * poly) - x * x  # log Phi(-|z|)
    upper = z > 0.0
    if upper.any():
        log_cdf[upper] = np.log1p(-np.exp(log_cdf[upper]))
    return log_cdf


def clipped_gaussian_log_likelihood(
    predicted: np.ndarray, observation: np.ndarray, sigma: float, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """
    Log-likelihood of a reading ``clip(true + N(0, sigma^2), low, high)`` for each particle, summed over components.
    A component at a bound contributes the tail mass beyond it, the others the Gaussian density (up to a constant).

    :param predicted: The noise-free observation of each particle, shape ``(k, n)``.
    :param observation: The reading, shape ``(k,)``.
    :param sigma: The noise standard deviation.
    :param low: Lower clipping bounds, shape ``(k,)``.
    :param high: Upper clipping bounds, shape ``(k,)``.
    """
    log_likelihood = np.zeros(predicted.shape[1])
    for value, mean, lower, upper in zip(observation, predicted, low, high, strict=True):
        if value >= upper:
            log_likelihood += log_normal_cdf((mean - upper) / sigma)
        elif value <= lower:
            log_likelihood += log_normal_cdf((lower - mean) / sigma)
        else:
            log_likelihood -= 0.5 * np.square((value - mean) / sigma)
    return log_likelihood


class ParticleFilter:
    """
    A regularised particle filter for a deterministic model: weights are updated by a log-likelihood; when the effective
    sample size falls below ``resample_fraction * n``, the particles are resampled (systematic resampling), shrunk
    towards their mean by ``sqrt(1 - jitter^2)`` and jittered by ``N(0, (jitter * std)^2)`` per state component, ``std``
    being the weighted spread of that component before resampling (Liu & West's kernel: mean and spread are kept).

    Angles (``circular`` rows) are averaged on the circle and their spread is measured from that circular mean.

    :param particles: Initial particles, shape ``(d, n)`` (one row per state component), equally weighted.
    :param rng: The generator of the resampling and the jitter.
    :param jitter: Jitter scale, relative to the particles' spread.
    :param resample_fraction: Resample when the effective sample size drops below this fraction of ``n``.
    :param circular: Indices of the rows that are angles (radians).
    """

    def __init__(
        self,
        particles: np.ndarray,
        rng: np.random.Generator,
        jitter: float = 0.1,
        resample_fraction: float = 0.5,
        circular: tuple[int, ...] = (),
    ) -> None:
        self.particles = particles
        self.rng = rng
        self.jitter = jitter
        self.resample_fraction = resample_fraction
        self.circular = list(circular)
        self.log_weights = np.zeros(particles.shape[1])
        self.weights = np.full(particles.shape[1], 1.0 / particles.shape[1])

    def update(self, log_likelihood: np.ndarray, possible: np.ndarray | None = None) -> bool:
        """
        Weight the particles by a likelihood, then resample and jitter them if the weights have degenerated.

        :param log_likelihood: Per-particle log-likelihood of the new reading, shape ``(n,)``.
        :param possible: Which particles are consistent with the history besides the reading (e.g. not past a bound
            that would have ended the episode); the others get weight 0, unless none is possible.
        :return: Whether the particles were resampled.
        """
        log_weights = self.log_weights + log_likelihood
        if possible is not None and possible.any():
            log_weights[~possible] = -np.inf
        log_weights -= log_weights.max()
        weights = np.exp(log_weights)
        self.log_weights, self.weights = log_weights, weights / weights.sum()
        if 1.0 / weighted_sum(self.weights, self.weights) < self.resample_fraction * weights.size:
            self.resample()
            return True
        return False

    def _draw(self, m: int) -> np.ndarray:
        """Indices of ``m`` particles drawn by weight (systematic resampling)."""
        positions = (self.rng.random() + np.arange(m)) / m
        return np.minimum(np.searchsorted(np.cumsum(self.weights), positions), self.weights.size - 1)

    def resample(self, n: int | None = None) -> None:
        """
        Systematic resampling followed by the jitter (weights become uniform).

        :param n: The number of particles after resampling (default: unchanged).
        """
        n = self.weights.size if n is None else n
        mean = self.mean()[:, None]
        deviations = self.particles - mean
        deviations[self.circular] = wrap_angle(deviations[self.circular])
        std = np.sqrt(weighted_sum(np.square(deviations), self.weights))
        noise = self.rng.standard_normal((self.particles.shape[0], n))
        shrink = math.sqrt(1.0 - self.jitter**2)  # keeps the spread: Liu & West's kernel shrinkage
        self.particles = mean + shrink * deviations[:, self._draw(n)] + self.jitter * std[:, None] * noise
        self.log_weights = np.zeros(n)
        self.weights = np.full(n, 1.0 / n)

    def mean(self) -> np.ndarray:
        """The weighted mean of the particles (circular mean for angles), shape ``(d,)``."""
        mean = weighted_sum(self.particles, self.weights)
        for row in self.circular:
            angles = self.particles[row]
            mean[row] = math.atan2(weighted_sum(np.sin(angles), self.weights), weighted_sum(np.cos(angles), self.weights))
        return mean


class ParticleFilterExpert(HistoryExpert):
    """
    An expert that tracks a posterior over the hidden state with a :class:`ParticleFilter` on a known deterministic model
    and a clipped-Gaussian reading, and acts on it. The generator is re-seeded from ``seed`` at every :meth:`reset`, so
    the actions are a deterministic function of the history and the seed.

    Subclasses give the prior, the model step, the noise-free reading and the action; they set ``self.sigma``,
    ``self.low`` and ``self.high`` (the noise and the clipping bounds of the reading) in their constructor.

    :param env_id: The POPGym id the expert plays.
    :param seed: Seed of the filter's generator.
    :param n_particles: Number of particles.
    :param jitter: Jitter scale after resampling, relative to the particles' spread.
    :param circular: Indices of the state components that are angles.
    :param oversample: The reset observation is weighed on ``oversample * n_particles`` draws of the prior, resampled
        to ``n_particles``: when the prior is much wider than the reading's noise, drawing only ``n_particles`` would
        leave a few distinct particles and an overconfident posterior.
    :param window: Steps replayed by a restart (see :meth:`proposal`).
    :param surprise_limit: Restart when the running mean of the squared standardised innovation of the readings
        (1 when the filter is consistent) exceeds this; ``restarts`` counts the restarts of the episode.
    """

    sigma: float
    low: np.ndarray
    high: np.ndarray

    def __init__(
        self,
        env_id: str,
        seed: int = 0,
        n_particles: int = 1000,
        jitter: float = 0.1,
        circular: tuple[int, ...] = (),
        oversample: int = 1,
        window: int = 10,
        surprise_limit: float = 4.0,
    ) -> None:
        super().__init__(env_id, seed)
        self.n_particles = n_particles
        self.oversample = oversample
        self.window = window
        self.surprise_limit = surprise_limit
        self.jitter = jitter
        self.circular = circular
        self.filter: ParticleFilter | None = None
        self._readings: np.ndarray | None = None

    @abstractmethod
    def prior(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """
        ``n`` samples of the reset distribution of the hidden state, shape ``(d, n)``.

        :param rng: The expert's generator.
        :param n: Number of samples.
        """

    @abstractmethod
    def model_step(self, particles: np.ndarray, action: int | np.ndarray) -> np.ndarray:
        """
        The model's next states, shape ``(d, n)``.

        :param particles: States, shape ``(d, n)``.
        :param action: The action taken.
        """

    @abstractmethod
    def reading(self, particles: np.ndarray) -> np.ndarray:
        """
        The noise-free observation of each state, shape ``(k, n)``.

        :param particles: States, shape ``(d, n)``.
        """

    def proposal(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """
        ``n`` draws of a broad distribution of the hidden state ``window`` steps ago, shape ``(d, n)``, from which a
        restart replays the last ``window`` steps when the filter has lost track (all its particles far from the
        readings, a failure of deterministic models after an unlucky resampling); ``None`` (the default): no restarts.

        :param rng: The expert's generator.
        :param n: Number of samples.
        """
        return None

    def possible(self, particles: np.ndarray) -> np.ndarray | None:
        """
        Which states are consistent with the episode going on (``None``: all), shape ``(n,)``.

        :param particles: States, shape ``(d, n)``.
        """
        return None

    def readings(self) -> np.ndarray:
        """The noise-free readings of the current particles, shape ``(k, n)``, cached until the particles change."""
        assert self.filter is not None
        if self._readings is None:
            self._readings = self.reading(self.filter.particles)
        return self._readings

    def _weigh(self, observation: np.ndarray) -> float:
        """Update the filter with a reading; return the reading's squared standardised innovation (per component)."""
        assert self.filter is not None
        readings, weights = self.readings(), self.filter.weights
        mean = weighted_sum(readings, weights)
        variance = weighted_sum(np.square(readings - mean[:, None]), weights)
        inside = (observation > self.low) & (observation < self.high)  # clipped components are left out
        innovation = np.square(observation - mean) / (self.sigma**2 + variance)
        log_likelihood = clipped_gaussian_log_likelihood(readings, observation, self.sigma, self.low, self.high)
        if self.filter.update(log_likelihood, self.possible(self.filter.particles)):
            self._readings = None
        return float(innovation[inside].mean()) if inside.any() else 1.0

    def _start(
        self, rng: np.random.Generator, particles: np.ndarray, observations: list[np.ndarray], actions: list[Any]
    ) -> None:
        """A new filter: ``particles`` (states at ``observations[0]``) run through the steps, resampled to n_particles."""
        self.filter = ParticleFilter(particles, rng, jitter=self.jitter, circular=self.circular)
        self._readings = None
        self._weigh(observations[0])
        for action, observation in zip(actions, observations[1:], strict=True):
            self.filter.particles = self.model_step(self.filter.particles, action)
            self._readings = None
            self._weigh(observation)
        self.filter.resample(self.n_particles)
        self._readings = None

    def reset(self, observation: Any) -> None:
        rng = np.random.default_rng(self.seed)
        observation = np.asarray(observation, dtype=np.float64)
        self._start(rng, self.prior(rng, self.oversample * self.n_particles), [observation], [])
        self.observations, self.actions = deque([observation], maxlen=self.window + 1), deque(maxlen=self.window)
        self.surprise = 1.0
        self.restarts = 0

    def observe(self, action: int | np.ndarray, reward: float, observation: Any) -> None:
        assert self.filter is not None
        observation = np.asarray(observation, dtype=np.float64)
        self.filter.particles = self.model_step(self.filter.particles, action)
        self._readings = None
        self.surprise += 0.3 * (self._weigh(observation) - self.surprise)
        self.observations.append(observation)
        self.actions.append(np.array(action))
        if self.surprise > self.surprise_limit and len(self.actions) == self.window:
            rng = self.filter.rng
            particles = self.proposal(rng, self.oversample * self.n_particles)
            if particles is not None:
                self._start(rng, particles, list(self.observations), list(self.actions))
                self.surprise = 1.0
                self.restarts += 1
