"""MaskableElmurPPO: ElmurPPO with invalid-action masking, following sb3-contrib's MaskablePPO protocol."""

from typing import Any, ClassVar, TypeVar

import numpy as np
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import VecEnv

from sb3_elmur.ppo.ppo_elmur import ElmurPPO
from sb3_elmur.ppo_mask.policies import CnnElmurPolicy, MlpElmurPolicy, MultiInputElmurPolicy

SelfMaskableElmurPPO = TypeVar("SelfMaskableElmurPPO", bound="MaskableElmurPPO")


class MaskableElmurPPO(ElmurPPO):
    """
    ElmurPPO with invalid-action masking: a drop-in replacement for sb3-contrib's ``MaskablePPO`` for tasks that
    need memory.

    The env says which actions are valid through an ``action_masks()`` method (or sb3-contrib's ``ActionMasker``
    wrapper). At every rollout step the masks restrict the action distribution before sampling and are stored
    with the step; training evaluates each step under the same masks, so at learning rate 0 the PPO ratio is
    exactly 1, as for ElmurPPO. ``predict(..., action_masks=...)`` and sb3-contrib's maskable ``evaluate_policy``
    and ``MaskableEvalCallback`` work as with MaskablePPO.

    Takes the arguments of :class:`~sb3_elmur.ElmurPPO`; the policies are its names (``"MlpElmurPolicy"``, ...)
    with maskable action distributions (Discrete, MultiDiscrete or MultiBinary actions).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpElmurPolicy": MlpElmurPolicy,
        "CnnElmurPolicy": CnnElmurPolicy,
        "MultiInputElmurPolicy": MultiInputElmurPolicy,
    }
    _buffer_action_masks: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._use_masking = True
        super().__init__(*args, **kwargs)

    def _action_masks(self, env: VecEnv) -> np.ndarray | None:
        return get_action_masks(env) if self._use_masking else None

    def learn(  # type: ignore[override]
        self: SelfMaskableElmurPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "MaskableElmurPPO",
        reset_num_timesteps: bool = True,
        use_masking: bool = True,
        progress_bar: bool = False,
    ) -> SelfMaskableElmurPPO:
        """
        :meth:`ElmurPPO.learn`, with ``use_masking``: read the env's ``action_masks()`` at every step (False: every
        action is valid, as MaskablePPO).
        """
        if use_masking and not is_masking_supported(self.env):
            raise ValueError(
                "The environment does not support action masking: give it an action_masks() method "
                "or wrap it in sb3_contrib.common.wrappers.ActionMasker"
            )
        self._use_masking = use_masking
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """
        Actions and new memory state, as :meth:`ElmurPPO.predict`, restricted to ``action_masks``
        (``[n_envs, mask_dims]``) when given.
        """
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_use_masking"]
