"""
ELMUR policies with invalid-action masking (the protocol of sb3-contrib's MaskablePPO): the action distribution is
one of sb3-contrib's maskable distributions, restricted to the valid actions of each step before sampling, and again
with the same masks when the step is evaluated in training.
"""

from functools import partial
from typing import Any

from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution, make_masked_proba_distribution
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule

from sb3_elmur.common.buffers import action_mask_dims
from sb3_elmur.common.policies import ElmurActorCriticPolicy


class MaskableElmurActorCriticPolicy(ElmurActorCriticPolicy):
    """
    :class:`~sb3_elmur.common.policies.ElmurActorCriticPolicy` whose action distribution takes masks
    (``action_masks`` of ``forward``, ``predict`` and ``predict_stream``; the masks of a training batch come
    with it). Discrete, MultiDiscrete and MultiBinary action spaces, masks of sb3-contrib's shape
    (``[n_envs, mask_dims]``: one entry per action of each sub-action).
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, *args: Any, **kwargs: Any) -> None:
        action_mask_dims(action_space)  # refuses Box actions with a clear message
        super().__init__(observation_space, action_space, *args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # SB3 builds heads only for its own distributions; the maskable one gets its head here (the optimizer is
        # made after the backbone, from every parameter, so it includes this head).
        self.action_dist = make_masked_proba_distribution(self.action_space)
        self.action_net = self.action_dist.proba_distribution_net(latent_dim=self.mlp_extractor.latent_dim_pi)
        if self.ortho_init:
            self.action_net.apply(partial(self.init_weights, gain=0.01))

    def _get_action_dist_from_latent(self, latent_pi: Any) -> MaskableDistribution:  # type: ignore[override]
        return self.action_dist.proba_distribution(action_logits=self.action_net(latent_pi))  # type: ignore[attr-defined]


class MaskableElmurActorCriticCnnPolicy(MaskableElmurActorCriticPolicy):
    """Maskable ELMUR policy for image observations (NatureCNN features)."""

    def __init__(self, *args: Any, features_extractor_class: type = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MaskableElmurMultiInputActorCriticPolicy(MaskableElmurActorCriticPolicy):
    """Maskable ELMUR policy for Dict observations (CombinedExtractor features)."""

    def __init__(self, *args: Any, features_extractor_class: type = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)
