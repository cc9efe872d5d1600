"""MIKASA-Robo in RGB on the CPU: the env through the adapter, expert data recorded in RGB from the state of the same
env, the per-camera CNN encoder and one behaviour-cloning update on RGB data."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from sb3_elmur.data import TrajectoryDataset
from sb3_elmur.envs.mikasa import mikasa_available
from sb3_elmur.envs.mikasa.rgb import (
    RGB_ENV_KWARGS,
    STATE_ATTR,
    MikasaRGBExtractor,
    collect_rgb_trajectories,
    concatenate_datasets,
    experts_for,
    make_rgb_collection_env,
    match_image_layout,
)

available, reason = mikasa_available()
needs_mikasa = pytest.mark.skipif(not available, reason=reason)
TASK = "RememberColor3-Memory-v0"
SEED = 10_003


def saturated_pixels(image: np.ndarray) -> int:
    """Pixels of a strongly coloured object (the cubes: one channel high, another near zero); the wooden table, the
    grey robot and the floor have none."""
    image = image.astype(np.int16)
    return int(((image.max(-1) - image.min(-1) > 120) & (image.min(-1) < 40)).sum())


@pytest.fixture(scope="module")
def rgb_env():
    env = make_rgb_collection_env(TASK, n_envs=1, seed=SEED)
    yield env
    env.close()


@pytest.fixture(scope="module")
def collected(rgb_env):
    states: list[np.ndarray] = []
    rgb_env.seed(SEED)
    data = collect_rgb_trajectories(TASK, 1, env=rgb_env, states=states)
    return data, np.concatenate(states)


@needs_mikasa
def test_rgb_env_steps_through_the_adapter(rgb_env):
    space = rgb_env.observation_space
    assert set(space.spaces) == {"rgb", "proprio"} and rgb_env.action_space.shape == (4,)  # end-effector control
    obs = rgb_env.reset()
    for _ in range(3):
        obs, rewards, _, infos = rgb_env.step(np.stack([rgb_env.action_space.sample()]))
    assert obs["rgb"].shape == (1, 128, 128, 6) and obs["rgb"].dtype == np.uint8
    assert obs["proprio"].shape == (1, 25) and obs["proprio"].dtype == np.float32
    assert space.contains({k: v[0] for k, v in obs.items()}) and obs["rgb"].std() > 0 and np.isfinite(rewards).all()
    assert set(infos[0]) <= {"is_success", "TimeLimit.truncated", "terminal_observation", "episode"}
    state = rgb_env.get_attr(STATE_ATTR)[0]
    assert state.dtype == np.float32 and state.ndim == 1 and np.isfinite(state).all()


@needs_mikasa
def test_rgb_data_holds_only_the_agents_view_and_the_expert_acted_on_the_state_of_each_step(rgb_env, collected):
    from sb3_elmur.envs.mikasa import make_mikasa_env

    data, states = collected
    assert set(data.observations) == {"rgb", "proprio"} and set(data.final_observations) == {"rgb", "proprio"}
    assert data.n_episodes == 1 and data.terminated[0], "the expert solves the episode (it ends at the success)"
    assert len(states) == data.n_steps, "one state per recorded step (one env, no unfinished episode)"
    # The recorded actions are the expert's on the recorded states ...
    experts = experts_for(TASK)
    starts = np.zeros(data.n_steps, dtype=bool)
    starts[0] = True
    replayed = np.stack([experts(states[t : t + 1], starts[t : t + 1])[0] for t in range(data.n_steps)])
    np.testing.assert_array_equal(replayed, data.actions)
    # ... and those states are what a state-mode env shows at the same steps of the same episode.
    env = make_mikasa_env(TASK, **RGB_ENV_KWARGS)
    obs, _ = env.reset(seed=SEED)
    for t in range(data.n_steps):
        np.testing.assert_allclose(states[t], obs, atol=1e-5, err_msg=f"step {t}")
        obs, *_ = env.step(data.actions[t])
    env.close()
    # The cue is in the pictures during the cue steps only: the target alone, then an empty table, then every cube.
    task = rgb_env.envs[0].unwrapped
    cue, hidden = task.TIME_OFFSET, task.TIME_OFFSET + task.DELTA_TIME
    base = [saturated_pixels(frame[..., :3]) for frame in data.observations["rgb"]]
    assert all(n > 0 for n in base[:cue]) and all(n == 0 for n in base[cue:hidden]) and all(n > 0 for n in base[hidden:])
    assert base[hidden] > base[0], "more cubes after the reveal than during the cue"


@needs_mikasa
def test_one_behaviour_cloning_update_on_rgb_data(rgb_env, collected):
    from sb3_elmur.bc import ElmurBC
    from sb3_elmur.registry import get_model

    data, _ = collected
    policy_kwargs = {"features_extractor_class": MikasaRGBExtractor, "features_extractor_kwargs": {"features_per_camera": 16}}
    agent = get_model("elmur").build(rgb_env, 0, {"policy_kwargs": policy_kwargs})
    model = agent.model
    assert model.observation_space["rgb"].shape == (6, 128, 128), "SB3 sees the images channels-first"
    extractor = model.policy.features_extractor
    assert isinstance(extractor, MikasaRGBExtractor)
    before = [p.detach().clone() for p in model.policy.parameters()]
    cnn_before = [p.detach().clone() for p in extractor.cameras.parameters()]
    trainer = ElmurBC(model, match_image_layout(data, model.observation_space), batch_size=1, warmup_steps=1)
    stats = trainer.train_step(np.array([0]))
    assert np.isfinite(stats["bc/nll"]) and stats["bc/grad_norm"] > 0
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert all(not th.equal(a, b) for a, b in zip(cnn_before, extractor.cameras.parameters(), strict=True)), (
        "both cameras' networks learn"
    )
    actions, _ = model.predict(rgb_env.reset(), episode_start=np.ones(1, dtype=bool))  # channels-last obs from the env
    assert actions.shape == (1, 4)


def test_extractor_encodes_each_camera_on_its_own_in_either_layout():
    last = spaces.Dict(
        {"rgb": spaces.Box(0, 255, (64, 64, 6), np.uint8), "proprio": spaces.Box(-np.inf, np.inf, (5,), np.float32)}
    )
    first = spaces.Dict({"rgb": spaces.Box(0, 255, (6, 64, 64), np.uint8), "proprio": last["proprio"]})
    th.manual_seed(0)
    a = MikasaRGBExtractor(last, features_per_camera=8, channels=(4, 8, 8))
    b = MikasaRGBExtractor(first, features_per_camera=8, channels=(4, 8, 8))
    b.load_state_dict(a.state_dict())
    assert a.features_dim == 2 * 8 + 5 and not a.channels_first and b.channels_first
    images = th.rand(3, 64, 64, 6)
    proprio = th.randn(3, 5)
    out = a({"rgb": images, "proprio": proprio})
    th.testing.assert_close(out, b({"rgb": images.permute(0, 3, 1, 2), "proprio": proprio}))
    th.testing.assert_close(out[:, 16:], proprio)
    changed = images.clone()
    changed[..., 3:] = th.rand(3, 64, 64, 3)  # a new hand-camera picture: only the second camera's code moves
    moved = a({"rgb": changed, "proprio": proprio})
    th.testing.assert_close(moved[:, :8], out[:, :8])
    assert not th.allclose(moved[:, 8:16], out[:, 8:16])
    shared = MikasaRGBExtractor(last, features_per_camera=8, channels=(4, 8, 8), share_cameras=True)
    assert sum(p.numel() for p in shared.parameters()) * 2 == sum(p.numel() for p in a.parameters())


def test_image_layout_and_concatenation():
    rng = np.random.default_rng(0)
    obs = {"rgb": rng.integers(0, 256, (5, 8, 8, 6), dtype=np.uint8), "proprio": rng.normal(size=(5, 3)).astype(np.float32)}
    finals = {k: v[:2] for k, v in obs.items()}
    data = TrajectoryDataset(
        obs,
        np.zeros((5, 4), np.float32),
        np.zeros(5, np.float32),
        np.array([2, 3]),
        np.ones(2, bool),
        final_observations=finals,
    )
    space = spaces.Dict({"rgb": spaces.Box(0, 255, (6, 8, 8), np.uint8), "proprio": spaces.Box(-np.inf, np.inf, (3,))})
    moved = match_image_layout(data, space)
    assert moved.observations["rgb"].shape == (5, 6, 8, 8) and moved.final_observations["rgb"].shape == (2, 6, 8, 8)
    np.testing.assert_array_equal(moved.observations["rgb"][1, 4], obs["rgb"][1, ..., 4])
    assert moved.observations["proprio"] is obs["proprio"]
    moved.validate(space)
    assert match_image_layout(moved, space) is moved, "already channels-first"
    both = concatenate_datasets([data, data])
    assert both.n_episodes == 4 and both.n_steps == 10 and both.metadata["parts"] == 2
    np.testing.assert_array_equal(both.observations["rgb"][5:], obs["rgb"])


@needs_mikasa
def test_the_state_expert_succeeds_acting_on_rgb_envs():
    """evaluate_expert_in_rgb: the expert reads the state next to the RGB observation; success from the RGB envs' info."""
    from sb3_elmur.envs.mikasa.rgb import evaluate_expert_in_rgb

    assert evaluate_expert_in_rgb(TASK, n_episodes=1, seed=0, n_envs=1) == 1.0
