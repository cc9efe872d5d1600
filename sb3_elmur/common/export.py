"""
ONNX export of the acting step of an ELMUR policy: observation, episode-start flag and memory state in; action,
value and the new state out. The state (memory, LRU timestamps, step counters, segment caches) is an explicit input
and output, so any ONNX runtime can carry it from step to step, as :meth:`ElmurActorCriticPolicy.predict` does.

The exported graph is the policy's own acting step, run with ``branch_free=True`` (see
:meth:`~sb3_elmur.elmur.ElmurBackbone.step_towers`): resets through masks, the commit computed for every row and
applied where a segment completes, caches rebuilt by masks. Actions are the deterministic ones (``predict(...,
deterministic=True)``), clipped to a Box space as ``predict`` does.

    from sb3_elmur import ElmurPPO
    from sb3_elmur.common.export import OnnxElmurPolicy, export_onnx

    export_onnx(ElmurPPO.load("agent.zip"), "agent.onnx")
    policy = OnnxElmurPolicy("agent.onnx")  # onnxruntime
    state = policy.initial_state(n_envs)
    action, value, state = policy.step(obs, episode_start, state)
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import get_obs_shape
from torch import nn

from sb3_elmur.common.policies import ElmurActorCriticPolicy
from sb3_elmur.elmur import StreamState

#: Names of the state inputs; each output is the same name with ``_out``.
STATE_NAMES = ("mem_vectors", "mem_timestamps", "step", "keys", "values", "outputs")


class ActingStep(nn.Module):
    """
    The acting step of a policy as a pure function of tensors (what is exported).

    ``forward(obs, episode_start, mem_vectors, mem_timestamps, step, keys, values, outputs)`` returns
    ``(action, value, mem_vectors_out, ..., outputs_out)``; ``episode_start`` is ``[batch]`` bool, the state tensors
    are those of :meth:`StreamState.tensors`.

    :param policy: The policy (its weights are shared, not copied).
    """

    def __init__(self, policy: ElmurActorCriticPolicy) -> None:
        super().__init__()
        if isinstance(policy.observation_space, spaces.Dict):
            raise ValueError("ONNX export supports array observations (Box, Discrete, MultiDiscrete, MultiBinary), not Dict")
        if policy.use_sde and policy.squash_output:
            raise ValueError("ONNX export does not support squash_output=True")
        self.policy = policy
        space = policy.action_space
        if isinstance(space, spaces.Box):
            self.register_buffer("low", th.as_tensor(space.low, dtype=th.float32), persistent=False)
            self.register_buffer("high", th.as_tensor(space.high, dtype=th.float32), persistent=False)

    def _action(self, latent_pi: th.Tensor) -> th.Tensor:
        """
        The deterministic action of each row, from the action head's output. Not through the policy's distribution
        object: torch.distributions checks its arguments with data-dependent branches, which torch.export refuses.
        """
        policy, space = self.policy, self.policy.action_space
        params = policy.action_net(policy.mlp_extractor.forward_actor(latent_pi))
        if isinstance(space, spaces.Discrete):
            return params.argmax(-1)
        if isinstance(space, spaces.MultiDiscrete):
            return th.stack([part.argmax(-1) for part in th.split(params, list(space.nvec), dim=-1)], dim=-1)
        if isinstance(space, spaces.MultiBinary):
            return (params > 0).to(th.int64).view(-1, *space.shape)
        return th.maximum(th.minimum(params.view(-1, *space.shape), self.high), self.low)  # type: ignore[arg-type]

    def forward(
        self,
        obs: th.Tensor,
        episode_start: th.Tensor,
        mem_vectors: th.Tensor,
        mem_timestamps: th.Tensor,
        step: th.Tensor,
        keys: th.Tensor,
        values: th.Tensor,
        outputs: th.Tensor,
    ) -> tuple[th.Tensor, ...]:
        policy = self.policy
        stream = StreamState.from_tensors((mem_vectors, mem_timestamps, step, keys, values, outputs))
        features = policy.extract_features(obs)
        inputs = policy._backbone_input(features, (obs.shape[0],))
        out, stream = policy.backbone.step_towers(inputs, stream, episode_start, branch_free=True)
        latent_pi, latent_vf = policy._latents(out, features)
        value = policy.value_net(policy.mlp_extractor.forward_critic(latent_vf))
        return (self._action(latent_pi), value, *stream.tensors())


def export_onnx(model: BaseAlgorithm | ElmurActorCriticPolicy, path: str | Path, batch_size: int = 2) -> Path:
    """
    Export the acting step of an ElmurPPO model (or of an ELMUR policy) to ONNX, with a dynamic batch dimension.

    Inputs ``obs``, ``episode_start`` (bool), ``mem_vectors``, ``mem_timestamps`` (int64), ``step`` (int64),
    ``keys``, ``values``, ``outputs``; outputs ``action``, ``value`` and each state input with ``_out`` appended.
    Needs the ``onnx`` extra (onnx, onnxscript; onnxruntime to run the file).

    :param model: The model or its policy.
    :param path: Output file (weights are stored inside it).
    :param batch_size: Batch size of the example inputs used for tracing (the exported batch size is dynamic).
    :return: The path written.
    """
    policy = model.policy if isinstance(model, BaseAlgorithm) else model
    if not isinstance(policy, ElmurActorCriticPolicy):
        raise TypeError(f"export_onnx needs an ELMUR policy or model, got {type(policy).__name__}")
    if batch_size < 2:
        raise ValueError("batch_size must be >= 2 (a batch of 1 would be specialised as a constant)")
    path = Path(path)
    policy = policy.to("cpu")
    policy.set_training_mode(False)
    step = ActingStep(policy).eval()
    obs = example_observation(policy.observation_space, batch_size)
    state = policy.backbone.initial_state(batch_size).tensors()
    episode_start = th.ones(batch_size, dtype=th.bool)
    batch = th.export.Dim("batch", min=1)
    dynamic = {"obs": {0: batch}, "episode_start": {0: batch}, **{name: {0: batch} for name in STATE_NAMES}}
    path.parent.mkdir(parents=True, exist_ok=True)
    th.onnx.export(
        step,
        (obs, episode_start, *state),
        str(path),
        input_names=["obs", "episode_start", *STATE_NAMES],
        output_names=["action", "value", *(f"{name}_out" for name in STATE_NAMES)],
        dynamic_shapes=dynamic,
        dynamo=True,
        external_data=False,
    )
    return path


def example_observation(space: spaces.Space, batch_size: int) -> th.Tensor:
    """A batch of observations of ``space`` as the policy receives them (before its preprocessing)."""
    sample = np.stack([space.sample() for _ in range(batch_size)])
    return th.as_tensor(sample).view(batch_size, *get_obs_shape(space))  # type: ignore[arg-type]


_NUMPY_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxElmurPolicy:
    """
    Run an exported acting step with onnxruntime, carrying the state between calls.

    :param path: File written by :func:`export_onnx`.
    :param providers: onnxruntime execution providers (default: the CPU).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None) -> None:
        import onnxruntime as ort  # optional dependency

        self.session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        missing = {"obs", "episode_start", *STATE_NAMES} - set(self.inputs)
        if missing:
            raise ValueError(f"{path} is not an ELMUR acting step: inputs {sorted(missing)} are missing")

    def initial_state(self, n_envs: int) -> tuple[np.ndarray, ...]:
        """A fresh state (empty memory, step 0) for ``n_envs`` envs."""
        state = []
        for name in STATE_NAMES:
            shape = [n_envs, *self.inputs[name].shape[1:]]
            state.append(np.full(shape, -1 if name == "mem_timestamps" else 0, dtype=_NUMPY_TYPES[self.inputs[name].type]))
        return tuple(state)

    def step(
        self, obs: np.ndarray, episode_start: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """
        One acting step for a batch of envs.

        :param obs: ``[n_envs, *obs_shape]`` observations.
        :param episode_start: ``[n_envs]`` bools, True where an episode starts at this step.
        :param state: The state from :meth:`initial_state` or the previous call.
        :return: Actions, values ``[n_envs, 1]`` and the new state.
        """
        feeds = {
            "obs": np.asarray(obs, dtype=_NUMPY_TYPES[self.inputs["obs"].type]),
            "episode_start": np.asarray(episode_start, dtype=bool).reshape(-1),
        }
        feeds.update(zip(STATE_NAMES, state, strict=True))
        action, value, *new_state = self.session.run(None, feeds)
        return action, value, tuple(new_state)
