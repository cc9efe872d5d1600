"""Shared checks of the POPGym history-based experts (used by the tests/test_popgym_experts_*.py files)."""

import gc
from typing import Any

import gymnasium as gym
import numpy as np

from sb3_elmur.envs.popgym import make_popgym_env
from sb3_elmur.envs.popgym.experts import HistoryExpert, make_expert, reference_return


def play_episode(env_id: str, seed: int, expert: HistoryExpert | None = None) -> tuple[float, list[Any], list[Any]]:
    """Play one episode of ``env_id`` (env seeded with ``seed``); return (return, observations, actions)."""
    env = make_popgym_env(env_id)
    expert = make_expert(env_id, seed=seed) if expert is None else expert
    observation, _ = env.reset(seed=seed)
    expert.reset(observation)
    observations, actions, rewards, total, done = [observation], [], [], 0.0, False
    while not done:
        action = expert.act()
        assert env.action_space.contains(action), f"{env_id}: invalid action {action!r}"
        observation, reward, terminated, truncated, _ = env.step(action)
        expert.observe(action, float(reward), observation)
        observations.append(observation)
        actions.append(action)
        rewards.append(float(reward))
        total += float(reward)
        done = terminated or truncated
    env.close()
    return total, observations, list(zip(actions, rewards, strict=True))


def replayed_actions(env_id: str, seed: int, observations: list[Any], steps: list[Any]) -> list[Any]:
    """The actions a fresh expert takes when fed a recorded history without any env present."""
    expert = make_expert(env_id, seed=seed)
    expert.reset(observations[0])
    actions = []
    for (action, reward), observation in zip(steps, observations[1:], strict=True):
        actions.append(expert.act())
        expert.observe(action, reward, observation)
    return actions


def references_env(obj: Any, depth: int = 4) -> bool:
    """Whether ``obj`` holds (up to ``depth`` references deep) a gymnasium env."""
    seen: set[int] = set()
    frontier = [obj]
    for _ in range(depth):
        following = []
        for item in frontier:
            if id(item) in seen or isinstance(item, (str, bytes, int, float, np.ndarray)):
                continue
            seen.add(id(item))
            if isinstance(item, gym.Env):
                return True
            following.extend(gc.get_referents(item))
        frontier = following
    return False


def assert_history_only(env_id: str, seeds: range = range(3)) -> None:
    """The expert's actions are a function of the recorded history (replayed without an env, they are the same),
    and the expert keeps no reference to an env."""
    for seed in seeds:
        expert = make_expert(env_id, seed=seed)
        _, observations, steps = play_episode(env_id, seed, expert)
        assert not references_env(expert), f"{env_id}: the expert holds a reference to an env"
        played = [action for action, _ in steps]
        replayed = replayed_actions(env_id, seed, observations, steps)
        for t, (a, b) in enumerate(zip(played, replayed, strict=True)):
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"{env_id} seed {seed}: step {t} differs on replay"


def assert_reaches_reference(env_id: str, seeds: range = range(100), tolerance: float = 0.03) -> float:
    """Mean return over ``seeds`` is at least the doc's reference minus ``tolerance`` (exactly 1.00 where it is 1.00)."""
    mean = float(np.mean([play_episode(env_id, seed)[0] for seed in seeds]))
    reference = reference_return(env_id)
    bound = reference - (0.0 if reference == 1.0 else tolerance) - 1e-6
    assert mean >= bound, f"{env_id}: mean return {mean:.3f} over {len(seeds)} seeds < {bound:.3f} (reference {reference})"
    return mean
