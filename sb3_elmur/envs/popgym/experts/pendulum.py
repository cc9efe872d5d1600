"""
History-based experts of the POPGym pendulum tasks: PositionOnlyPendulum and NoisyPositionOnlyPendulum.

Both act greedily on a value table of gymnasium's pendulum, computed once per process by value iteration on a
``(theta, theta_dot)`` grid (a discounted problem: the swing-up, then balancing at the top):

- positions only: the semi-implicit Euler step makes ``theta_dot_{t+1} = wrap(theta_{t+1} - theta_t) / dt`` exact, so
  the state is known after the first step (before it, ``theta_dot`` is taken as 0, the mean of the reset distribution);
- noisy positions: a particle filter over ``(theta, theta_dot)`` (censored likelihood of the clipped readings), and the
  greedy action at its circular mean.
"""

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sb3_elmur.envs.popgym.experts.base import HistoryExpert, task_settings
from sb3_elmur.envs.popgym.experts.filters import ParticleFilterExpert, weighted_sum, wrap_angle

#: gymnasium's reset distribution: ``theta ~ U(-pi, pi)``, ``theta_dot ~ U(-1, 1)`` (``pendulum.DEFAULT_X``, ``DEFAULT_Y``).
RESET_THETA, RESET_THETA_DOT = math.pi, 1.0


@dataclass(frozen=True)
class PendulumModel:
    """
    gymnasium's pendulum (``PendulumEnv.step``), vectorised over states.

    :param g: Gravity.
    :param m: Mass.
    :param l: Length.
    :param dt: Time step.
    :param max_speed: Bound on the angular velocity.
    :param max_torque: Bound on the torque.
    """

    g: float
    m: float
    l: float  # noqa: E741  (gymnasium's name)
    dt: float
    max_speed: float
    max_torque: float

    @classmethod
    def of(cls, env_id: str) -> "PendulumModel":
        """
        The model of a POPGym pendulum task, with the constants of its env.

        :param env_id: The POPGym id.
        """
        return cls(*task_settings(env_id, *("g", "m", "l", "dt", "max_speed", "max_torque")))

    def step(
        self, theta: np.ndarray, theta_dot: np.ndarray, torque: Any, sin: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        One step: the next ``(theta, theta_dot)`` (``theta`` is not wrapped, as in gymnasium).

        :param theta: Angles (0 = upright).
        :param theta_dot: Angular velocities.
        :param torque: Torques, broadcast against the states.
        :param sin: ``sin(theta)`` if already known.
        """
        sin = np.sin(theta) if sin is None else sin
        acceleration = 3 * self.g / (2 * self.l) * sin + 3.0 / (self.m * self.l**2) * torque
        theta_dot = np.clip(theta_dot + acceleration * self.dt, -self.max_speed, self.max_speed)
        return theta + theta_dot * self.dt, theta_dot

    @staticmethod
    def cost(theta: np.ndarray, theta_dot: np.ndarray, torque: Any) -> np.ndarray:
        """
        gymnasium's cost of a step (the negated reward before POPGym's rescaling).

        :param theta: Angles.
        :param theta_dot: Angular velocities.
        :param torque: Torques.
        """
        return wrap_angle(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * np.square(torque)


@functools.cache
def pendulum_model(env_id: str) -> PendulumModel:
    """
    The (cached) model of a POPGym pendulum task.

    :param env_id: The POPGym id.
    """
    return PendulumModel.of(env_id)


class ValueTable:
    """
    The optimal discounted value of the pendulum on a periodic ``theta`` x bounded ``theta_dot`` grid with bilinear
    interpolation, computed by modified policy iteration over ``n_torques`` evenly spaced torques; :meth:`greedy` is the
    policy of the interpolated action values.

    :param model: The pendulum.
    :param n_theta: Grid points over ``[-pi, pi)``.
    :param n_theta_dot: Grid points over ``[-max_speed, max_speed]``.
    :param n_torques: Torques in ``[-max_torque, max_torque]``.
    :param gamma: Discount factor.
    :param tolerance: Stop when a full backup changes the value by less than this.
    """

    def __init__(
        self,
        model: PendulumModel,
        n_theta: int = 200,
        n_theta_dot: int = 161,
        n_torques: int = 21,
        gamma: float = 0.985,
        tolerance: float = 1e-4,
    ) -> None:
        self.model = model
        self.n_theta, self.n_theta_dot, self.gamma = n_theta, n_theta_dot, gamma
        self.torques = np.linspace(-model.max_torque, model.max_torque, n_torques)
        theta = np.arange(n_theta) * (2 * np.pi / n_theta) - np.pi
        theta_dot = np.linspace(-model.max_speed, model.max_speed, n_theta_dot)
        grid_theta, grid_theta_dot = (a.reshape(-1, 1) for a in np.meshgrid(theta, theta_dot, indexing="ij"))
        reward = -model.cost(grid_theta, grid_theta_dot, self.torques)  # (states, torques)
        index, weight = self._interpolation(*model.step(grid_theta, grid_theta_dot, self.torques))  # (4, states, torques)
        value = np.zeros(n_theta * n_theta_dot)
        states = np.arange(value.size)
        while True:
            q = reward + gamma * np.einsum("kst,kst->st", weight, value[index])
            policy = q.argmax(axis=1)
            change = np.max(np.abs(q[states, policy] - value))
            value = q[states, policy]
            if change < tolerance:
                self.q = q.reshape(n_theta, n_theta_dot, n_torques)
                break
            policy_reward, policy_index, policy_weight = (
                reward[states, policy],
                index[:, states, policy],
                weight[:, states, policy],
            )
            for _ in range(30):  # evaluation sweeps of the greedy policy
                value = policy_reward + gamma * np.einsum("ks,ks->s", policy_weight, value[policy_index])
        self.value = value

    def _interpolation(self, theta: np.ndarray, theta_dot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices and weights (each of shape ``(4, *theta.shape)``) of the bilinear interpolation at the states."""
        position = (wrap_angle(theta) + np.pi) * (self.n_theta / (2 * np.pi))
        i = np.floor(position)
        u = position - i
        i = i.astype(np.int64) % self.n_theta
        i_next = (i + 1) % self.n_theta
        speed = self.model.max_speed
        position = (np.clip(theta_dot, -speed, speed) + speed) * ((self.n_theta_dot - 1) / (2 * speed))
        j = np.minimum(np.floor(position), self.n_theta_dot - 2)
        v = position - j
        j = j.astype(np.int64)
        n = self.n_theta_dot
        index = np.stack([i * n + j, i * n + j + 1, i_next * n + j, i_next * n + j + 1])
        weight = np.stack([(1 - u) * (1 - v), (1 - u) * v, u * (1 - v), u * v])
        return index, weight

    def greedy(self, theta: float, theta_dot: float) -> float:
        """
        The torque of highest action value, bilinearly interpolated at the state (scalar arithmetic: a few microseconds).

        :param theta: Angle.
        :param theta_dot: Angular velocity.
        """
        position = (wrap_angle(theta) + math.pi) * (self.n_theta / (2 * math.pi))
        i = math.floor(position)
        u = position - i
        i %= self.n_theta
        i_next = (i + 1) % self.n_theta
        speed = self.model.max_speed
        position = (min(max(theta_dot, -speed), speed) + speed) * ((self.n_theta_dot - 1) / (2 * speed))
        j = min(math.floor(position), self.n_theta_dot - 2)
        v = position - j
        q = self.q
        q = (1 - u) * ((1 - v) * q[i, j] + v * q[i, j + 1]) + u * ((1 - v) * q[i_next, j] + v * q[i_next, j + 1])
        return float(self.torques[np.argmax(q)])


@functools.cache
def value_table(model: PendulumModel) -> ValueTable:
    """
    The value table of a pendulum, built once per process (about a second).

    :param model: The pendulum.
    """
    return ValueTable(model)


class PositionOnlyPendulumExpert(HistoryExpert):
    """
    PositionOnlyPendulum: the angle from ``atan2``, the velocity from consecutive angles (exact), the greedy torque of
    the value table.

    :param env_id: The POPGym id the expert plays.
    :param seed: Unused (the expert is deterministic).
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        super().__init__(env_id, seed)
        self.model = pendulum_model(env_id)
        self.table = value_table(self.model)
        self.theta = self.theta_dot = 0.0

    def reset(self, observation: np.ndarray) -> None:
        cos, sin = np.asarray(observation).tolist()
        self.theta, self.theta_dot = math.atan2(sin, cos), 0.0

    def act(self) -> np.ndarray:
        return np.array([self.table.greedy(self.theta, self.theta_dot)], dtype=np.float32)

    def observe(self, action: int | np.ndarray, reward: float, observation: np.ndarray) -> None:
        cos, sin = np.asarray(observation).tolist()
        theta = math.atan2(sin, cos)
        self.theta_dot = wrap_angle(theta - self.theta) / self.model.dt
        self.theta = theta


class NoisyPositionOnlyPendulumExpert(ParticleFilterExpert):
    """
    NoisyPositionOnlyPendulum: a particle filter over ``(theta, theta_dot)`` on the exact model with the censored
    likelihood of the clipped ``(cos, sin)`` readings; the greedy torque of the value table at the posterior (circular)
    mean. The reset reading is weighed on ``20 * n_particles`` prior draws (the prior spans the whole circle), and the
    filter restarts from a uniform proposal over the last 10 steps when it has lost track (see
    :class:`~sb3_elmur.envs.popgym.experts.filters.ParticleFilterExpert`).

    Balancing is estimation-limited: near the top only ``sin(theta)`` is informative, and the error of the unstable mode
    ``theta + theta_dot / sqrt(15)`` stays about ``sigma`` (steady-state Kalman filter of the linearised pendulum: 0.11 /
    0.22 / 0.32), against about 0.4 from which the torque bound can still catch the pole.

    :param env_id: The POPGym id the expert plays.
    :param seed: Seed of the filter's generator.
    :param n_particles: Number of particles.
    :param jitter: Jitter scale after resampling, relative to the particles' spread.
    """

    def __init__(self, env_id: str, seed: int = 0, n_particles: int = 1000, jitter: float = 0.1) -> None:
        super().__init__(env_id, seed, n_particles=n_particles, jitter=jitter, circular=(0,), oversample=20)
        self.model = pendulum_model(env_id)
        self.table = value_table(self.model)
        self.sigma = float(np.asarray(task_settings(env_id, "noise_sigma")[0]).reshape(-1)[0])
        self.low, self.high = np.full(2, -1.0), np.full(2, 1.0)

    def prior(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform([[-RESET_THETA], [-RESET_THETA_DOT]], [[RESET_THETA], [RESET_THETA_DOT]], size=(2, n))

    def proposal(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        speed = self.model.max_speed
        return rng.uniform([[-math.pi], [-speed]], [[math.pi], [speed]], size=(2, n))

    def model_step(self, particles: np.ndarray, action: int | np.ndarray) -> np.ndarray:
        torque = min(max(float(np.asarray(action).reshape(-1)[0]), -self.model.max_torque), self.model.max_torque)
        particles[0], particles[1] = self.model.step(particles[0], particles[1], torque, sin=self.readings()[1])
        return particles

    def reading(self, particles: np.ndarray) -> np.ndarray:
        readings = np.empty_like(particles)
        np.cos(particles[0], out=readings[0])
        np.sin(particles[0], out=readings[1])
        return readings

    def act(self) -> np.ndarray:
        assert self.filter is not None
        cos, sin = weighted_sum(self.readings(), self.filter.weights)
        theta_dot = float(weighted_sum(self.filter.particles[1], self.filter.weights))
        return np.array([self.table.greedy(math.atan2(sin, cos), theta_dot)], dtype=np.float32)


__all__ = ["NoisyPositionOnlyPendulumExpert", "PendulumModel", "PositionOnlyPendulumExpert", "ValueTable", "value_table"]
