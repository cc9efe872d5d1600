"""
Observation standardization inside the policy, with statistics taken from a dataset.

Behaviour cloning sees its data before it trains, so it can standardize the observations the way ``VecNormalize``
does for PPO, without a wrapper around every env the policy will ever act in: :class:`StandardizedFlattenExtractor`
is SB3's ``FlattenExtractor`` after ``clip((obs - mean) / std, -clip, clip)``, with ``mean`` and ``std`` as buffers of
the policy. They start as the identity (0 and 1), are set from the data by
``ElmurBC(..., normalize_observations=True)`` (:func:`set_observation_statistics`), and are saved and loaded with the
model's parameters, so ``model.predict`` takes raw observations.

Use it with any SB3 policy over a Box observation space::

    model = ElmurPPO("MlpElmurPolicy", env, policy_kwargs={"features_extractor_class": StandardizedFlattenExtractor})
    ElmurBC(model, dataset, normalize_observations=True).learn(2000)
"""

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class StandardizedFlattenExtractor(BaseFeaturesExtractor):
    """
    Flatten a Box observation after standardizing it: ``clip((obs - mean) / std, -clip_obs, clip_obs)``.

    :param observation_space: A Box space.
    :param clip_obs: Bound of the standardized values (``VecNormalize``'s default: 10), which keeps a feature that
        was constant in the data from exploding where it is not.
    """

    def __init__(self, observation_space: gym.Space, clip_obs: float = 10.0) -> None:
        if not isinstance(observation_space, gym.spaces.Box):
            raise TypeError(f"StandardizedFlattenExtractor needs a Box observation space, got {observation_space}")
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        self.clip_obs = clip_obs
        self.register_buffer("mean", th.zeros(observation_space.shape))
        self.register_buffer("std", th.ones(observation_space.shape))
        self.flatten = nn.Flatten()

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """
        :param mean: Per-feature mean, of the observation shape.
        :param std: Per-feature standard deviation (positive), of the observation shape.
        """
        mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
        if mean.shape != tuple(self.mean.shape) or std.shape != tuple(self.std.shape):
            raise ValueError(f"statistics of shape {mean.shape} / {std.shape}, the observations are {tuple(self.mean.shape)}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise ValueError("observation statistics must be finite, with a positive std")
        self.mean.copy_(th.as_tensor(mean))
        self.std.copy_(th.as_tensor(std))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        standardized = (observations - self.mean) / self.std
        return self.flatten(th.clamp(standardized, -self.clip_obs, self.clip_obs))


def set_observation_statistics(policy: BasePolicy, observations: np.ndarray, epsilon: float = 1e-8) -> None:
    """
    Standardize a policy's inputs with the mean and std of ``observations`` (``std = sqrt(var + epsilon)``, as
    ``VecNormalize``), in every features extractor of the policy (actor's and critic's when they are separate).

    :param policy: An SB3 policy built with ``features_extractor_class=StandardizedFlattenExtractor``.
    :param observations: ``[n, *obs_shape]`` observations (e.g. every step of a dataset).
    :param epsilon: Added to the variance.
    """
    names = ("features_extractor", "pi_features_extractor", "vf_features_extractor")
    extractors = {id(m): m for m in (getattr(policy, name, None) for name in names) if m is not None}
    if not extractors or not all(isinstance(m, StandardizedFlattenExtractor) for m in extractors.values()):
        raise ValueError(
            "normalize_observations needs a policy built with "
            "policy_kwargs={'features_extractor_class': StandardizedFlattenExtractor} "
            "(sb3_elmur.common.normalization); this one has "
            + ", ".join(sorted({type(m).__name__ for m in extractors.values()}))
        )
    data = np.asarray(observations, dtype=np.float64)
    mean, std = data.mean(axis=0), np.sqrt(data.var(axis=0) + epsilon)
    for extractor in extractors.values():
        extractor.set_statistics(mean, std)
