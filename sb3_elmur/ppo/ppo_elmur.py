"""ElmurPPO: PPO with an ELMUR memory policy, a drop-in replacement for sb3-contrib's RecurrentPPO."""

import math
import sys
import time
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_elmur.common.buffers import ElmurDictRolloutBuffer, ElmurRolloutBuffer, SegmentContext
from sb3_elmur.common.checks import check_finite_transition
from sb3_elmur.common.compilation import compile_pays, decision_message, timed_seconds_per_update
from sb3_elmur.common.policies import ElmurActorCriticPolicy, update_scaled_learning_rate
from sb3_elmur.elmur import ElmurConfig, StreamState
from sb3_elmur.ppo.policies import CnnElmurPolicy, MlpElmurPolicy, MultiInputElmurPolicy

SelfElmurPPO = TypeVar("SelfElmurPPO", bound="ElmurPPO")
#: ``compile_backbone="auto"``: eager updates timed (after the first, which pays one-time costs) before deciding.
AUTO_TIMED_UPDATES = 1


class ElmurPPO(PPO):
    """
    Proximal Policy Optimization with an ELMUR memory-transformer policy.

    The constructor takes the arguments of sb3-contrib's ``RecurrentPPO`` with the same defaults;
    switching is a matter of the class and policy names. ELMUR settings go in
    ``policy_kwargs=dict(elmur_kwargs=dict(segment_len=..., n_slots=..., ...))``.

    Rollouts act one step at a time (O(K) per step, key/value cache of the current segment); training
    recomputes whole segments in parallel, in fixed-size minibatches of samples of
    ``segments_per_sample`` consecutive segments, starting from the memory the policy acted with. The
    loss (clipped surrogate, value, entropy) is SB3's PPO loss, applied to the masked steps.

    :param policy: ``"MlpElmurPolicy"``, ``"CnnElmurPolicy"``, ``"MultiInputElmurPolicy"`` or a class.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Learning rate, or a function of the remaining progress (1 to 0).
    :param n_steps: Steps per env per rollout.
    :param batch_size: Minibatch size in steps: an epoch makes as many gradient steps as PPO's
        (``ceil(n_steps * n_envs / batch_size)``), each on whole samples of S segments.
    :param n_epochs: Epochs over the rollout per update.
    :param gamma: Discount factor.
    :param gae_lambda: GAE lambda.
    :param clip_range: Policy clipping parameter (or schedule).
    :param clip_range_vf: Value clipping parameter (or schedule); None disables it.
    :param normalize_advantage: Normalize advantages per minibatch.
    :param ent_coef: Entropy coefficient.
    :param vf_coef: Value loss coefficient.
    :param max_grad_norm: Gradient clipping norm.
    :param use_sde: Generalized state-dependent exploration (Box actions).
    :param sde_sample_freq: Resample the gSDE noise every n steps (-1: once per rollout).
    :param target_kl: Early stopping on the approximate KL (None: no limit).
    :param stats_window_size: Episodes averaged in the rollout logs.
    :param tensorboard_log: TensorBoard log folder (None: no logging).
    :param policy_kwargs: Policy arguments (see :class:`~sb3_elmur.common.policies.ElmurActorCriticPolicy`).
    :param verbose: 0 silent, 1 info, 2 debug.
    :param seed: Seed of the random generators.
    :param device: Torch device ("auto", "cpu", "cuda", ...).
    :param segments_per_sample: S, consecutive segments per training sample; gradient flows through
        memory inside a sample (see ``memory_bptt`` of the backbone), so the write path learns.
    :param _init_setup_model: Build the networks at construction.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpElmurPolicy": MlpElmurPolicy,
        "CnnElmurPolicy": CnnElmurPolicy,
        "MultiInputElmurPolicy": MultiInputElmurPolicy,
    }
    policy: ElmurActorCriticPolicy
    rollout_buffer: ElmurRolloutBuffer | ElmurDictRolloutBuffer
    #: The rollout buffer keeps each step's valid-action masks (MaskableElmurPPO).
    _buffer_action_masks: ClassVar[bool] = False

    def __init__(
        self,
        policy: str | type[ElmurActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        segments_per_sample: int = 3,
        _init_setup_model: bool = True,
    ):
        # PPO.__init__ is skipped on purpose: its minibatch-size warning counts steps, ours are samples.
        OnPolicyAlgorithm.__init__(
            self,
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary),
        )
        if normalize_advantage and batch_size <= 1:
            raise ValueError("batch_size must be greater than 1 with normalize_advantage=True")
        if segments_per_sample < 1:
            raise ValueError(f"segments_per_sample must be >= 1, got {segments_per_sample}")
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.clip_range = clip_range
        self.clip_range_vf = clip_range_vf
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.segments_per_sample = segments_per_sample
        self._last_states: StreamState | None = None
        self._segment_context: SegmentContext | None = None
        #: ``compile_backbone="auto"``: the decision of the current ``learn`` call (None: not yet) and the timed updates.
        self._compile_decision: bool | None = None
        self._eager_update_seconds: list[float] = []
        if isinstance(self.policy_class, type) and issubclass(self.policy_class, ElmurActorCriticPolicy):
            # Saved with every setting, so that the model still loads after a change of the defaults.
            config = ElmurConfig.coerce(self.policy_kwargs.get("elmur_kwargs"))
            self.policy_kwargs = {**self.policy_kwargs, "elmur_kwargs": config.to_dict()}
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        elmur = self.policy_kwargs.get("elmur_kwargs")
        if isinstance(elmur, dict):
            # A model saved by an earlier version may lack settings (see ElmurConfig.from_saved); new ones have all.
            self.policy_kwargs = {**self.policy_kwargs, "elmur_kwargs": ElmurConfig.from_saved(elmur).to_dict()}
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        if not isinstance(self.policy, ElmurActorCriticPolicy):
            raise ValueError(f"ElmurPPO needs an ElmurActorCriticPolicy, got {type(self.policy).__name__}")
        config = self.policy.elmur_config
        buffer_class = ElmurDictRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else ElmurRolloutBuffer
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            memory_shape=(self.policy.backbone.n_towers, config.n_layers, config.slots_per_layer, config.d_model),
            segment_len=config.segment_len,
            segments_per_sample=self.segments_per_sample,
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            action_masks=self._buffer_action_masks,
        )
        self._last_states = self.policy.initial_states(self.n_envs)
        self._segment_context = SegmentContext(self.observation_space, self.n_envs, config.segment_len)
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, (float, int)) and self.clip_range_vf <= 0:
                raise ValueError("clip_range_vf must be positive, pass None to deactivate value clipping")
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def _start_rollout(self, episode_starts: np.ndarray) -> StreamState:
        """
        Acting state at the start of a rollout. Envs in the middle of a segment get their cache rebuilt
        with the current parameters from the segment's earlier steps, which the buffer keeps as prefix:
        acting and training then compute the same function.
        """
        assert self._last_states is not None and self._segment_context is not None
        k = self.policy.segment_len
        step = self._last_states.step.cpu().numpy()
        length = np.where(episode_starts.astype(bool), 0, step % k)
        segment_start = step - step % k
        self.rollout_buffer.set_prefix(self._segment_context, length, segment_start)
        if not length.any():
            return self._last_states
        context = self._segment_context
        observations = obs_as_tensor(context.observations, self.device)  # type: ignore[arg-type]
        with th.no_grad():
            states = self.policy.prefill_states(
                observations,
                context.memory,  # type: ignore[arg-type]
                th.as_tensor(segment_start, device=self.device),
                th.as_tensor(length, device=self.device),
            )
        return states

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        Collect ``n_rollout_steps`` steps per env with the current policy into the rollout buffer.

        :param env: The training environment.
        :param callback: Callback called at each step (and at the start and end of the rollout).
        :param rollout_buffer: Buffer to fill.
        :param n_rollout_steps: Steps per env.
        :return: False if a callback stopped the rollout early.
        """
        assert isinstance(rollout_buffer, (ElmurRolloutBuffer, ElmurDictRolloutBuffer)), "ElmurPPO needs an Elmur buffer"
        assert self._last_obs is not None, "No previous observation was provided"
        assert self._segment_context is not None
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        check_finite_transition(self._last_obs, None, [], self.num_timesteps)  # e.g. those of reset()
        states = self._start_rollout(self._last_episode_starts)
        # Episode starts and step counters stay on the CPU: no step of the rollout waits for a GPU except to
        # read the actions.
        no_starts = th.zeros(env.num_envs, dtype=th.bool)

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            starts = th.as_tensor(self._last_episode_starts, dtype=th.bool)
            states = self.policy.reset_states(states, starts)
            timesteps = states.step.numpy().copy()
            self._segment_context.observe(self._last_obs, timesteps, states)  # type: ignore[arg-type]
            memory = states.memory
            action_masks = self._action_masks(env)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs, states = self.policy(obs_tensor, states, no_starts, action_masks=action_masks)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            check_finite_transition(new_obs, rewards, infos, self.num_timesteps + env.num_envs)  # type: ignore[arg-type]
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            # Timeout: bootstrap with the value of the terminal observation (as RecurrentPPO, GH #633).
            for idx, done in enumerate(dones):
                if (
                    done
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_value = self.policy.predict_values(
                            terminal_obs, states.rows(slice(idx, idx + 1)), no_starts[:1]
                        )[0]
                    rewards[idx] += self.gamma * terminal_value

            rollout_buffer.add(self._last_obs, actions, rewards, self._last_episode_starts, values, log_probs)  # type: ignore[arg-type]
            rollout_buffer.add_segments(timesteps, memory, action_masks)
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        self._last_states = states
        with th.no_grad():
            values = self.policy.predict_values(
                obs_as_tensor(new_obs, self.device),  # type: ignore[arg-type]
                states,
                th.as_tensor(dones, dtype=th.bool),
            )
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        for key, value in self.policy.memory_statistics(states).items():
            self.logger.record(f"memory/{key}", value)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _action_masks(self, env: VecEnv) -> np.ndarray | None:
        """Valid-action masks of the current step of every env (None: every action is valid)."""
        return None

    def learn(
        self: SelfElmurPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "ElmurPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfElmurPPO:
        self._compile_decision, self._eager_update_seconds = None, []  # "auto" decides for each learn call
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def train(self) -> None:
        """
        SB3's PPO update. With the policy's ``compile_backbone="auto"`` the first updates of a ``learn`` call run
        eagerly and are timed (:data:`AUTO_TIMED_UPDATES` after the first); the rest of the call then runs through
        ``torch.compile`` where :func:`~sb3_elmur.common.compilation.compile_pays` says the updates left win back a
        first compilation, else eagerly (logged as ``train/compiled_backbone``; printed to stderr when it compiles).
        """
        if self.policy.compile_backbone != "auto":
            super().train()
            return
        started = time.perf_counter()
        with self.policy.compiled_training(bool(self._compile_decision)):
            super().train()
        if self._compile_decision is None:
            self._eager_update_seconds.append(time.perf_counter() - started)
            seconds_per_update = timed_seconds_per_update(self._eager_update_seconds, AUTO_TIMED_UPDATES)
            if seconds_per_update is not None:
                self._decide_compile(seconds_per_update)
        self.logger.record("train/compiled_backbone", int(bool(self._compile_decision)))

    def _decide_compile(self, seconds_per_update: float) -> None:
        """``compile_backbone="auto"``: compile the updates left in this ``learn`` call if that pays."""
        steps_left = max(0, self._total_timesteps - self.num_timesteps)
        updates_left = math.ceil(steps_left / (self.n_steps * self.n_envs))
        self._compile_decision = compile_pays(seconds_per_update, updates_left)
        if self._compile_decision or self.verbose >= 1:
            print(decision_message(seconds_per_update, updates_left, self._compile_decision), file=sys.stderr)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        """SB3's schedule update, keeping the policy's per-group scales (``backbone_lr_scale``)."""
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            update_scaled_learning_rate(optimizer, learning_rate)

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "_last_states",
            "_segment_context",
            "_compile_decision",
            "_eager_update_seconds",
        ]
