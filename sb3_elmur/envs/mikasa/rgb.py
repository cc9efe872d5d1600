"""
The RGB pipeline of MIKASA-Robo on the CPU (the paper's setting): expert data recorded in RGB, and a CNN encoder
over both cameras.

**Data.** The scripted experts (:mod:`sb3_elmur.envs.mikasa.experts`) act on the memory variant's *state*; the
agent sees RGB (:class:`~sb3_elmur.envs.mikasa.adapter.RGBProprio`: ``rgb`` ``[128, 128, 6]`` uint8 from the base
and hand cameras, ``proprio`` ``[25]``). :class:`StateAlongside` computes, after every reset and step of an env in
``obs_mode="rgb"``, the observation that the same env gives in ``obs_mode="state"`` (ManiSkill's own
``_get_obs_state_dict``, flattened as ManiSkill does): one simulation, two views of it, so no synchronisation of two
envs is needed (the suite's recorder steps a state env and an RGB env side by side). :class:`StateExpert` reads it
from the VecEnv and hands it to the state experts; :func:`collect_rgb_trajectories` records the RGB observations
only (the state and the cue never enter the dataset). The memory variants' cue hiding does not depend on the
observation mode, so the target cube is in the images during the cue steps only.

**Encoder.** SB3 transposes image spaces to channels-first (``VecTransposeImage``), so an ElmurPPO model on an
RGB VecEnv sees ``rgb`` as ``[6, 128, 128]``; :func:`match_image_layout` puts a dataset's images (stored as the env
gives them, channels-last) into the model's layout for :class:`~sb3_elmur.bc.ElmurBC`. :class:`MikasaRGBExtractor`
encodes each camera with its own NatureCNN-like network and concatenates the two codes with the proprioception
(SB3's default ``CombinedExtractor`` would run one NatureCNN over the 6 stacked channels, mixing the two viewpoints
from the first layer).

Example::

    from sb3_elmur import ElmurPPO
    from sb3_elmur.envs.mikasa import make_mikasa_vec_env
    from sb3_elmur.envs.mikasa.rgb import RGB_ENV_KWARGS, MikasaRGBExtractor, collect_rgb_trajectories

    data = collect_rgb_trajectories("RememberColor3-Memory-v0", n_episodes=20)
    env = make_mikasa_vec_env("RememberColor3-Memory-v0", obs_mode="rgb", **RGB_ENV_KWARGS)
    model = ElmurPPO("MultiInputElmurPolicy", env, policy_kwargs={"features_extractor_class": MikasaRGBExtractor})
"""

import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from sb3_elmur.data.trajectories import TrajectoryDataset
from sb3_elmur.envs.mikasa.adapter import make_mikasa_vec_env
from sb3_elmur.envs.mikasa.evaluation import evaluate_success

#: Env settings of the RGB data: the experts act in end-effector space (4-D actions: dx, dy, dz, gripper). The
#: paper's agents use the default ``pd_joint_delta_pos`` (8-D); cloning the experts needs their action space.
RGB_ENV_KWARGS: dict[str, Any] = {"control_mode": "pd_ee_delta_pos"}
#: Attribute of :class:`StateAlongside` holding the current state observation.
STATE_ATTR = "memory_state"


class StateAlongside(gym.Wrapper):
    """
    Keeps, after every ``reset`` and ``step``, the state observation of the same env (what ``obs_mode="state"``
    would return now) in :attr:`memory_state` (``[state_dim]`` float32 numpy), next to whatever observation the env
    returns. Wraps the ManiSkill env itself (batched torch, ``num_envs=1``): pass it to
    :func:`~sb3_elmur.envs.mikasa.adapter.make_mikasa_env` as ``wrappers=(StateAlongside,)``.

    The state is built by the env's own ``_get_obs_state_dict`` with its observation mode switched to ``"state"``
    for the call (the memory variants' ``_get_obs_extra`` adds the cube positions and the cue in state modes only),
    from the ``info`` of the same step, and flattened as ManiSkill flattens a state observation. Nothing is
    simulated or evaluated again.

    :param env: A ManiSkill env (as returned by ``gym.make``) with one sub-env.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.memory_state: np.ndarray | None = None

    def _state(self, info: dict) -> np.ndarray:
        from mani_skill.utils import common

        base: Any = self.env.unwrapped
        mode = base._obs_mode
        base._obs_mode = "state"
        try:
            raw = base._get_obs_state_dict(info)
        finally:
            base._obs_mode = mode
        flat = common.flatten_state_dict(raw, use_torch=True, device=base.device)
        return flat[0].detach().cpu().numpy().astype(np.float32)

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.memory_state = self._state(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.memory_state = self._state(info)
        return obs, reward, terminated, truncated, info


def experts_for(env_id: str) -> Any:
    """
    The scripted experts of a memory variant (:class:`~sb3_elmur.envs.mikasa.experts.RememberColorExperts` with N
    read from the id, or :class:`~sb3_elmur.envs.mikasa.experts.TakeItBackExperts`).

    :param env_id: ``RememberColor{3,5,9}-Memory-v0`` or ``TakeItBack-Memory-v0``.
    """
    from sb3_elmur.envs.mikasa.experts import RememberColorExperts, TakeItBackExperts

    match = re.fullmatch(r"RememberColor(\d+)-Memory-v0", env_id)
    if match:
        return RememberColorExperts(int(match.group(1)))
    if env_id == "TakeItBack-Memory-v0":
        return TakeItBackExperts()
    raise ValueError(f"no scripted expert for {env_id!r}: the experts act on the state of the *-Memory-v0 variants")


class StateExpert:
    """
    A state expert acting on an RGB VecEnv, as the callable ``expert(observations, episode_starts)`` of
    :func:`~sb3_elmur.data.collect_trajectories`: the observations it is handed (RGB) are ignored; it reads the
    state of the same step from every env's :class:`StateAlongside` and gives it to ``experts``.

    :param env: The VecEnv whose envs carry :class:`StateAlongside`.
    :param experts: A callable ``experts(states, episode_starts) -> actions`` (e.g. ``RememberColorExperts(3)``).
    :param record_states: Keep the states it acted on, one ``[n_envs, state_dim]`` array per call, in
        :attr:`states` (for checks; the dataset never holds them).
    """

    def __init__(self, env: VecEnv, experts: Any, record_states: bool = False) -> None:
        self.env, self.experts, self.record_states = env, experts, record_states
        self.states: list[np.ndarray] = []

    def __call__(self, observations: Any, episode_starts: np.ndarray) -> np.ndarray:
        states = np.stack(self.env.get_attr(STATE_ATTR))
        if self.record_states:
            self.states.append(states)
        return np.asarray(self.experts(states, episode_starts))


def make_rgb_collection_env(env_id: str, n_envs: int = 1, seed: int = 10_000, subprocess: bool = False) -> VecEnv:
    """
    The RGB VecEnv the data is recorded on: :func:`~sb3_elmur.envs.mikasa.adapter.make_mikasa_vec_env` in
    ``obs_mode="rgb"`` with :data:`RGB_ENV_KWARGS` and :class:`StateAlongside` on every env.

    :param env_id: A ``*-Memory-v0`` id.
    :param n_envs: Envs side by side (env ``i`` seeded ``seed + i``).
    :param seed: Seed of env 0.
    :param subprocess: One process per env.
    """
    return make_mikasa_vec_env(
        env_id, n_envs, seed, obs_mode="rgb", subprocess=subprocess, wrappers=(StateAlongside,), **RGB_ENV_KWARGS
    )


def collect_rgb_trajectories(
    env_id: str,
    n_episodes: int,
    n_envs: int = 1,
    seed: int = 10_000,
    experts: Any = None,
    progress_bar: bool = False,
    subprocess: bool = False,
    states: list[np.ndarray] | None = None,
    env: VecEnv | None = None,
) -> TrajectoryDataset:
    """
    Record ``n_episodes`` expert episodes in RGB: the experts act on the state of each step (:class:`StateExpert`),
    the dataset holds what the agent sees (``rgb`` channels-last uint8 and ``proprio``), the experts' actions and
    the rewards.

    :param env_id: A ``*-Memory-v0`` id.
    :param n_episodes: Episodes to record.
    :param n_envs: Envs side by side (env ``i`` seeded ``seed + i``; later episodes continue each env's seed).
    :param seed: Seed of env 0.
    :param experts: State experts (default: :func:`experts_for`).
    :param progress_bar: Show a tqdm progress bar.
    :param subprocess: One process per env.
    :param states: If given, the states the experts acted on are appended to it (``[n_envs, state_dim]`` per step
        of the VecEnv), for checks; they are not part of the dataset.
    :param env: Record on this env (from :func:`make_rgb_collection_env`, reset here, left open; ``n_envs``, ``seed``
        and ``subprocess`` are then its own). Default: one is made, and closed at the end.
    """
    from sb3_elmur.data import collect_trajectories

    own = env is None
    vec_env = make_rgb_collection_env(env_id, n_envs, seed, subprocess) if env is None else env
    expert = StateExpert(vec_env, experts_for(env_id) if experts is None else experts, record_states=states is not None)
    try:
        data = collect_trajectories(vec_env, expert, n_episodes, progress_bar=progress_bar)
    finally:
        if own:
            vec_env.close()
    if states is not None:
        states.extend(expert.states)
    data.metadata.update(env_id=env_id, obs_mode="rgb", expert=type(expert.experts).__name__, **RGB_ENV_KWARGS)
    if own:
        data.metadata["seed"] = seed
    return data


def evaluate_rgb_success(
    policy: Any,
    env_id: str,
    n_episodes: int = 10,
    seed: int = 0,
    n_envs: int = 2,
    deterministic: bool = True,
    make_env: Callable[[str, int, int], VecEnv] | None = None,
) -> float:
    """
    success_once of a policy on RGB envs: the fraction of ``n_episodes`` episodes (seeds ``seed ..
    seed + n_episodes - 1``, env ``i`` of a batch on seed ``first + i``, as
    :func:`~sb3_elmur.envs.mikasa.evaluation.evaluate_success`) solved at some step, with SB3's stateful ``predict``
    on the Dict observations (an SB3 model transposes the images itself). No statistics read from the state.

    :param policy: Anything with ``predict(observation, state, episode_start, deterministic)``.
    :param env_id: A MIKASA-Robo id.
    :param n_episodes: Episodes.
    :param seed: First seed.
    :param n_envs: Envs side by side.
    :param deterministic: Greedy actions.
    :param make_env: ``make_env(env_id, n_envs, seed)`` (default: :func:`make_rgb_collection_env`, which adds
        :class:`StateAlongside`; the policy sees only the RGB observation).
    """
    make = make_rgb_collection_env if make_env is None else make_env

    def make_bound(env_id: str, n_envs: int, seed: int) -> VecEnv:
        env = make(env_id, n_envs, seed)
        if hasattr(policy, "bind"):  # a StateExpertPolicy reads the states of the env it acts on
            policy.bind(env)
        return env

    return evaluate_success(policy, env_id, n_episodes, seed, n_envs, deterministic, make_env=make_bound)


class StateExpertPolicy:
    """
    SB3's ``predict`` for state experts on RGB envs (for :func:`evaluate_rgb_success`): acts through
    :class:`StateExpert` on the env given to :meth:`bind`.

    :param experts: State experts (e.g. ``experts_for(env_id)``).
    """

    def __init__(self, experts: Any) -> None:
        self.experts = experts
        self.expert: StateExpert | None = None

    def bind(self, env: VecEnv) -> None:
        """Act on this env (with :class:`StateAlongside` on its envs) from now on."""
        self.expert = StateExpert(env, self.experts)

    def predict(
        self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        assert self.expert is not None, "bind an env first"
        n = len(next(iter(observation.values()))) if isinstance(observation, dict) else len(observation)
        starts = np.ones(n, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        return self.expert(observation, starts), None


def evaluate_expert_in_rgb(env_id: str, n_episodes: int = 10, seed: int = 0, n_envs: int = 5, experts: Any = None) -> float:
    """
    success_once of the state experts acting through :class:`StateExpert` on RGB envs (:func:`evaluate_rgb_success`):
    the check that the RGB envs are the tasks the experts solve in state mode, cue hiding included.

    :param env_id: A ``*-Memory-v0`` id.
    :param n_episodes: Episodes.
    :param seed: First seed.
    :param n_envs: Envs side by side.
    :param experts: State experts (default: :func:`experts_for`).
    """
    policy = StateExpertPolicy(experts_for(env_id) if experts is None else experts)
    return evaluate_rgb_success(policy, env_id, n_episodes, seed, n_envs)


def concatenate_datasets(datasets: Sequence[TrajectoryDataset]) -> TrajectoryDataset:
    """
    Episodes of several datasets back to back (e.g. the parts of a resumable collection); the metadata of the first,
    with ``parts`` the number of datasets.

    :param datasets: Datasets with the same observation keys and shapes.
    """
    if not datasets:
        raise ValueError("nothing to concatenate")

    def join(items: list[Any]) -> Any:
        if isinstance(items[0], dict):
            return {key: np.concatenate([item[key] for item in items]) for key in items[0]}
        return np.concatenate(items)

    finals = [d.final_observations for d in datasets]
    return TrajectoryDataset(
        observations=join([d.observations for d in datasets]),
        actions=np.concatenate([d.actions for d in datasets]),
        rewards=np.concatenate([d.rewards for d in datasets]),
        episode_lengths=np.concatenate([d.episode_lengths for d in datasets]),
        terminated=np.concatenate([d.terminated for d in datasets]),
        metadata={**datasets[0].metadata, "parts": len(datasets)},
        final_observations=join(finals) if all(f is not None for f in finals) else None,  # type: ignore[arg-type]
    )


def match_image_layout(dataset: TrajectoryDataset, observation_space: spaces.Space) -> TrajectoryDataset:
    """
    The dataset with its image observations in the layout of ``observation_space`` (SB3 models on image
    observations see them channels-first; the env and the dataset give them channels-last). Other arrays are shared,
    not copied; a dataset already in that layout is returned as is.

    :param dataset: A dataset of Dict (or image) observations.
    :param observation_space: The model's observation space (``model.observation_space``).
    """
    subspaces = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {"": observation_space}

    def convert(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
        out, changed = dict(arrays), False
        for key, space in subspaces.items():
            array = arrays.get(key)
            if array is None or not is_image_space(space) or not is_image_space_channels_first(space):  # type: ignore[arg-type]
                continue
            if array.shape[1:] != space.shape and array.shape[1:] == (*space.shape[1:], space.shape[0]):
                out[key], changed = np.ascontiguousarray(np.moveaxis(array, -1, 1)), True
        return out, changed

    observations, changed = convert(dataset.observation_arrays())
    if not changed:
        return dataset
    finals = dataset.final_observations
    if finals is not None:
        finals, _ = convert(finals if isinstance(finals, dict) else {"": finals})
        finals = finals if isinstance(dataset.final_observations, dict) else finals[""]
    return TrajectoryDataset(
        observations=observations if isinstance(dataset.observations, dict) else observations[""],
        actions=dataset.actions,
        rewards=dataset.rewards,
        episode_lengths=dataset.episode_lengths,
        terminated=dataset.terminated,
        metadata=dict(dataset.metadata),
        final_observations=finals,
    )


def camera_cnn(in_channels: int, height: int, width: int, features_dim: int, channels: Sequence[int]) -> nn.Module:
    """
    NatureCNN's layout for one camera (8x8 stride 4, 4x4 stride 2, 3x3 stride 1, then a linear layer and ReLU).

    :param in_channels: Channels of the camera's image.
    :param height: Image height.
    :param width: Image width.
    :param features_dim: Output size.
    :param channels: Output channels of the three convolutions.
    """
    c1, c2, c3 = channels
    convs = nn.Sequential(
        nn.Conv2d(in_channels, c1, 8, stride=4),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2),
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3, stride=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    with th.no_grad():
        n_flat = convs(th.zeros(1, in_channels, height, width)).shape[1]
    return nn.Sequential(convs, nn.Linear(n_flat, features_dim), nn.ReLU())


class MikasaRGBExtractor(BaseFeaturesExtractor):
    """
    Features of the MIKASA RGB observation: each camera's image (the ``rgb`` key holds ``n_cameras`` RGB images
    stacked on the channel axis) through its own NatureCNN-like network (:func:`camera_cnn`), concatenated with the
    proprioception (and any other flat key, flattened). The policy hands it ``rgb`` scaled to [0, 1]
    (``normalize_images=True``, SB3's default), channels-first (``VecTransposeImage``) or channels-last.

    :param observation_space: Dict space with an image key ``rgb`` (``3 * n_cameras`` channels) and flat keys.
    :param features_per_camera: Output size of each camera's network.
    :param n_cameras: Cameras stacked in ``rgb`` (2: base and hand).
    :param share_cameras: One network for all cameras (default: one each; the views differ).
    :param channels: Output channels of the three convolutions.
    :param image_key: Key of the images.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        features_per_camera: int = 128,
        n_cameras: int = 2,
        share_cameras: bool = False,
        channels: Sequence[int] = (32, 64, 64),
        image_key: str = "rgb",
    ) -> None:
        image = observation_space.spaces[image_key]
        assert isinstance(image, spaces.Box) and len(image.shape) == 3, f"{image_key!r} must be an image space"
        self.channels_first = bool(is_image_space_channels_first(image))
        n_channels, height, width = image.shape if self.channels_first else (image.shape[2], *image.shape[:2])
        if n_channels % n_cameras:
            raise ValueError(f"{n_channels} channels cannot be split into {n_cameras} cameras")
        flat_keys = [key for key in observation_space.spaces if key != image_key]
        n_flat = sum(int(np.prod(observation_space.spaces[key].shape)) for key in flat_keys)
        super().__init__(observation_space, features_per_camera * n_cameras + n_flat)
        self.image_key, self.flat_keys, self.n_cameras = image_key, flat_keys, n_cameras
        self.camera_channels = n_channels // n_cameras
        make = lambda: camera_cnn(self.camera_channels, height, width, features_per_camera, channels)  # noqa: E731
        shared = make() if share_cameras else None
        self.cameras = nn.ModuleList([shared if shared is not None else make() for _ in range(n_cameras)])

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        images = observations[self.image_key].float()
        if not self.channels_first:
            images = images.permute(0, 3, 1, 2)
        views = images.split(self.camera_channels, dim=1)
        codes = [cnn(view) for cnn, view in zip(self.cameras, views, strict=True)]
        flat = [observations[key].flatten(1).float() for key in self.flat_keys]
        return th.cat(codes + flat, dim=1)
