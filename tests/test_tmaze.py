"""Passive T-Maze benchmark: dynamics, vectorized env, oracle and evaluation helper."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import sb3_elmur.envs  # noqa: F401
from sb3_elmur.envs import TMazeEnv, TMazeOracle, TMazeVecEnv, evaluate_tmaze, tmaze_oracle
from sb3_elmur.envs.tmaze import DOWN, LEFT, RIGHT, UP

EPISODE_INFO_KEYS = {"goal", "corridor_length", "is_success", "TimeLimit.truncated", "terminal_observation", "episode"}


def arm_of(goal: int) -> int:
    return UP if goal > 0 else DOWN


def test_tmaze_env_hand_case():
    length = 3
    env = TMazeEnv(corridor_length=length)
    obs, info = env.reset(seed=0)
    goal = info["goal"]
    assert goal in (-1, 1) and info == {"goal": goal, "corridor_length": length}
    assert obs.dtype == np.float32 and obs.shape == (4,) and env.observation_space.contains(obs)
    # y = 0, hint = goal, not at the junction
    assert obs[0] == 0 and obs[1] == goal and obs[2] == 0 and obs[3] in (-1, 0, 1)

    # Left at the start stays at x = 0; up / down in the corridor do nothing; the hint is gone
    for action in (LEFT, UP, DOWN, LEFT):
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.x == 0 and reward == 0.0 and not terminated and not truncated
        assert obs[0] == 0 and obs[1] == 0 and obs[2] == 0 and "is_success" not in info
    env.reset(seed=0)

    flags = []
    for _ in range(length):
        obs, reward, terminated, truncated, _ = env.step(RIGHT)
        assert obs[1] == 0 and reward == 0.0 and not terminated and not truncated
        flags.append(obs[2])
    assert flags == [0.0] * (length - 1) + [1.0] and env.x == length
    # Right at the junction stays at the junction
    obs, *_ = env.step(RIGHT)
    assert env.x == length and obs[2] == 1.0
    # Back into the corridor, then again to the junction
    obs, *_ = env.step(LEFT)
    assert env.x == length - 1 and obs[2] == 0.0

    # Correct arm: reward 1, terminated, y = goal
    obs, info = env.reset(seed=0)
    for _ in range(length):
        env.step(RIGHT)
    obs, reward, terminated, truncated, info = env.step(arm_of(goal))
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert obs[0] == goal and obs[1] == 0 and obs[2] == 0 and info["is_success"] is True
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)

    # Wrong arm: reward 0, terminated, y = -goal
    env.reset(seed=0)
    for _ in range(length):
        env.step(RIGHT)
    obs, reward, terminated, truncated, info = env.step(arm_of(-goal))
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert obs[0] == -goal and info["is_success"] is False and info["goal"] == goal


@pytest.mark.parametrize("length", [1, 2, 5])
def test_tmaze_env_truncates_after_length_plus_two_steps(length):
    env = TMazeEnv(length)
    env.reset(seed=1)
    for t in range(1, length + 3):
        obs, reward, terminated, truncated, info = env.step(LEFT)
        assert env.x == 0 and obs[1] == 0 and obs[2] == 0 and reward == 0.0 and not terminated
        assert truncated == (t == length + 2)
    assert info["is_success"] is False
    with pytest.raises(RuntimeError):
        env.step(RIGHT)

    # Reaching the junction one step late (at step L + 1) and turning at step L + 2 still counts
    _, info = env.reset(seed=1)
    env.step(LEFT)
    for _ in range(length):
        env.step(RIGHT)
    _, reward, terminated, truncated, info = env.step(arm_of(info["goal"]))
    assert env.elapsed_steps == length + 2 and (reward, terminated, truncated) == (1.0, True, False)


def test_tmaze_env_noise_and_seeding():
    env = TMazeEnv(5)
    values, goals = set(), set()
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        goals.add(info["goal"])
        values.add(float(obs[3]))
        for _ in range(6):
            obs, *_ = env.step(LEFT)
            values.add(float(obs[3]))
    assert values == {-1.0, 0.0, 1.0}
    assert goals == {-1, 1}

    quiet = TMazeEnv(5, noise=False)
    obs, _ = quiet.reset(seed=0)
    noise = [obs[3]] + [quiet.step(LEFT)[0][3] for _ in range(7)]
    assert noise == [0.0] * 8

    def rollout(seed):
        obs, info = env.reset(seed=seed)
        return [info["goal"], *obs.tolist()] + [v for _ in range(7) for v in env.step(LEFT)[0].tolist()]

    assert rollout(123) == rollout(123)
    assert any(rollout(7) != rollout(s) for s in range(8, 12))


def test_tmaze_env_checkers_and_registration():
    gym_check_env(TMazeEnv(4))
    sb3_check_env(TMazeEnv(4), warn=True)

    env = gym.make("TMaze-v0")
    assert env.spec.max_episode_steps is None and env.unwrapped.corridor_length == 10
    env = gym.make("TMaze-v0", corridor_length=7, noise=False)
    assert env.unwrapped.corridor_length == 7 and env.unwrapped.noise is False
    env.reset(seed=0)
    steps = 0
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(RIGHT)
        steps += 1
        done = terminated or truncated
    assert steps == 9 and truncated and not terminated


def test_tmaze_wrong_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="corridor_length"):
        TMazeEnv(0)
    with pytest.raises(ValueError, match="corridor_length"):
        TMazeEnv(-3)
    with pytest.raises(TypeError, match="corridor_length"):
        TMazeEnv(2.5)
    with pytest.raises(TypeError, match="corridor_length"):
        TMazeEnv(True)
    env = TMazeEnv(3)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)
    env.reset(seed=0)
    for bad in (4, -1, 1.0, "up"):
        with pytest.raises(ValueError, match="Invalid action"):
            env.step(bad)

    with pytest.raises(ValueError, match="n_envs"):
        TMazeVecEnv(0)
    with pytest.raises(ValueError, match="low <= high"):
        TMazeVecEnv(2, corridor_length=(5, 3))
    with pytest.raises(ValueError, match="corridor_length"):
        TMazeVecEnv(2, corridor_length=(0, 3))
    with pytest.raises(ValueError, match="pair"):
        TMazeVecEnv(2, corridor_length=(1, 2, 3))
    venv = TMazeVecEnv(3, 4, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros(3, dtype=np.int64))
    venv.reset()
    with pytest.raises(ValueError, match="Expected 3 actions"):
        venv.step(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="0, 1, 2, 3"):
        venv.step(np.array([0, 4, 1]))
    with pytest.raises(TypeError, match="integers"):
        venv.step(np.array([0.0, 1.0, 1.0]))
    with pytest.raises(AttributeError):
        venv.set_attr("goal", 1)

    with pytest.raises(ValueError, match=r"\[n, 4\]"):
        TMazeOracle.act(np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="one hint per env"):
        TMazeOracle().predict(np.zeros((2, 4)), state=np.zeros(3))
    with pytest.raises(ValueError, match="n_envs"):
        TMazeOracle(0)
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate_tmaze(TMazeOracle().predict, 3, n_episodes=0)
    with pytest.raises(ValueError, match="corridor_length"):
        evaluate_tmaze(TMazeOracle().predict, 0)


def test_vec_env_matches_single_env_semantics():
    """Drive ``TMazeVecEnv`` and one ``TMazeEnv`` per slot (with the same goals) by the same random actions."""
    n, length = 8, 3
    venv = TMazeVecEnv(n, length, noise=False, seed=0)
    assert venv.observation_space == TMazeEnv().observation_space and venv.action_space == TMazeEnv().action_space
    singles = [TMazeEnv(length, noise=False) for _ in range(n)]

    def restart(i: int, goal: int) -> np.ndarray:
        obs, _ = singles[i].reset(seed=i)
        singles[i].goal = goal  # align the goal with the vectorized env's draw
        obs[1] = goal
        return obs

    obs = venv.reset()
    goals = venv.get_attr("goal")
    assert venv.reset_infos == [{"goal": g, "corridor_length": length} for g in goals]
    expected = np.stack([restart(i, g) for i, g in enumerate(goals)])
    np.testing.assert_array_equal(obs, expected)

    rng = np.random.default_rng(0)
    counts = {"success": 0, "failure": 0, "truncated": 0}
    for _ in range(300):
        actions = rng.choice(4, size=n, p=[0.55, 0.15, 0.15, 0.15])
        obs, rewards, dones, infos = venv.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float32 and dones.dtype == bool
        new_goals = venv.get_attr("goal")
        for i in range(n):
            s_obs, s_reward, s_term, s_trunc, s_info = singles[i].step(actions[i])
            assert rewards[i] == s_reward and dones[i] == (s_term or s_trunc)
            if not dones[i]:
                assert infos[i] == {}
                np.testing.assert_array_equal(obs[i], s_obs)
                continue
            assert set(infos[i]) == EPISODE_INFO_KEYS
            np.testing.assert_array_equal(infos[i]["terminal_observation"], s_obs)
            assert infos[i]["TimeLimit.truncated"] == s_trunc
            assert infos[i]["is_success"] == s_info["is_success"]
            assert infos[i]["goal"] == s_info["goal"] and infos[i]["corridor_length"] == length
            assert infos[i]["episode"]["r"] == s_reward and infos[i]["episode"]["l"] == singles[i].elapsed_steps
            assert infos[i]["episode"]["t"] >= 0
            counts["truncated" if s_trunc else ("success" if s_reward else "failure")] += 1
            # Auto-reset: the returned observation is the first one of the next episode
            np.testing.assert_array_equal(obs[i], restart(i, new_goals[i]))
            assert venv.reset_infos[i] == {"goal": new_goals[i], "corridor_length": length}
    assert min(counts.values()) > 0, counts


def test_vec_env_random_lengths_noise_and_seeding():
    low, high = 3, 7
    venv = TMazeVecEnv(200, (low, high), seed=0)
    obs = venv.reset()
    lengths = venv.corridor_lengths
    assert set(lengths.tolist()) == set(range(low, high + 1))
    assert set(obs[:, 1].tolist()) == {-1.0, 1.0} and set(obs[:, 3].tolist()) == {-1.0, 0.0, 1.0}
    assert np.all(obs[:, [0, 2]] == 0)

    oracle = TMazeOracle(200)
    starts = np.ones(200, dtype=bool)
    seen_lengths, episodes = set(), 0
    for _ in range(3 * (high + 2)):
        current = venv.corridor_lengths
        obs, rewards, dones, infos = venv.step(oracle(obs, starts))
        starts = dones
        # Junction flag exactly where x == L for each env's own length
        np.testing.assert_array_equal(obs[~dones, 2] == 1, (venv.get_attr("x") == current)[~dones])
        for i in np.flatnonzero(dones):
            episodes += 1
            assert infos[i]["is_success"] and rewards[i] == 1.0
            assert infos[i]["episode"]["l"] == infos[i]["corridor_length"] + 1 == current[i] + 1
            seen_lengths.add(infos[i]["corridor_length"])
        assert np.all((venv.corridor_lengths >= low) & (venv.corridor_lengths <= high))
    assert seen_lengths == set(range(low, high + 1)) and episodes > 200

    # Fixed seeds reproduce the episodes; seed() applies at the next reset
    def rollout(env: TMazeVecEnv) -> list[np.ndarray]:
        out = [env.reset()]
        for _ in range(10):
            out.append(env.step(np.zeros(env.num_envs, dtype=np.int64))[0])
        return out

    a, b = TMazeVecEnv(16, (2, 9), seed=5), TMazeVecEnv(16, (2, 9), seed=5)
    np.testing.assert_array_equal(np.stack(rollout(a)), np.stack(rollout(b)))
    assert not np.array_equal(np.stack(rollout(a)), np.stack(rollout(TMazeVecEnv(16, (2, 9), seed=6))))
    assert a.seed(42) == [42 + i for i in range(16)] and b.seed(42) is not None
    np.testing.assert_array_equal(np.stack(rollout(a)), np.stack(rollout(b)))
    quiet = TMazeVecEnv(16, 3, noise=False, seed=0)
    assert np.all(np.stack(rollout(quiet))[..., 3] == 0)


def test_vec_env_minimal_vecenv_api():
    venv = TMazeVecEnv(4, 6, seed=0)
    venv.reset()
    assert venv.get_attr("corridor_length") == [6] * 4 and venv.get_attr("goal", indices=[1, 2]) == venv.goals[1:3].tolist()
    assert venv.get_attr("render_mode") == [None] * 4 and venv.render_mode is None
    assert venv.env_is_wrapped(Monitor) == [False] * 4 and venv.env_is_wrapped(Monitor, indices=2) == [False]
    assert venv.has_attr("noise") and not venv.has_attr("missing_attribute")
    venv.set_attr("custom", 3)
    assert venv.get_attr("custom", indices=[0, 3]) == [3, 3]
    assert venv.env_method("get_attr", "corridor_length", indices=[0]) == [[6] * 4]
    venv.close()


@pytest.mark.parametrize("length", [1, 9, 30, 300])
def test_oracle_solves_tmaze_env_through_predict(length):
    oracle = TMazeOracle()
    env = TMazeEnv(length)
    goals = set()
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        goals.add(info["goal"])
        state, episode_start, done, steps = None, np.ones(1, dtype=bool), False, 0
        while not done:
            action, state = oracle.predict(obs, state, episode_start)
            episode_start = np.zeros(1, dtype=bool)
            obs, reward, terminated, truncated, info = env.step(action)
            done, steps = terminated or truncated, steps + 1
        assert terminated and reward == 1.0 and info["is_success"] and steps == length + 1
    assert goals == {-1, 1}
    # SB3's evaluate_policy (DummyVecEnv with auto-reset) with the recurrent predict signature
    mean_reward, _ = evaluate_policy(oracle, Monitor(TMazeEnv(length)), n_eval_episodes=10)
    assert mean_reward == 1.0


@pytest.mark.parametrize("length", [1, 9, 30, 300])
def test_oracle_solves_tmaze_vec_env(length):
    assert evaluate_tmaze(TMazeOracle().predict, length, n_episodes=150, seed=3, batch_size=64) == 1.0
    # Functional form and evaluate_policy directly on the VecEnv
    assert evaluate_tmaze(lambda obs, state, start: tmaze_oracle(obs, state), length, n_episodes=20) == 1.0
    mean_reward, _ = evaluate_policy(TMazeOracle(), TMazeVecEnv(8, length, seed=0), n_eval_episodes=16)
    assert mean_reward == 1.0


def test_oracle_stateful_interface():
    oracle = TMazeOracle(3)
    obs = np.array([[0, 1, 0, 1], [0, -1, 0, 0], [0, 1, 0, -1]], dtype=np.float32)
    np.testing.assert_array_equal(oracle(obs, np.ones(3, dtype=bool)), [RIGHT] * 3)
    at_junction = np.array([[0, 0, 1, -1], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(oracle(at_junction, np.zeros(3, dtype=bool)), [UP, DOWN, RIGHT])
    # A new episode in env 0 with the other hint
    new = np.array([[0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(oracle(new, np.array([True, False, False])), [RIGHT, DOWN, UP])
    np.testing.assert_array_equal(oracle(at_junction, np.zeros(3, dtype=bool)), [DOWN, DOWN, RIGHT])
    action, state = TMazeOracle().predict(np.array([0, 0, 1, 0], dtype=np.float32), state=np.array([-1.0]))
    assert action.shape == () and int(action) == DOWN and state.shape == (1,)


def test_memoryless_policy_gets_about_half():
    def right_then_up(obs, state, episode_start):
        return np.where(obs[:, 2] > 0, UP, RIGHT), state

    for length in (1, 9, (2, 12)):
        rate = evaluate_tmaze(right_then_up, length, n_episodes=1000, seed=0)
        assert 0.44 < rate < 0.56, (length, rate)
    # Exactly the fraction of "up" goals of the same fixed-seed episodes
    venv = TMazeVecEnv(100, 5, seed=0)
    venv.reset()
    assert evaluate_tmaze(right_then_up, 5, n_episodes=100, seed=0) == np.mean(venv.goals > 0)


def test_evaluate_tmaze_counts_each_episode_once():
    """A policy that solves the first episode of each env and fails all later ones must score 1."""

    def first_episode_only(obs, state, episode_start):
        hints, episode_counts = (None, np.zeros(len(obs), dtype=np.int64)) if state is None else state
        episode_counts = episode_counts + episode_start
        actions, hints = TMazeOracle.act(obs, hints, episode_start)
        wrong = np.where(actions == UP, DOWN, np.where(actions == DOWN, UP, actions))
        return np.where(episode_counts == 1, actions, wrong), (hints, episode_counts)

    assert evaluate_tmaze(first_episode_only, (1, 12), n_episodes=130, seed=1, batch_size=50) == 1.0


def test_vec_env_trains_with_sb3_ppo():
    from stable_baselines3 import PPO

    venv = TMazeVecEnv(4, 2, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert len(model.ep_info_buffer) > 0 and len(model.ep_success_buffer) > 0
    assert all(info["l"] <= 4 for info in model.ep_info_buffer)
