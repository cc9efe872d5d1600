"""
MIKASA-Robo as one batched ManiSkill env behind SB3's VecEnv API: the GPU backend's parallel simulation.

ManiSkill simulates ``num_envs`` copies of a task in one env on the GPU (``sim_backend="physx_cuda"``), with batched
torch tensors in and out. :class:`MikasaBatchedVecEnv` turns that into what SB3 expects, the same as
:func:`~sb3_elmur.envs.mikasa.adapter.make_mikasa_vec_env` gives from ``n_envs`` CPU envs: numpy observations,
``TimeLimit.truncated`` at every step, ``terminal_observation`` in the ``info`` of the step that ends an episode,
``is_success`` (``success_once``, the suite's metric) and nothing else of the raw ``info`` (which leaks the cue), an
automatic reset at the end of the episodes, env ``i`` seeded ``seed + i`` at the first reset.
:func:`make_mikasa_batched_vec_env` adds SB3's ``VecMonitor`` (the episode statistics).

Episodes end at the time limit only (``ignore_terminations``, as the suite's own training runs them; the success is
still recorded, ``success_once``): every sub-env then starts and ends its episodes at the same steps, so a reset is
always a reset of all of them. The suite's tasks cannot reset some sub-envs alone: their ``_initialize_episode``
overwrites the per-env task state (the target colour, the cubes' start positions) of every sub-env with that of the
ones being reset (``mikasa_robo_suite/rl/memory_envs/remember_color.py``).

On a machine without a GPU the class runs on the CPU backend with ``n_envs=1`` (ManiSkill's CPU backend simulates
one env per process): the same code path, checked against the CPU adapter step for step in ``tests/test_mikasa.py``.
"""

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from sb3_elmur.envs.mikasa.adapter import check_mikasa_id, rgb_proprio, rgb_proprio_space


def default_sim_backend() -> str:
    """``"physx_cuda"`` where a CUDA device is visible, else ``"physx_cpu"`` (which simulates one env only)."""
    return "physx_cuda" if th.cuda.is_available() else "physx_cpu"


def _index(observations: Any, i: int) -> Any:
    """Sub-env ``i`` of batched observations (array or dict of arrays), copied."""
    if isinstance(observations, dict):
        return {key: _index(value, i) for key, value in observations.items()}
    return observations[i].copy()


class MikasaBatchedVecEnv(VecEnv):
    """
    ``n_envs`` MIKASA-Robo envs simulated as one batched ManiSkill env (see the module documentation).

    :param env_id: One of :data:`~sb3_elmur.envs.mikasa.adapter.MIKASA_IDS`.
    :param n_envs: Sub-envs (``num_envs`` of the ManiSkill env).
    :param seed: Seed of sub-env 0 at the first reset (sub-env ``i``: ``seed + i``).
    :param obs_mode: ``"state"`` (a flat float32 vector) or ``"rgb"`` (the Dict of
        :func:`~sb3_elmur.envs.mikasa.adapter.rgb_proprio`).
    :param sim_backend: ManiSkill's simulation backend (default :func:`default_sim_backend`); ``"physx_cpu"``
        needs ``n_envs=1``.
    :param wrappers: Wrappers applied to the ManiSkill env (batched torch tensors), innermost first.
    :param ignore_terminations: Episodes end at the time limit only (see the module documentation); False (episodes
        also end at the success, as :func:`~sb3_elmur.envs.mikasa.adapter.make_mikasa_vec_env` runs them by default)
        needs ``n_envs=1``.
    :param kwargs: Keyword arguments of the env (e.g. ``control_mode``).
    """

    def __init__(
        self,
        env_id: str,
        n_envs: int = 1,
        seed: int = 0,
        obs_mode: str = "state",
        sim_backend: str | None = None,
        wrappers: Sequence[Callable[[gym.Env], gym.Env]] = (),
        ignore_terminations: bool = True,
        **kwargs: Any,
    ) -> None:
        check_mikasa_id(env_id)
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if not ignore_terminations and n_envs > 1:
            raise ValueError(
                "ignore_terminations=False needs n_envs=1: episodes that end at the success would reset some sub-envs "
                "alone, and the MIKASA-Robo tasks overwrite the task state of all sub-envs when they reset some"
            )
        if obs_mode not in ("state", "rgb"):
            raise ValueError(f"obs_mode must be 'state' or 'rgb', got {obs_mode!r}")
        backend = sim_backend or default_sim_backend()
        if backend == "physx_cpu" and n_envs != 1:
            raise ValueError(
                f"ManiSkill's CPU backend simulates one env per process (n_envs={n_envs}): use n_envs=1, a GPU backend "
                "(sim_backend='physx_cuda'), or make_mikasa_vec_env for several CPU envs"
            )
        import mani_skill.envs  # noqa: F401  (registers ManiSkill's envs)
        import mikasa_robo_suite.rl.memory_envs  # noqa: F401  (registers the MIKASA-Robo ids)
        from mani_skill.utils import common

        import sb3_elmur.envs.mikasa.memory_variants  # noqa: F401  (registers the memory variants)

        render = {"render_backend": "cpu"} if backend == "physx_cpu" else {}
        env = gym.make(env_id, obs_mode=obs_mode, sim_backend=backend, num_envs=n_envs, **render, **kwargs)
        for wrapper in wrappers:
            env = wrapper(env)
        self.env = env
        base: Any = env.unwrapped
        #: ManiSkill's tensors (in nested dicts) to numpy arrays on the host.
        self._to_numpy = common.to_numpy
        self.obs_mode = obs_mode
        self.ignore_terminations = ignore_terminations
        single = base.single_observation_space
        observation_space = rgb_proprio_space(single) if obs_mode == "rgb" else single
        super().__init__(n_envs, observation_space, base.single_action_space)
        self.device = base.device
        self._seeds: list[int] | None = [seed + i for i in range(n_envs)]
        self._actions: th.Tensor | None = None
        self._solved = th.zeros(n_envs, dtype=th.bool, device=self.device)

    # ------------------------------------------------------------------ VecEnv API
    def _observations(self, raw: Any) -> VecEnvObs:
        observations = self._to_numpy(raw)
        if self.obs_mode == "rgb":
            return rgb_proprio(observations)
        return observations.astype(np.float32, copy=False)

    def reset(self) -> VecEnvObs:
        """Reset every sub-env (seeded at the first reset and after :meth:`seed`)."""
        raw, _ = self.env.reset(seed=self._seeds)
        self._seeds = None
        self._solved.zero_()
        self.reset_infos = [{"is_success": False} for _ in range(self.num_envs)]
        return self._observations(raw)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seeds of the next reset: ``seed + i`` for sub-env ``i``."""
        if seed is None:
            return [None] * self.num_envs
        self._seeds = [seed + i for i in range(self.num_envs)]
        return list(self._seeds)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = th.as_tensor(np.asarray(actions), dtype=th.float32, device=self.device)

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async first"
        raw, reward, terminated, truncated, info = self.env.step(self._actions)
        terminated = th.as_tensor(terminated, device=self.device).view(self.num_envs)
        if self.ignore_terminations:
            terminated = th.zeros_like(terminated)
        truncated = th.as_tensor(truncated, device=self.device).view(self.num_envs)
        if "success" in info:
            self._solved |= th.as_tensor(info["success"], device=self.device).view(self.num_envs).bool()
        # One transfer to the host for the step's small tensors.
        flags = th.stack([terminated.bool(), truncated.bool(), self._solved]).cpu().numpy()
        rewards = np.asarray(self._to_numpy(reward), dtype=np.float32).reshape(self.num_envs)
        observations = self._observations(raw)
        dones = flags[0] | flags[1]
        truncated_only = flags[1] & ~flags[0]
        infos: list[dict[str, Any]] = [
            {"is_success": bool(flags[2, i]), "TimeLimit.truncated": bool(truncated_only[i])} for i in range(self.num_envs)
        ]
        if dones.any():
            done = np.flatnonzero(dones)
            for i in done:
                infos[i]["terminal_observation"] = _index(observations, i)
            if done.size != self.num_envs:  # ignore_terminations keeps the sub-envs in step
                raise RuntimeError(f"sub-envs {done.tolist()} ended their episodes alone: the tasks cannot reset them alone")
            raw, _ = self.env.reset()
            self._solved.zero_()
            observations = self._observations(raw)
        return observations, rewards, dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of the one batched env, once per selected sub-env."""
        value = getattr(self.env.unwrapped, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise NotImplementedError("the sub-envs of a batched ManiSkill env share their attributes")

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list:
        raise NotImplementedError("the sub-envs of a batched ManiSkill env have no methods of their own")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def make_mikasa_batched_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int = 0,
    obs_mode: str = "state",
    sim_backend: str | None = None,
    ignore_terminations: bool = True,
    **kwargs: Any,
) -> VecEnv:
    """
    :class:`MikasaBatchedVecEnv` behind SB3's ``VecMonitor`` (episode returns, lengths and ``is_success`` in the
    ``info`` of the step that ends an episode, as :func:`~sb3_elmur.envs.mikasa.adapter.make_mikasa_vec_env`'s
    per-env ``Monitor`` gives them).

    :param env_id: One of :data:`~sb3_elmur.envs.mikasa.adapter.MIKASA_IDS`.
    :param n_envs: Sub-envs.
    :param seed: Seed of sub-env 0.
    :param obs_mode: ``"state"`` or ``"rgb"``.
    :param sim_backend: ManiSkill's simulation backend (default: the GPU where there is one).
    :param ignore_terminations: Episodes end at the time limit only (False needs ``n_envs=1``).
    :param kwargs: Keyword arguments of the env.
    """
    env = MikasaBatchedVecEnv(env_id, n_envs, seed, obs_mode, sim_backend, ignore_terminations=ignore_terminations, **kwargs)
    return VecMonitor(env, info_keywords=("is_success",))
