"""Settings of the ELMUR backbone."""

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

#: The paper's layer: plain residual sums and no token shift. Benchmarks that follow the paper's protocols (T-Maze,
#: POPGym and MIKASA-Robo offline) pin it, so their results do not move with the defaults.
PAPER_LAYER: dict[str, Any] = {"residual_gate": "none", "token_shift": False}
#: The defaults until they were chosen from RecurrentPPO's recipes (docs/ppo.md): a saved config that lacks a setting
#: was written before the setting existed or before the change, and takes it from here (see
#: :meth:`ElmurConfig.from_saved`). Never change these.
DEFAULTS_BEFORE_RECIPES: dict[str, Any] = {**PAPER_LAYER, "d_model": 64, "n_layers": 2}


@dataclass(frozen=True)
class ElmurConfig:
    """
    Settings of the ELMUR backbone (External Layer Memory with Update/Rewrite, arXiv 2510.07151).

    The names follow the paper: a *segment* holds ``segment_len`` (K) steps; every layer owns
    ``n_slots`` (M) memory slots of size ``d_model`` (D) with an int64 timestamp each (-1 = empty).

    The defaults (one layer of width 32 with gated residuals and the token shift) were chosen from PPO runs on
    RecurrentPPO's own recipes and POPGym memory tasks (docs/ppo.md); the paper's layer is
    ``residual_gate="none", token_shift=False`` (:data:`PAPER_LAYER`).

    :param d_model: Width D of the token states and of every memory slot.
    :param n_layers: Number of ELMUR layers; each layer owns its own memory slots.
    :param n_heads: Attention heads (``d_model`` must be divisible by it).
    :param d_ff: Hidden width of the feed-forward blocks (default ``4 * d_model``).
    :param segment_len: K, the number of steps in a segment. Tokens attend causally only to the
        tokens of their own segment; memory is committed once per completed segment.
    :param n_slots: M, memory slots per layer.
    :param lru_lambda: Blend factor of the LRU rewrite: an occupied target slot becomes
        ``lambda * u + (1 - lambda) * m``; an empty slot is replaced by ``u``.
    :param use_read: Ablation switch: tokens read memory (mem2tok cross-attention).
    :param use_write: Ablation switch: memory is written at segment ends (tok2mem cross-attention).
    :param use_lru: Ablation switch: with ``False`` every slot is rewritten (``m <- u``) at every
        segment end instead of one slot chosen by the LRU rule.
    :param norm_first: Pre-norm residual blocks (``x + f(norm(x))``, with a final norm) when True;
        the paper's post-norm (``norm(x + f(x))``) when False.
    :param output_scale: Initial gain of the final layer norm (pre-norm only), the scale of the backbone's output
        features at initialisation. At 1 they have unit variance, a norm of ``sqrt(d_model)``: about 10x the output of
        an untrained LSTM, which SB3's heads and gSDE were tuned for (gSDE's exploration noise grows with the norm of
        the policy's latent features). The gain is learned either way. At 0.1 (the LSTM's scale) PPO did worse on
        PendulumNoVel with gSDE (docs/benchmarks.md), so the default stays 1.
    :param zero_init_residual: Start the token track's residual branches (self-attention, read and feed-forward
        output projections) at zero, so that an untrained layer is the identity and the backbone starts as a
        per-step network that learns when to use context (as SkipInit / ReZero). Off by default; see the PPO
        recipe diagnosis in docs/ppo.md.
    :param position_bias_init: Start of the self-attention's relative-position bias: ``"zero"`` (every step of the
        segment weighs the same) or ``"recency"`` (per-head slopes 2, 1, 1/2, ... as ALiBi: recent steps first).
    :param residual_gate: How the token track's sublayers (self-attention, read, feed-forward) join the residual
        stream: ``"none"`` adds them (``x + f(x)``); ``"gru"`` combines them through a GRU-type gate as GTrXL
        (Parisotto et al., 2020), which starts nearly closed and opens per token as the context pays;
        ``"gru-no-read"`` gates self-attention and feed-forward but leaves the memory read a plain residual.
    :param gate_bias: Initial closing bias of the gates (with ``residual_gate`` other than ``"none"``): a gate
        starts about ``sigmoid(-gate_bias)`` open (0.12 at 2).
    :param read_previous_segment: The read also attends to the previous segment's K token states of the same layer,
        kept as K extra read-only slots after the M memory slots, with their exact step as timestamp (not in the
        paper). Without it the first token of a segment sees the past only through the M written slots; with it
        every token sees the last K steps' states directly, as Transformer-XL's cache does. Those states read their
        own previous segment, so the path reaches back over the whole episode, with gradient inside a training
        sample. The write and the LRU rule still act on the M memory slots alone; the extra slots are replaced by
        each completed segment.
    :param token_shift: Every layer also sees its own input of the previous step through a learned projection,
        started at zero (RWKV's token shift; not in the paper): ``x_t + W norm(x_{t-1})`` before the sublayers. A
        token then holds the difference to the previous step from the first update (a velocity, when the
        observations are positions) without learning it through attention, also at the first position of a
        segment, whose previous step lies in the segment before. The previous step's input is kept as one more
        slot per layer, after the others, with that step as its timestamp; no attention reads it.
    :param dropout: Dropout in attention and feed-forward blocks (0 disables it; RL usually wants 0).
    :param ffn: ``"mlp"`` (GELU MLP) or ``"moe"`` (soft mixture of experts, see ``moe_top_k``).
    :param n_experts: Number of experts when ``ffn="moe"``.
    :param moe_top_k: Experts used per token when ``ffn="moe"``. The gate weights are the router's
        softmax probabilities (not renormalised over the chosen experts), so the router receives
        gradient even with ``moe_top_k=1``.
    :param n_time_buckets: Buckets of the learned per-head time-distance bias used by read and write.
        Half of them are exact distances 0..n/2-1, the rest are log-spaced up to ``max_time_distance``.
    :param max_time_distance: Distances at or beyond this share the last bucket (default 2**24, so
        10^3 and 10^6 steps fall into different buckets).
    :param memory_bptt: Gradient through memory in the parallel (training) path: the number of
        consecutive segments that gradient may cross through the memory. ``None``: no truncation
        inside a training sample (the write path learns); ``1``: memory is detached at every segment
        start, as in the paper (the write path gets no gradient).
    """

    d_model: int = 32
    n_layers: int = 1
    n_heads: int = 4
    d_ff: int | None = None
    segment_len: int = 10
    n_slots: int = 4
    lru_lambda: float = 0.1
    use_read: bool = True
    use_write: bool = True
    use_lru: bool = True
    norm_first: bool = True
    output_scale: float = 1.0
    zero_init_residual: bool = False
    position_bias_init: Literal["zero", "recency"] = "zero"
    residual_gate: Literal["none", "gru", "gru-no-read"] = "gru"
    gate_bias: float = 2.0
    read_previous_segment: bool = False
    token_shift: bool = True
    dropout: float = 0.0
    ffn: Literal["mlp", "moe"] = "mlp"
    n_experts: int = 4
    moe_top_k: int = 2
    n_time_buckets: int = 32
    max_time_distance: int = 2**24
    memory_bptt: int | None = None

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ElmurConfig.{name} must be a positive integer, got {value!r}")

        for name in ("d_model", "n_layers", "n_heads", "segment_len", "n_slots", "n_experts", "moe_top_k"):
            positive(name)
        if self.d_ff is not None:
            positive("d_ff")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"ElmurConfig.d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.lru_lambda <= 1.0:
            raise ValueError(f"ElmurConfig.lru_lambda must be in [0, 1], got {self.lru_lambda}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ElmurConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.position_bias_init not in ("zero", "recency"):
            raise ValueError(f"ElmurConfig.position_bias_init must be 'zero' or 'recency', got {self.position_bias_init!r}")
        if self.residual_gate not in ("none", "gru", "gru-no-read"):
            raise ValueError(f"ElmurConfig.residual_gate must be 'none', 'gru' or 'gru-no-read', got {self.residual_gate!r}")
        if not (isinstance(self.output_scale, (int, float)) and math.isfinite(self.output_scale) and self.output_scale > 0):
            raise ValueError(f"ElmurConfig.output_scale must be a positive number, got {self.output_scale!r}")
        if self.output_scale != 1.0 and not self.norm_first:
            raise ValueError("ElmurConfig.output_scale needs norm_first=True (post-norm layers have no final norm to scale)")
        if not math.isfinite(self.gate_bias):
            raise ValueError(f"ElmurConfig.gate_bias must be finite, got {self.gate_bias!r}")
        if self.read_previous_segment and not self.use_read:
            raise ValueError("ElmurConfig.read_previous_segment needs use_read=True (the previous segment is read)")
        if self.ffn not in ("mlp", "moe"):
            raise ValueError(f"ElmurConfig.ffn must be 'mlp' or 'moe', got {self.ffn!r}")
        if self.moe_top_k > self.n_experts:
            raise ValueError(f"ElmurConfig.moe_top_k ({self.moe_top_k}) exceeds n_experts ({self.n_experts})")
        if not isinstance(self.n_time_buckets, int) or self.n_time_buckets < 4 or self.n_time_buckets % 2:
            raise ValueError(f"ElmurConfig.n_time_buckets must be an even integer >= 4, got {self.n_time_buckets}")
        if self.max_time_distance <= self.n_time_buckets // 2:
            raise ValueError("ElmurConfig.max_time_distance must exceed n_time_buckets // 2")
        if self.memory_bptt is not None:
            positive("memory_bptt")

    @property
    def ffn_dim(self) -> int:
        """Hidden width of the feed-forward blocks."""
        return self.d_ff if self.d_ff is not None else 4 * self.d_model

    @property
    def read_slots(self) -> int:
        """Slots the read attends: the M memory slots, then the K previous-segment tokens if they are read."""
        return self.n_slots + (self.segment_len if self.read_previous_segment else 0)

    @property
    def slots_per_layer(self) -> int:
        """Slots a layer's memory state holds: the :attr:`read_slots`, then the previous step's input with ``token_shift``."""
        return self.read_slots + (1 if self.token_shift else 0)

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of the settings (for saving with a model)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ElmurConfig":
        """
        Build a config from a dictionary, rejecting unknown names.

        :param values: Setting names and values, as produced by :meth:`to_dict`.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown ElmurConfig settings: {unknown}. Known settings: {sorted(known)}")
        return cls(**values)

    @classmethod
    def coerce(cls, value: "ElmurConfig | dict[str, Any] | None") -> "ElmurConfig":
        """
        The config a user passed as ``elmur_kwargs``: a config as it is, a dict (or nothing) through :meth:`from_dict`.

        :param value: An :class:`ElmurConfig`, a dictionary of its settings, or None for the defaults.
        """
        return value if isinstance(value, cls) else cls.from_dict(dict(value or {}))

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> "ElmurConfig":
        """
        The config of a saved model: like :meth:`from_dict`, but a setting the saved dictionary lacks takes its value
        from before the defaults changed (:data:`DEFAULTS_BEFORE_RECIPES`), so a model saved by an earlier version
        rebuilds the network its weights belong to. Models saved now hold every setting.

        :param values: The saved settings.
        """
        return cls.from_dict({**DEFAULTS_BEFORE_RECIPES, **values})
