"""
Gated residual connections (GRU-type gates, as GTrXL: Parisotto et al., "Stabilizing Transformers for
Reinforcement Learning", 2020).

A plain residual adds a sublayer's output to the token's own state with weight one from the first update,
so an untrained self-attention or memory read mixes other steps into every token at full strength. A gate
learns, per token and per feature, how much of the sublayer's output enters; its bias starts it nearly closed,
so an untrained layer is close to a per-step network, and because the gate depends on the token it can open
as soon as the context pays, unlike a residual branch whose output weights start at zero.
"""

import torch as th
from torch import nn

from sb3_elmur.elmur.towers import TowerLinear, TowerModule


class GruGate(TowerModule):
    """
    ``g(x, y) = (1 - z) * x + z * h`` with ``r = sigmoid(W_r y + U_r x)``, ``z = sigmoid(W_z y + U_z x - b)``
    and ``h = tanh(W_h y + U_h (r * x))``, for the residual stream ``x`` and the sublayer output ``y``.

    :param n_towers: G.
    :param d_model: Width of ``x`` and ``y``.
    :param bias: ``b``: the gate starts open by about ``sigmoid(-b)`` (0.12 for the default 2, as GTrXL).
    """

    def __init__(self, n_towers: int, d_model: int, bias: float = 2.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.from_output = TowerLinear(n_towers, d_model, 3 * d_model)  # W_r, W_z, W_h (with their biases)
        self.from_stream = TowerLinear(n_towers, d_model, 2 * d_model)  # U_r, U_z
        self.from_reset = TowerLinear(n_towers, d_model, d_model)  # U_h
        with th.no_grad():
            self.from_output.bias[..., d_model : 2 * d_model] -= bias

    def forward(self, x: th.Tensor, y: th.Tensor) -> th.Tensor:
        """:param x: ``[G, ..., d_model]`` residual stream. :param y: Sublayer output, same shape. :return: Gated sum."""
        d = self.d_model
        wy = self.from_output(y)
        ux = self.from_stream(x)
        reset = th.sigmoid(wy[..., :d] + ux[..., :d])
        update = th.sigmoid(wy[..., d : 2 * d] + ux[..., d:])
        candidate = th.tanh(wy[..., 2 * d :] + self.from_reset(reset * x))
        return th.lerp(x, candidate, update)


def make_gate(n_towers: int, d_model: int, kind: str, bias: float) -> nn.Module | None:
    """The residual gate of ``ElmurConfig.residual_gate`` (None for the plain residual sum)."""
    return GruGate(n_towers, d_model, bias) if kind == "gru" else None
