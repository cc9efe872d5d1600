"""The ELMUR actor-critic policy: SB3's ActorCriticPolicy with an ELMUR backbone between features and heads."""

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.common.utils import get_device
from torch import nn

from sb3_elmur.common.checks import check_state_values
from sb3_elmur.common.compilation import compile_errors
from sb3_elmur.common.type_aliases import SegmentBatch, TensorObs
from sb3_elmur.elmur import ElmurBackbone, ElmurConfig, MemoryState, StreamState

SUPPORTED_OBSERVATION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Dict)
#: Number of numpy arrays in the state tuple returned by ``predict``.
STATE_FIELDS = ("memory_vectors", "memory_timestamps", "step", "keys", "values", "outputs", "signature")


def check_observation_space(observation_space: spaces.Space) -> None:
    """
    Raise a clear error for observation spaces the ELMUR policies cannot handle.

    :param observation_space: The env's observation space.
    """
    if not isinstance(observation_space, SUPPORTED_OBSERVATION_SPACES):
        raise ValueError(
            f"ELMUR policies do not support observation space {observation_space!r}: use Box (vectors or images), "
            "Discrete, MultiDiscrete, MultiBinary or a Dict of those (wrap Tuple spaces, e.g. with "
            "gymnasium.wrappers.FlattenObservation)."
        )
    if isinstance(observation_space, spaces.Dict):
        for key, subspace in observation_space.spaces.items():
            if isinstance(subspace, spaces.Dict) or not isinstance(subspace, SUPPORTED_OBSERVATION_SPACES):
                raise ValueError(f"ELMUR policies do not support the observation subspace {key!r}: {subspace!r}")


def fast_optimizer_kwargs(policy: ActorCriticPolicy) -> dict[str, Any]:
    """
    The policy's optimizer arguments, with the fused implementation of Adam / AdamW unless the user chose
    an implementation (``fused`` or ``foreach``): one kernel for all parameters instead of about ten ops
    per parameter tensor, which at RL model sizes makes the optimizer step 4-5x faster on a CPU.

    :param policy: The policy (its ``optimizer_class`` and ``optimizer_kwargs``).
    """
    kwargs = dict(policy.optimizer_kwargs)
    if policy.optimizer_class in (th.optim.Adam, th.optim.AdamW) and not {"fused", "foreach"} & set(kwargs):
        kwargs["fused"] = True
    return kwargs


def update_scaled_learning_rate(optimizer: th.optim.Optimizer, learning_rate: float) -> None:
    """
    Set every parameter group's learning rate to ``learning_rate`` times the group's ``lr_scale`` (1 when absent):
    SB3's ``update_learning_rate`` with the ELMUR policy's per-group scales kept.

    :param optimizer: The policy's optimizer.
    :param learning_rate: The schedule's current learning rate.
    """
    for group in optimizer.param_groups:
        group["lr"] = learning_rate * group.get("lr_scale", 1.0)


def flatten_time(obs: TensorObs) -> TensorObs:
    """``[batch, time, ...]`` -> ``[batch * time, ...]`` for a tensor or a dict of tensors."""
    if isinstance(obs, dict):
        return {key: value.flatten(0, 1) for key, value in obs.items()}
    return obs.flatten(0, 1)


class ElmurActorCriticPolicy(ActorCriticPolicy):
    """
    Actor-critic policy with an ELMUR memory backbone (layer-local memory, LRU update/rewrite).

    Observations go through the features extractor, then the backbone (one step at a time when
    acting, whole segments in parallel when training: the same function), then SB3's MLP extractor
    and action/value heads. Constructor arguments are those of sb3-contrib's recurrent policies with
    the LSTM settings replaced by ``elmur_kwargs``.

    :param observation_space: Observation space.
    :param action_space: Action space.
    :param lr_schedule: Learning rate schedule.
    :param net_arch: Sizes of the actor/critic MLP heads on top of the backbone.
    :param activation_fn: Activation of the MLP heads.
    :param ortho_init: Orthogonal initialisation of the features extractor and heads (the backbone
        keeps its own). Off by default, unlike SB3: its 0.01-gain action head starves the backbone of
        gradient (T-Maze behaviour cloning: turn NLL 0.72 with it, 0.05 without, after 150 updates).
    :param use_sde: Generalised state-dependent exploration (Box actions).
    :param log_std_init: Initial log standard deviation.
    :param full_std: gSDE: (n_features x n_actions) std parameters instead of (n_features,).
    :param use_expln: gSDE: use ``expln`` instead of ``exp`` for the std.
    :param squash_output: gSDE: squash actions with tanh.
    :param features_extractor_class: Features extractor.
    :param features_extractor_kwargs: Its keyword arguments.
    :param share_features_extractor: Share the features extractor between actor and critic.
    :param normalize_images: Divide image observations by 255.
    :param optimizer_class: Optimizer.
    :param optimizer_kwargs: Optimizer keyword arguments (besides the learning rate).
    :param elmur_kwargs: Backbone settings: an :class:`~sb3_elmur.elmur.ElmurConfig` or a dict of its
        fields (``d_model``, ``n_layers``, ``n_heads``, ``segment_len``, ``n_slots``, ``lru_lambda``,
        ``memory_bptt``, ...).
    :param shared_backbone: Actor and critic share one backbone; the critic's gradient does not flow
        into it (as ``shared_lstm``).
    :param enable_critic_backbone: The critic has a backbone of its own (as ``enable_critic_lstm``).
        With both options False the critic is a linear layer on the features (no memory).
    :param compile_backbone: Train through ``torch.compile`` of the backbone's parallel path (acting stays
        eager): True, False, or ``"auto"`` (the default): ElmurPPO times its first eager updates and compiles the rest
        of a ``learn`` call where that is long enough to win back a first compilation
        (:func:`~sb3_elmur.common.compilation.compile_pays`); ElmurBC decides the same way. About 2.4x faster PPO
        updates on a CPU at RL sizes; the first compilation of a model shape takes 1-2 minutes on a 2-core CPU, later
        runs reuse torch's on-disk cache (a few seconds). A compilation that fails (no C++ compiler, ...) is reported
        with a warning and training goes on eagerly. See docs/ppo.md.
    :param compile_acting: Act through the backbone's compiled branch-free step
        (:meth:`~sb3_elmur.elmur.ElmurBackbone.compile_step`: two graphs, with and without the commit). Measured on
        a CPU with the envs in phase: acting steps 3.7x faster than eager at 1 env, 2.6x at 8 and 1.4x at 64. Envs
        out of phase take the commit graph more often. The first compilation takes up to a minute or two on a
        2-core CPU.
    :param backbone_lr_scale: The backbone's parameters train at this multiple of the algorithm's learning rate
        (its schedule included; the features extractor and the heads at the rate itself). ElmurPPO and
        MaskableElmurPPO apply it; see docs/ppo.md for the measurements behind the default.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = False,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        elmur_kwargs: ElmurConfig | dict[str, Any] | None = None,
        shared_backbone: bool = False,
        enable_critic_backbone: bool = True,
        compile_backbone: bool | str = "auto",
        compile_acting: bool = False,
        backbone_lr_scale: float = 1.0,
    ):
        check_observation_space(observation_space)
        if shared_backbone and enable_critic_backbone:
            raise ValueError("Choose either shared_backbone=True or enable_critic_backbone=True (or neither), not both.")
        if shared_backbone and not share_features_extractor:
            raise ValueError("shared_backbone=True needs share_features_extractor=True.")
        self.elmur_config = ElmurConfig.coerce(elmur_kwargs)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            ortho_init,
            use_sde,
            log_std_init,
            full_std,
            use_expln,
            squash_output,
            features_extractor_class,
            features_extractor_kwargs,
            share_features_extractor,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
        )
        self.shared_backbone = shared_backbone
        self.enable_critic_backbone = enable_critic_backbone
        if compile_backbone not in (True, False, "auto"):
            raise ValueError(f"compile_backbone must be True, False or 'auto', got {compile_backbone!r}")
        self.compile_backbone = compile_backbone
        self.compile_acting = compile_acting
        self._compile_failed = False
        self._compiled_forward: Any = None
        self._compiled_forward_any_batch: Any = None
        self._any_batch = False
        self._compiled_step: Any = None
        # Actor and critic backbones are two towers of one module: each torch op runs once for both.
        self.backbone = ElmurBackbone(self.features_dim, self.elmur_config, n_towers=2 if enable_critic_backbone else 1)
        # Critic without memory: map features to the backbone width so the same value head applies.
        self.critic = None if (shared_backbone or enable_critic_backbone) else nn.Linear(self.features_dim, self.latent_dim)
        # Identifies states made by this model (kept with the weights; from os.urandom, not the torch RNG).
        self.register_buffer("state_signature", th.tensor([int.from_bytes(os.urandom(7), "little")], dtype=th.long))
        if not (backbone_lr_scale > 0 and np.isfinite(backbone_lr_scale)):
            raise ValueError(f"backbone_lr_scale must be a positive number, got {backbone_lr_scale!r}")
        self.backbone_lr_scale = float(backbone_lr_scale)
        # One parameter group at scale 1 (as every SB3 policy, and as models saved before the option existed).
        groups = [{"params": list(self.parameters()), "lr_scale": 1.0}]
        if self.backbone_lr_scale != 1.0:
            backbone = list(self.backbone.parameters())
            in_backbone = {id(param) for param in backbone}
            others = [param for param in self.parameters() if id(param) not in in_backbone]
            groups = [{"params": backbone, "lr_scale": self.backbone_lr_scale}, {"params": others, "lr_scale": 1.0}]
        self.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **fast_optimizer_kwargs(self))
        update_scaled_learning_rate(self.optimizer, lr_schedule(1))

    @property
    def latent_dim(self) -> int:
        """Width of the backbone output (``d_model``)."""
        return self.elmur_config.d_model

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = MlpExtractor(
            self.latent_dim, net_arch=self.net_arch, activation_fn=self.activation_fn, device=self.device
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            elmur_kwargs=self.elmur_config.to_dict(),
            shared_backbone=self.shared_backbone,
            enable_critic_backbone=self.enable_critic_backbone,
            compile_backbone=self.compile_backbone,
            compile_acting=self.compile_acting,
            backbone_lr_scale=self.backbone_lr_scale,
            share_features_extractor=self.share_features_extractor,
            normalize_images=self.normalize_images,
        )
        return data

    @classmethod
    def load(cls, path: str, device: th.device | str = "auto") -> "ElmurActorCriticPolicy":  # type: ignore[override]
        """
        Load a policy saved by :meth:`save`, also one saved by an earlier version whose backbone settings lack some
        (they take their values of then: :meth:`~sb3_elmur.elmur.ElmurConfig.from_saved`).

        :param path: The file written by :meth:`save`.
        :param device: Device on which the policy is loaded.
        """
        device = get_device(device)
        saved = th.load(path, map_location=device, weights_only=False)  # gymnasium spaces: not tensors only, as SB3's
        elmur = saved["data"].get("elmur_kwargs") or {}
        data = {**saved["data"], "elmur_kwargs": elmur if isinstance(elmur, ElmurConfig) else ElmurConfig.from_saved(elmur)}
        policy = cls(**data)
        policy.load_state_dict(saved["state_dict"])
        return policy.to(device)

    # ------------------------------------------------------------------ states
    @property
    def segment_len(self) -> int:
        return self.elmur_config.segment_len

    def initial_states(self, n_envs: int) -> StreamState:
        """Fresh acting state (empty memory, step 0) for ``n_envs`` envs."""
        return self.backbone.initial_state(n_envs)

    def reset_states(self, states: StreamState, episode_starts: th.Tensor) -> StreamState:
        """Start new episodes for the flagged envs (others untouched)."""
        mask = episode_starts.to(th.bool).view(-1)
        if not mask.any():
            return states
        return ElmurBackbone.reset_state(states, mask)

    def _backbone_input(self, features: th.Tensor | tuple[th.Tensor, th.Tensor], leading: tuple[int, ...]) -> th.Tensor:
        """
        What the backbone reads, shaped ``[*leading, F]``: the shared features, or with separate extractors
        the actor's features (stacked with the critic's when the critic has a tower of its own).
        """
        if self.share_features_extractor:
            return features.view(*leading, -1)  # type: ignore[union-attr]
        pi_features, vf_features = features
        if self.backbone.n_towers == 1:
            return pi_features.view(*leading, -1)
        return th.stack([pi_features, vf_features]).view(2, *leading, -1)

    def _latents(
        self, out: th.Tensor, features: th.Tensor | tuple[th.Tensor, th.Tensor], mask: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """
        Actor and critic latents from the backbone output ``[G, ..., d_model]`` (restricted to ``mask`` when given);
        the critic's is None when only the actor tower ran.

        :param out: Towers-first backbone output.
        :param features: The features the backbone read (the critic without memory maps them instead).
        :param mask: Optional boolean mask over the flattened leading dimensions of ``out``.
        """
        if mask is not None:
            out = out.flatten(1, -2)[:, mask]
        if self.backbone.n_towers == 2:
            return out[0], out[1] if out.shape[0] == 2 else None
        if self.shared_backbone:
            return out[0], out[0].detach()
        vf_features = features if self.share_features_extractor else features[1]  # type: ignore[index]
        vf_features = vf_features.reshape(-1, vf_features.shape[-1])  # type: ignore[union-attr]
        return out[0], self.critic(vf_features if mask is None else vf_features[mask])  # type: ignore[misc]

    def prefill_states(
        self, observations: TensorObs, memory: MemoryState, segment_start: th.Tensor, length: th.Tensor
    ) -> StreamState:
        """
        Acting state of envs that stand ``length`` steps into a segment, rebuilt with the current
        parameters from the observations of those steps (see :meth:`ElmurBackbone.prefill`).

        :param observations: ``[n_envs, K, *obs_shape]`` (or a dict), the segment's first steps.
        :param memory: Memory (all towers) at the segment start.
        :param segment_start: ``[n_envs]`` absolute step of the segment start.
        :param length: ``[n_envs]`` steps already taken in the segment.
        """
        features = self.extract_features(flatten_time(observations))
        inputs = self._backbone_input(features, (segment_start.shape[0], self.segment_len))
        return self.backbone.prefill(inputs, memory, segment_start, length)

    # ------------------------------------------------------------------ acting (streaming path)
    def _acting_step(self) -> Any:
        """The backbone's acting step: eager, or its compiled branch-free form when ``compile_acting`` is set."""
        if not self.compile_acting:
            return self.backbone.step_towers
        if self._compiled_step is None:
            self._compiled_step = self.backbone.compile_step()
        return self._compiled_step

    def forward(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        states: StreamState,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, StreamState]:
        """
        One acting step for every env.

        :param obs: Observations of the current step.
        :param states: Acting state (its caches are updated in place).
        :param episode_starts: ``[n_envs]``; 1 starts a new episode before the step.
        :param deterministic: Greedy actions.
        :param action_masks: ``[n_envs, mask_dims]`` valid actions (maskable policies only), or None.
        :return: Actions, values, log-probabilities and the new state.
        """
        features = self.extract_features(obs)
        out, states = self._acting_step()(self._backbone_input(features, (states.batch_size,)), states, episode_starts)
        latent_pi, latent_vf = self._latents(out, features)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        distribution = self._masked(
            self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi)), action_masks
        )
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, values, log_prob, states

    def get_distribution(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        state: StreamState,
        episode_starts: th.Tensor,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[Distribution, StreamState]:
        """Action distribution of one acting step (restricted to ``action_masks`` when given) and the new state."""
        features = self.extract_features(obs)
        out, state = self._acting_step()(self._backbone_input(features, (state.batch_size,)), state, episode_starts)
        return self._masked(self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(out[0])), action_masks), state

    def _masked(self, distribution: Distribution, action_masks: np.ndarray | th.Tensor | None) -> Distribution:
        """``distribution`` restricted to the valid actions (only maskable policies accept masks)."""
        if action_masks is None:
            return distribution
        if not isinstance(distribution, MaskableDistribution):
            raise ValueError(
                f"{type(self).__name__} does not take action masks: use MaskableElmurPPO (a Maskable*ElmurPolicy)"
            )
        distribution.apply_masking(action_masks)  # type: ignore[arg-type]
        return distribution

    def predict_values(self, obs: PyTorchObs, states: StreamState, episode_starts: th.Tensor) -> th.Tensor:  # type: ignore[override]
        """
        Values of one acting step. The given state is not modified.

        :param obs: Observations.
        :param states: Acting state before the step.
        :param episode_starts: ``[n_envs]``; 1 starts a new episode before the step.
        """
        features = self.extract_features(obs)
        if self.critic is not None:  # no memory: the step itself is not needed
            vf_features = features if self.share_features_extractor else features[1]
            return self.value_net(self.mlp_extractor.forward_critic(self.critic(vf_features)))
        inputs = self._backbone_input(features, (states.batch_size,))
        # The eager step writes its caches in place (hence the copy); the compiled branch-free one never does.
        out, _ = self._acting_step()(inputs, states if self.compile_acting else states.clone(), episode_starts)
        return self.value_net(self.mlp_extractor.forward_critic(self._latents(out, features)[1]))

    # ------------------------------------------------------------------ training (parallel path)
    @contextmanager
    def compiled_training(self, enabled: bool | None, any_batch: bool = False) -> Iterator[None]:
        """
        Inside the block the parallel path runs compiled (``enabled`` True) or eager (False), whatever
        ``compile_backbone`` says; the setting is restored after (None: keep it). The compiled function is
        kept for later blocks.

        :param any_batch: The batches have varying numbers of rows (behaviour cloning's packed rows): the compiled
            path gets a dynamic batch size instead of one compilation per size.
        """
        previous = self.compile_backbone, self._any_batch
        if enabled is not None:
            self.compile_backbone = enabled
        self._any_batch = any_batch
        try:
            yield
        finally:
            self.compile_backbone, self._any_batch = previous

    def _parallel_forward(self) -> Any:
        """
        The backbone's parallel path: compiled on first use when ``compile_backbone`` is True (``"auto"``: eager until
        the algorithm has decided, :meth:`compiled_training`), eager after a compilation failed.
        """
        if self.compile_backbone is not True or self._compile_failed:
            return self.backbone.forward_towers
        if self._any_batch:
            if self._compiled_forward_any_batch is None:
                # A symbolic batch size from the start: one compilation for every number of rows.
                self._compiled_forward_any_batch = self._eager_if_compilation_fails(
                    self.backbone.compile_parallel(dynamic_batch=True)
                )
            return self._compiled_forward_any_batch
        if self._compiled_forward is None:
            # Fixed shapes: PPO minibatches all have the same size, so one compilation serves a whole run.
            self._compiled_forward = self._eager_if_compilation_fails(self.backbone.compile_parallel())
        return self._compiled_forward

    def _eager_if_compilation_fails(self, compiled: Any) -> Any:
        """``compiled``, falling back for good to the eager path (with a warning) when its compilation fails."""

        def forward(*args: Any, **kwargs: Any) -> Any:
            if not self._compile_failed:
                try:
                    return compiled(*args, **kwargs)
                except compile_errors() as error:
                    self._compile_failed = True
                    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    warnings.warn(
                        f"torch.compile of the ELMUR backbone failed ({type(error).__name__}: {message[:300]}); "
                        "training goes on eagerly (compile_backbone=False avoids the attempt)",
                        stacklevel=2,
                    )
            return self.backbone.forward_towers(*args, **kwargs)

        return forward

    def _sequence(
        self, obs: SegmentBatch, memory_bptt: int | None = -1, final_memory: bool = True
    ) -> tuple[th.Tensor, th.Tensor, MemoryState | None]:
        """Actor and critic latents of the masked steps of a segment batch and (if asked) the memory after the batch."""
        features = self.extract_features(flatten_time(obs.observations))
        out, memory = self._parallel_forward()(
            self._backbone_input(features, tuple(obs.timesteps.shape)),
            obs.timesteps,
            obs.memory,
            memory_bptt=memory_bptt,
            check_layout=False,
            final_memory=final_memory,
        )
        latent_pi, latent_vf = self._latents(out, features, obs.mask.flatten())
        return latent_pi, latent_vf, memory

    def evaluate_actions(  # type: ignore[override]
        self, obs: SegmentBatch, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        Values, log-probabilities and entropy of the masked steps of a segment batch.

        :param obs: The batch layout (observations in blocks of K, timesteps, loss mask, memory).
        :param actions: Actions of the masked steps, in ``obs.mask`` order.
        :return: One entry per masked step.
        """
        latent_pi, latent_vf, _ = self._sequence(obs, final_memory=False)
        distribution = self._masked(
            self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi)), obs.action_masks
        )
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        return values, distribution.log_prob(actions), distribution.entropy()

    def actor_distribution(self, obs: SegmentBatch, memory_bptt: int | None = -1) -> tuple[Distribution, MemoryState]:
        """
        Action distribution of the masked steps under the actor (behaviour cloning, parallel
        evaluation) and the actor's memory after the batch (to carry into the next segments).

        :param obs: The batch layout.
        :param memory_bptt: Override of the backbone's ``memory_bptt`` (-1: the config's).
        """
        # The actor tower alone: the critic's tower would cost as much and get no gradient.
        memory = MemoryState(obs.memory.vectors[:, :1], obs.memory.timestamps)
        actor_only = SegmentBatch(obs.observations, obs.timesteps, obs.mask, memory)
        with self.backbone.first_towers(1):
            latent_pi, _, memory = self._sequence(actor_only, memory_bptt)
        assert memory is not None
        return self._get_action_dist_from_latent(self.mlp_extractor.forward_actor(latent_pi)), memory

    # ------------------------------------------------------------------ predict (numpy API)
    def state_to_numpy(self, state: StreamState) -> tuple[np.ndarray, ...]:
        """The actor state as the tuple of numpy arrays that :meth:`predict` returns (one row per env)."""
        signature = np.full(state.batch_size, int(self.state_signature), dtype=np.int64)
        return (*(t.cpu().numpy() for t in state.tensors()), signature)

    def state_from_numpy(self, state: tuple[np.ndarray, ...], n_envs: int) -> StreamState:
        """
        Check a state passed to :meth:`predict` and turn it into tensors.

        :param state: The tuple returned by a previous :meth:`predict` call.
        :param n_envs: Number of observations in the batch.
        """
        if not isinstance(state, (tuple, list)) or len(state) != len(STATE_FIELDS):
            raise ValueError(
                f"state must be the tuple of {len(STATE_FIELDS)} arrays {STATE_FIELDS} returned by predict() "
                f"(or None for fresh envs), got {type(state).__name__}"
            )
        reference = self.backbone.initial_state(n_envs).tensors()  # shapes, dtypes and devices of a valid state
        arrays = [np.asarray(array) for array in state]
        for index, (name, array) in enumerate(zip(STATE_FIELDS, arrays, strict=True)):
            expected = reference[index].shape if index < len(reference) else (n_envs,)
            if array.shape != tuple(expected):
                raise ValueError(
                    f"state[{index}] ({name}) has shape {array.shape}, expected {tuple(expected)} for "
                    f"{n_envs} env(s): the state must come from predict() of this model with the same number of envs"
                )
        if not np.all(arrays[-1] == int(self.state_signature)):
            raise ValueError("state was produced by another model: pass state=None to start fresh with this model")
        check_state_values(dict(zip(STATE_FIELDS, arrays, strict=True)), self.elmur_config)
        tensors = [
            th.tensor(array, device=like.device, dtype=like.dtype)  # a copy: acting updates it in place
            for array, like in zip(arrays[:-1], reference, strict=True)
        ]
        return StreamState.from_tensors(tuple(tensors))

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """
        Actions for a batch of observations, with the memory state of each env.

        :param observation: Observation(s) (one per env, or a single one).
        :param state: The state returned by the previous call, or None to start fresh.
        :param episode_start: ``[n_envs]`` bools; True resets that env's memory before acting.
        :param deterministic: Greedy actions.
        :param action_masks: ``[n_envs, mask_dims]`` valid actions (maskable policies only), or None.
        :return: The actions and the new state (a tuple of numpy arrays, one row per env).
        """
        n_envs = _n_observations(self, observation)
        stream = None if state is None else self.state_from_numpy(state, n_envs)
        actions, stream = self.predict_stream(observation, stream, episode_start, deterministic, action_masks)
        return actions, self.state_to_numpy(stream)

    def predict_stream(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: StreamState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, StreamState]:
        """
        :meth:`predict` with the state kept as torch tensors (updated in place, never copied to numpy):
        the fast way to run long evaluations (e.g. T-Maze corridors of 10^6 steps).

        :param observation: Observation(s).
        :param state: The state returned by the previous call, or None to start fresh.
        :param episode_start: ``[n_envs]`` bools; True resets that env's memory before acting.
        :param deterministic: Greedy actions.
        :param action_masks: ``[n_envs, mask_dims]`` valid actions (maskable policies only), or None.
        """
        self.set_training_mode(False)
        _check_finite(observation)
        obs_tensor, vectorized_env = self.obs_to_tensor(observation)
        n_envs = (next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor).shape[0]
        if state is None:
            state = self.backbone.initial_state(n_envs)
        elif state.batch_size != n_envs:
            raise ValueError(f"state holds {state.batch_size} env(s) but {n_envs} observation(s) were given")
        if episode_start is None:
            episode_start = np.zeros(n_envs, dtype=bool)
        episode_start = np.asarray(episode_start).reshape(-1)
        if episode_start.shape != (n_envs,):
            raise ValueError(f"episode_start must have one entry per env ({n_envs}), got shape {episode_start.shape}")
        with th.no_grad():
            starts = th.as_tensor(episode_start.astype(bool))  # on the CPU, with the step counters
            masks = None if action_masks is None else np.asarray(action_masks, dtype=bool).reshape(n_envs, -1)
            distribution, state = self.get_distribution(obs_tensor, state, starts, masks)
            actions = distribution.get_actions(deterministic=deterministic)
        actions = actions.cpu().numpy().reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        if isinstance(self.action_space, spaces.Box):
            if self.squash_output:
                actions = self.unscale_action(actions)
            else:
                actions = np.clip(actions, self.action_space.low, self.action_space.high)
        if not vectorized_env:
            actions = actions.squeeze(axis=0)
        return actions, state

    def memory_statistics(self, states: StreamState) -> dict[str, float]:
        """Occupancy, age and norm of the actor's memory slots (for logging)."""
        memory = states.memory
        occupied = memory.timestamps >= 0
        stats = {"slot_occupancy": occupied.float().mean().item()}
        if occupied.any():
            now = (states.step - 1).to(memory.timestamps.device).view(-1, 1, 1).expand_as(memory.timestamps)
            stats["mean_slot_age"] = (now - memory.timestamps)[occupied].float().mean().item()
            stats["mean_slot_norm"] = memory.vectors[:, 0].norm(dim=-1)[occupied].mean().item()
        return stats


def _n_observations(policy: ElmurActorCriticPolicy, observation: np.ndarray | dict[str, np.ndarray]) -> int:
    """Number of envs in an observation batch (1 for a single observation)."""
    space = policy.observation_space
    if isinstance(observation, dict):
        key = next(iter(space.spaces))  # type: ignore[attr-defined]
        value, sub = np.asarray(observation[key]), space.spaces[key]  # type: ignore[attr-defined]
    else:
        value, sub = np.asarray(observation), space
    single = len(sub.shape or ()) if not isinstance(sub, spaces.Discrete) else 0
    return 1 if value.ndim == single else int(value.shape[0])


def _check_finite(observation: np.ndarray | dict[str, np.ndarray]) -> None:
    items = observation.items() if isinstance(observation, dict) else [("observation", observation)]
    for key, value in items:
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ValueError(f"{key} contains NaN or infinite values")


class ElmurActorCriticCnnPolicy(ElmurActorCriticPolicy):
    """ELMUR policy for image observations (NatureCNN features); see :class:`ElmurActorCriticPolicy`."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class ElmurMultiInputActorCriticPolicy(ElmurActorCriticPolicy):
    """ELMUR policy for Dict observations (CombinedExtractor features); see :class:`ElmurActorCriticPolicy`."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


__all__ = [
    "ElmurActorCriticCnnPolicy",
    "ElmurActorCriticPolicy",
    "ElmurMultiInputActorCriticPolicy",
    "check_observation_space",
]
