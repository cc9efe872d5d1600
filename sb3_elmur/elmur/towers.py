"""
Towers: G independent copies of a module (the actor's and the critic's backbones) evaluated as one.

At reinforcement-learning sizes a backbone is bound by the cost of launching each torch op, not by
arithmetic. The actor and the critic run the same computation on the same inputs with their own
weights, so every parameter here carries a leading tower dimension ``G`` and each op is launched once
for all towers (a batched matmul instead of two matmuls). Activations are tower-first,
``[G, batch, ..., features]``; tower 0 is the actor.
"""

import math

import torch as th
from torch import nn
from torch.nn import functional as F


class TowerModule(nn.Module):
    """
    A module whose parameters carry a leading tower dimension. While ``active_towers`` is set (see
    :meth:`~sb3_elmur.elmur.backbone.ElmurBackbone.first_towers`) it computes the first towers only.
    """

    active_towers: int | None = None

    def towers(self, param: th.Tensor) -> th.Tensor:
        """``param`` restricted to the active towers."""
        return param if self.active_towers is None else param[: self.active_towers]


class TowerLinear(TowerModule):
    """
    ``G`` independent linear maps ``x @ W_g + b_g``, one batched matmul for all towers.

    Initialised per tower exactly like ``nn.Linear`` (uniform in ``+-1/sqrt(in_features)``).

    :param n_towers: G.
    :param in_features: Input width.
    :param out_features: Output width.
    """

    def __init__(self, n_towers: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(th.empty(n_towers, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(th.empty(n_towers, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: ``[G, ..., in_features]``, one slice per tower. :return: ``[G, ..., out_features]``."""
        # One batched matmul also for one tower: a batch of one beats selecting the tower's matrix for addmm
        # (3 operators instead of 5; at d 64, 6-7 µs against 9 µs per call at batch 1, the same at batch 64).
        weight, bias = self.towers(self.weight), self.towers(self.bias)
        out = th.baddbmm(bias, x.reshape(x.shape[0], -1, self.in_features), weight)
        return out.view(*x.shape[:-1], self.out_features)

    def shared(self, x: th.Tensor) -> th.Tensor:
        """:param x: ``[..., in_features]``, the same input for every tower. :return: ``[G, ..., out_features]``."""
        weight = self.towers(self.weight)
        out = th.matmul(x.reshape(-1, self.in_features), weight) + self.towers(self.bias)
        return out.view(weight.shape[0], *x.shape[:-1], self.out_features)


class TowerLayerNorm(TowerModule):
    """
    Layer norm over the last dimension with a per-tower affine transform.

    :param n_towers: G.
    :param width: Normalised width.
    :param eps: Added to the variance.
    """

    def __init__(self, n_towers: int, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.width, self.eps = width, eps
        self.weight = nn.Parameter(th.ones(n_towers, 1, width))
        self.bias = nn.Parameter(th.zeros(n_towers, 1, width))

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: ``[G, ..., width]``."""
        weight, bias = self.towers(self.weight), self.towers(self.bias)
        if weight.shape[0] == 1:  # one tower: the fused affine layer norm (a view of each parameter: one operator)
            return F.layer_norm(x, (self.width,), weight.view(self.width), bias.view(self.width), self.eps)
        flat = x.reshape(x.shape[0], -1, self.width)
        normed = F.layer_norm(flat, (self.width,), eps=self.eps)
        return th.addcmul(bias, normed, weight).view(x.shape)


class TowerTable(TowerModule):
    """
    A learned lookup table per tower (the attention biases' embeddings), zero-initialised.

    :param n_towers: G.
    :param n_rows: Number of entries.
    :param width: Width of an entry (one value per attention head).
    """

    def __init__(self, n_towers: int, n_rows: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(th.zeros(n_towers, n_rows, width))

    def forward(self, index: th.Tensor) -> th.Tensor:
        """:param index: int64 ``[...]``. :return: ``[G, ..., width]``."""
        return self.towers(self.weight)[:, index]


def tower_norm(n_towers: int, width: int, enabled: bool) -> nn.Module:
    """A :class:`TowerLayerNorm`, or the identity when ``enabled`` is False (post-norm configurations)."""
    return TowerLayerNorm(n_towers, width) if enabled else nn.Identity()
