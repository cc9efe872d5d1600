"""Feed-forward blocks: a GELU MLP, and a mixture of experts whose router actually learns."""

import torch as th
from torch import nn
from torch.nn import functional as F

from sb3_elmur.elmur.config import ElmurConfig
from sb3_elmur.elmur.towers import TowerLinear, TowerModule


class MLPFeedForward(nn.Module):
    """
    Position-wise GELU MLP (tanh approximation of GELU: several times faster than the erf form on
    CPUs at RL sizes, with the same shape), for G towers at once.

    :param n_towers: G.
    :param d_model: Model width.
    :param d_ff: Hidden width.
    :param dropout: Dropout after the hidden layer (the residual block drops the output).
    """

    def __init__(self, n_towers: int, d_model: int, d_ff: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc_in = TowerLinear(n_towers, d_model, d_ff)
        self.fc_out = TowerLinear(n_towers, d_ff, d_model)
        self.dropout = dropout

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: ``[G, ..., d_model]``."""
        hidden = F.gelu(self.fc_in(x), approximate="tanh")
        if self.dropout and self.training:
            hidden = F.dropout(hidden, self.dropout, training=True)
        return self.fc_out(hidden)

    def output_parameters(self) -> list[nn.Parameter]:
        """Parameters of the output projection (zeroed by ``ElmurConfig.zero_init_residual``)."""
        return [self.fc_out.weight, self.fc_out.bias]


class MoEFeedForward(TowerModule):
    """
    Mixture of GELU-MLP experts with top-k routing, for G towers at once.

    Each token is sent to its ``top_k`` most probable experts and their outputs are weighted by the
    router's softmax probabilities, *not* renormalised over the chosen experts. With renormalisation
    and ``top_k=1`` every weight would be exactly 1 and the router would get no gradient (the MoE
    would be a fixed random hash, a defect of the published code); here the router always learns.
    Experts are evaluated densely (cheap for the small expert counts used in RL) and masked.

    :param n_towers: G.
    :param d_model: Model width.
    :param d_ff: Hidden width of each expert.
    :param n_experts: Number of experts.
    :param top_k: Experts per token.
    :param dropout: Dropout after the hidden layer.
    """

    def __init__(self, n_towers: int, d_model: int, d_ff: int, n_experts: int, top_k: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.top_k = top_k
        self.router = TowerLinear(n_towers, d_model, n_experts)
        self.w_in = nn.Parameter(th.empty(n_towers, n_experts, d_model, d_ff))
        self.b_in = nn.Parameter(th.zeros(n_towers, n_experts, d_ff))
        self.w_out = nn.Parameter(th.empty(n_towers, n_experts, d_ff, d_model))
        self.b_out = nn.Parameter(th.zeros(n_towers, n_experts, d_model))
        self.dropout = nn.Dropout(dropout)
        for weight in (self.w_in, self.w_out):
            nn.init.normal_(weight, std=weight.shape[2] ** -0.5)

    def forward(self, x: th.Tensor) -> th.Tensor:
        """:param x: ``[G, ..., d_model]``."""
        shape = x.shape
        x = x.reshape(shape[0], -1, shape[-1])  # [G, N, d]
        probs = th.softmax(self.router(x), dim=-1)  # [G, N, experts]
        top_probs, top_index = probs.topk(self.top_k, dim=-1)
        gate = th.zeros_like(probs).scatter(-1, top_index, top_probs)
        hidden = th.einsum("gnd,gedf->gnef", x, self.towers(self.w_in)) + self.towers(self.b_in).unsqueeze(1)
        hidden = self.dropout(F.gelu(hidden, approximate="tanh"))
        out = th.einsum("gnef,gefd->gned", hidden, self.towers(self.w_out)) + self.towers(self.b_out).unsqueeze(1)
        return th.einsum("gne,gned->gnd", gate, out).view(shape)

    def output_parameters(self) -> list[nn.Parameter]:
        """Parameters of the experts' output projections (zeroed by ``ElmurConfig.zero_init_residual``)."""
        return [self.w_out, self.b_out]


def make_feedforward(config: ElmurConfig, n_towers: int) -> nn.Module:
    """
    The feed-forward block chosen by ``config.ffn``.

    :param config: Backbone settings.
    :param n_towers: G.
    """
    if config.ffn == "moe":
        return MoEFeedForward(n_towers, config.d_model, config.ffn_dim, config.n_experts, config.moe_top_k, config.dropout)
    return MLPFeedForward(n_towers, config.d_model, config.ffn_dim, config.dropout)
