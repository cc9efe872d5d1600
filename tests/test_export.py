"""ONNX export of the acting step: onnxruntime reproduces the policy's own step over recorded episodes."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env

from sb3_elmur import ElmurPPO
from sb3_elmur.common.export import STATE_NAMES, OnnxElmurPolicy, export_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ELMUR = {"d_model": 16, "n_layers": 2, "n_heads": 2, "segment_len": 4, "n_slots": 2, "lru_lambda": 0.5}


def recorded_episodes(model: ElmurPPO, env_id: str, n_envs: int, n_steps: int, seed: int = 0) -> list[tuple]:
    """(obs, episode_start) of every step of ``n_envs`` envs run by the model's own (stochastic) actions."""
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    obs, starts, state, steps = env.reset(), np.ones(n_envs, dtype=bool), None, []
    for _ in range(n_steps):
        steps.append((obs, starts))
        actions, state = model.predict(obs, state, starts)
        obs, _, starts, _ = env.step(actions)
    return steps


@pytest.mark.parametrize(
    "env_id, option",
    [
        ("CartPole-v1", {}),
        ("Pendulum-v1", {}),
        ("CartPole-v1", {"read_previous_segment": True}),
        ("CartPole-v1", {"token_shift": True, "read_previous_segment": True}),
    ],
)
def test_onnx_step_matches_the_policy_over_1000_steps(tmp_path, env_id, option):
    th.manual_seed(0)
    elmur = {**ELMUR, **option}
    model = ElmurPPO("MlpElmurPolicy", env_id, n_steps=32, seed=0, policy_kwargs={"elmur_kwargs": elmur})
    with th.no_grad():  # non-zero position and time biases, so that they matter
        for name, param in model.policy.backbone.named_parameters():
            if name.endswith("table.weight") or ".shift." in name:
                param.normal_()
    n_envs, n_steps = 3, 400  # 1200 env steps, K = 4: hundreds of commits, and resets at every position
    steps = recorded_episodes(model, env_id, n_envs, n_steps)
    starts = np.array([s for _, s in steps])
    assert starts[1:].sum() >= 10 or env_id == "Pendulum-v1"
    path = export_onnx(model, tmp_path / "agent.onnx")
    onnx = OnnxElmurPolicy(path)
    policy = model.policy
    state, onnx_state = policy.initial_states(n_envs), onnx.initial_state(n_envs)
    worst = 0.0
    for obs, episode_start in steps:
        with th.no_grad():
            actions, values, _, state = policy(
                policy.obs_to_tensor(obs)[0], state, th.as_tensor(episode_start), deterministic=True
            )
        onnx_actions, onnx_values, onnx_state = onnx.step(obs, episode_start, onnx_state)
        if isinstance(model.action_space, gym.spaces.Box):
            actions = actions.clamp(float(model.action_space.low[0]), float(model.action_space.high[0]))
            np.testing.assert_allclose(onnx_actions, actions.numpy(), atol=1e-5)
        else:
            np.testing.assert_array_equal(onnx_actions, actions.numpy())
        worst = max(worst, float(np.abs(onnx_values - values.numpy()).max()))
        for name, mine, theirs in zip(STATE_NAMES, onnx_state, state.tensors(), strict=True):
            if theirs.dtype == th.long:
                np.testing.assert_array_equal(mine, theirs.numpy(), err_msg=name)
            else:
                np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5, err_msg=name)
    assert worst < 1e-5
    # The memory was really used: slots written, several segments committed.
    assert (onnx_state[1] >= 0).any()


def test_export_refuses_what_it_cannot_export(tmp_path):
    with pytest.raises(TypeError, match="ELMUR policy"):
        export_onnx(object(), tmp_path / "x.onnx")  # type: ignore[arg-type]
    env = gym.make("CartPole-v1")
    model = ElmurPPO("MlpElmurPolicy", env, n_steps=32, policy_kwargs={"elmur_kwargs": ELMUR})
    with pytest.raises(ValueError, match="batch_size"):
        export_onnx(model, tmp_path / "x.onnx", batch_size=1)
    (tmp_path / "other.onnx").write_bytes(b"not onnx")
    with pytest.raises(Exception):  # noqa: B017  (onnxruntime's own error type)
        OnnxElmurPolicy(tmp_path / "other.onnx")
