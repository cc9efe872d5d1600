"""
MIKASA-Robo envs for Stable-Baselines3 on ManiSkill3's CPU backend.

Each env is one ManiSkill env (``sim_backend="physx_cpu"``, ``num_envs=1``) behind ManiSkill's ``CPUGymWrapper``
(numpy observations and actions, gymnasium's termination/truncation), with :class:`MikasaInfo` in front: ``info``
is reduced to ``is_success`` (``success_once``: the task was solved at some step of the episode so far, the
suite's metric), because the raw ``info`` leaks the cue (``oracle_info``, ``task_cue``, ``obj_to_goal_pos``).
:func:`make_mikasa_vec_env` stacks them in SB3's ``DummyVecEnv`` or ``SubprocVecEnv``, which add
``terminal_observation`` and ``TimeLimit.truncated``; SB3's ``Monitor`` records the episode statistics.

Needs ``bash scripts/setup_mikasa.sh`` (mani-skill, mikasa-robo-suite without its pins, software Vulkan).
"""

import difflib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

#: The memory tasks of the ELMUR paper's MIKASA-Robo table (max_episode_steps 60, 60, 60 and 180), and their honest
#: memory variants (:mod:`sb3_elmur.envs.mikasa.memory_variants`: CPU-safe hiding, no leaks in the state).
MIKASA_IDS = (
    "RememberColor3-v0",
    "RememberColor5-v0",
    "RememberColor9-v0",
    "TakeItBack-v0",
    "RememberColor3-Memory-v0",
    "RememberColor5-Memory-v0",
    "RememberColor9-Memory-v0",
    "TakeItBack-Memory-v0",
)
#: Info keys of the raw envs that give the cue away.
LEAKING_INFO_KEYS = ("oracle_info", "task_cue", "obj_to_goal_pos", "reward_dict")


def mikasa_available() -> tuple[bool, str]:
    """Whether MIKASA-Robo can run here, and why not (``scripts/setup_mikasa.sh`` sets it up)."""
    for module in ("mani_skill", "mikasa_robo_suite", "sapien"):
        if importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed: run bash scripts/setup_mikasa.sh"
    import sapien

    try:
        sapien.render.RenderSystem()
    except Exception as error:  # no Vulkan device: Mesa >= 24.3 lavapipe or a GPU driver is needed
        return False, f"no usable Vulkan device ({error}): run bash scripts/setup_mikasa.sh"
    return True, ""


def check_mikasa_id(env_id: str) -> None:
    """Refuse an id that is not one of :data:`MIKASA_IDS`, naming the close matches."""
    if env_id not in MIKASA_IDS:
        close = difflib.get_close_matches(env_id, MIKASA_IDS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(MIKASA_IDS)}"
        raise ValueError(f"Unknown MIKASA-Robo task {env_id!r}{hint}")


class MikasaInfo(gym.Wrapper):
    """
    ``info`` holds only ``is_success``: True from the first step at which the task is solved until the episode
    ends (``success_once``), so the last step's value is the episode's success. Rewards become Python floats.

    :param env: A MIKASA env behind ``CPUGymWrapper``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._solved = False

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._solved = False
        obs, _ = self.env.reset(**kwargs)
        return obs, {"is_success": False}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._solved = self._solved or bool(np.asarray(info.get("success", False)).any())
        return obs, float(reward), bool(terminated), bool(truncated), {"is_success": self._solved}


#: The paper's two cameras, in the order their channels are concatenated.
CAMERAS = ("base_camera", "hand_camera")
#: The proprioception of the RGB observation: (group, key) of ManiSkill's observation dict.
PROPRIO_KEYS = (("agent", "qpos"), ("agent", "qvel"), ("extra", "tcp_pose"))


def rgb_proprio_space(space: gym.spaces.Dict) -> gym.spaces.Dict:
    """
    The space of :func:`rgb_proprio` for one env.

    :param space: ManiSkill's ``obs_mode="rgb"`` observation space of one env (without the batch dimension).
    """
    height, width, _ = space["sensor_data"][CAMERAS[0]]["rgb"].shape  # type: ignore[index]
    n_proprio = sum(int(np.prod(space[group][key].shape)) for group, key in PROPRIO_KEYS)  # type: ignore[index]
    return gym.spaces.Dict(
        {
            "rgb": gym.spaces.Box(0, 255, (height, width, 3 * len(CAMERAS)), np.uint8),
            "proprio": gym.spaces.Box(-np.inf, np.inf, (n_proprio,), np.float32),
        }
    )


def rgb_proprio(observation: dict) -> dict[str, np.ndarray]:
    """
    The paper's RGB observation from ManiSkill's ``obs_mode="rgb"`` one (numpy arrays, with or without leading batch
    dimensions): ``rgb`` ``[..., 128, 128, 6]`` uint8 (the base and wrist cameras, channels concatenated) and
    ``proprio`` ``[..., 25]`` float32 (joint positions and velocities, TCP pose). The camera parameters are dropped.
    """
    rgb = np.concatenate([np.asarray(observation["sensor_data"][c]["rgb"]) for c in CAMERAS], axis=-1)
    lead = rgb.shape[:-3]
    parts = [np.asarray(observation[g][k], dtype=np.float32).reshape(*lead, -1) for g, k in PROPRIO_KEYS]
    return {"rgb": rgb.astype(np.uint8), "proprio": np.concatenate(parts, axis=-1)}


class RGBProprio(gym.ObservationWrapper):
    """
    The paper's RGB observation as a Dict of numpy arrays (:func:`rgb_proprio`). Nothing in it shows the cue except
    the pixels of the cue phase.

    :param env: A MIKASA env in ``obs_mode="rgb"`` behind ``CPUGymWrapper``.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = rgb_proprio_space(env.observation_space)  # type: ignore[arg-type]

    def observation(self, observation: dict) -> dict[str, np.ndarray]:
        return rgb_proprio(observation)


def make_mikasa_env(
    env_id: str,
    obs_mode: str = "state",
    seed: int | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
    ignore_terminations: bool = False,
    **kwargs: Any,
) -> gym.Env:
    """
    One MIKASA-Robo env on the CPU backend with numpy observations (see the module documentation).

    :param env_id: One of :data:`MIKASA_IDS`.
    :param obs_mode: ManiSkill's observation mode: ``"state"`` (a flat vector, which includes the cue: not a memory
        test) or ``"rgb"`` (the paper's setting, as :class:`RGBProprio`).
    :param seed: Seed of the first ``reset`` (later resets continue from it unless given a seed).
    :param wrappers: Wrappers applied to the ManiSkill env itself (batched torch tensors, before ``CPUGymWrapper``),
        innermost first; e.g. :class:`~sb3_elmur.envs.mikasa.rgb.StateAlongside`.
    :param ignore_terminations: Episodes end at the time limit only, not at the success (ManiSkill's
        ``ignore_terminations``; what :class:`~sb3_elmur.envs.mikasa.batched.MikasaBatchedVecEnv` does by default).
    :param kwargs: Keyword arguments of the env (e.g. ``control_mode``).
    """
    check_mikasa_id(env_id)
    import mani_skill.envs  # noqa: F401  (registers ManiSkill's envs)
    import mikasa_robo_suite.rl.memory_envs  # noqa: F401  (registers the MIKASA-Robo ids)
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    import sb3_elmur.envs.mikasa.memory_variants  # noqa: F401  (registers the memory variants)

    env = gym.make(env_id, obs_mode=obs_mode, sim_backend="physx_cpu", render_backend="cpu", num_envs=1, **kwargs)
    for wrapper in wrappers:
        env = wrapper(env)
    env = MikasaInfo(CPUGymWrapper(env, ignore_terminations=ignore_terminations))
    if obs_mode == "rgb":
        env = RGBProprio(env)
    if seed is not None:
        env.reset(seed=seed)
    return env


def make_mikasa_vec_env(
    env_id: str, n_envs: int = 1, seed: int = 0, obs_mode: str = "state", subprocess: bool = False, **kwargs: Any
) -> VecEnv:
    """
    ``n_envs`` MIKASA-Robo envs as an SB3 VecEnv (each behind ``Monitor``, env ``i`` seeded ``seed + i``).

    :param env_id: One of :data:`MIKASA_IDS`.
    :param n_envs: Number of envs.
    :param seed: Seed of env 0.
    :param obs_mode: ``"state"`` or ``"rgb"``.
    :param subprocess: One process per env (``SubprocVecEnv``) instead of all in this one.
    :param kwargs: Keyword arguments of the env.
    """
    check_mikasa_id(env_id)

    def factory(rank: int) -> Callable[[], gym.Env]:
        def make() -> gym.Env:
            return Monitor(make_mikasa_env(env_id, obs_mode, **kwargs), info_keywords=("is_success",))

        return make

    vec_env: VecEnv = (SubprocVecEnv if subprocess else DummyVecEnv)([factory(i) for i in range(n_envs)])
    vec_env.seed(seed)
    return vec_env
