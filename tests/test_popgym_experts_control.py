"""History-based experts of the five POPGym control families (cart-pole and pendulum, noiseless and noisy)."""

import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("popgym")

from popgym_experts import assert_history_only, assert_reaches_reference

from sb3_elmur.envs.popgym import make_popgym_env
from sb3_elmur.envs.popgym.experts import make_expert
from sb3_elmur.envs.popgym.experts.cartpole import cartpole_model
from sb3_elmur.envs.popgym.experts.filters import ParticleFilter, log_normal_cdf, wrap_angle
from sb3_elmur.envs.popgym.experts.pendulum import pendulum_model

FAMILIES = (
    "PositionOnlyCartPole",
    "VelocityOnlyCartpole",
    "NoisyPositionOnlyCartPole",
    "PositionOnlyPendulum",
    "NoisyPositionOnlyPendulum",
)
IDS = [f"popgym-{family}{difficulty}-v0" for family in FAMILIES for difficulty in ("Easy", "Medium", "Hard")]


@pytest.mark.parametrize("env_id", IDS)
def test_history_only(env_id: str) -> None:
    assert_history_only(env_id)


@pytest.mark.parametrize("env_id", IDS)
def test_reaches_reference(env_id: str) -> None:
    assert_reaches_reference(env_id, seeds=range(100))


def test_log_normal_cdf() -> None:
    """Close to the exact value where particle weights matter, finite far in the tail."""
    z = np.linspace(-30.0, 8.0, 400)
    exact = np.array([math.log(0.5 * math.erfc(-v / math.sqrt(2.0))) for v in z])
    error = np.abs(log_normal_cdf(z) - exact)
    assert error[z >= -2].max() < 1e-5 and error[z >= -6].max() < 4e-3 and error.max() < 0.2


def test_particle_filter_resamples_deterministically() -> None:
    def run() -> np.ndarray:
        rng = np.random.default_rng(3)
        pf = ParticleFilter(rng.uniform(-1, 1, size=(2, 500)), rng, circular=(0,))
        for reading in (0.5, 0.6, 0.55):
            pf.update(-0.5 * np.square((pf.particles[1] - reading) / 0.1))
        return pf.mean()

    mean = run()
    np.testing.assert_array_equal(mean, run())
    assert abs(mean[1] - 0.55) < 0.05


@pytest.mark.parametrize("difficulty", ["Easy", "Hard"])
def test_cartpole_model_is_exact(difficulty: str) -> None:
    """The expert's model reproduces gymnasium's step, and the position-only expert knows the state after one step."""
    env_id = f"popgym-PositionOnlyCartPole{difficulty}-v0"
    model, env = cartpole_model(env_id), make_popgym_env(env_id)
    expert = make_expert(env_id)
    observation, _ = env.reset(seed=1)
    expert.reset(observation)
    for t in range(30):
        state, action = np.array(env.unwrapped.state), expert.act()
        observation, *_ = env.step(action)
        expert.observe(action, 0.0, observation)
        np.testing.assert_allclose(model.step(state, model.force(action)), env.unwrapped.state, rtol=0, atol=1e-12)
        if t > 0:
            np.testing.assert_allclose(expert.state, env.unwrapped.state, rtol=0, atol=1e-4)


def test_velocity_only_cartpole_knows_the_state() -> None:
    env_id = "popgym-VelocityOnlyCartpoleEasy-v0"
    env, expert = make_popgym_env(env_id), make_expert(env_id)
    observation, _ = env.reset(seed=2)
    expert.reset(observation)
    for _ in range(30):
        action = expert.act()
        observation, *_ = env.step(action)
        expert.observe(action, 0.0, observation)
        np.testing.assert_allclose(expert.state, env.unwrapped.state, rtol=0, atol=1e-5)


def test_pendulum_model_is_exact() -> None:
    env_id = "popgym-PositionOnlyPendulumEasy-v0"
    model, env = pendulum_model(env_id), gym.make(env_id).unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        (theta, theta_dot), torque = env.state, rng.uniform(-3, 3)
        env.step(np.array([torque], dtype=np.float32))
        expected = model.step(theta, theta_dot, float(np.clip(np.float32(torque), -2, 2)))
        np.testing.assert_allclose(expected, env.state, rtol=0, atol=1e-6)


def test_position_only_pendulum_knows_the_velocity() -> None:
    env_id = "popgym-PositionOnlyPendulumHard-v0"
    env, expert = make_popgym_env(env_id), make_expert(env_id)
    observation, _ = env.reset(seed=4)
    expert.reset(observation)
    for _ in range(30):
        action = expert.act()
        observation, *_ = env.step(action)
        expert.observe(action, 0.0, observation)
        assert abs(expert.theta_dot - env.unwrapped.state[1]) < 1e-4


def test_noisy_pendulum_filter_recovers_when_lost() -> None:
    """A filter whose particles all sit far from the truth restarts from its proposal and finds the state again."""
    env_id = "popgym-NoisyPositionOnlyPendulumEasy-v0"
    env, expert = make_popgym_env(env_id), make_expert(env_id, seed=0)
    observation, _ = env.reset(seed=0)
    expert.reset(observation)
    expert.filter.particles[0] += 2.0  # every particle 2 rad off
    for _ in range(40):
        action = np.array([0.0], dtype=np.float32)
        observation, *_ = env.step(action)
        expert.observe(action, 0.0, observation)
    theta, theta_dot = env.unwrapped.state
    estimate = expert.filter.mean()
    assert expert.restarts >= 1
    assert abs(wrap_angle(estimate[0] - theta)) < 0.1 and abs(estimate[1] - theta_dot) < 0.5
