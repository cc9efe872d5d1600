"""
A registry of the agents the benchmarks compare: one :class:`ModelEntry` per agent, each with a builder that,
given a VecEnv, a seed and optional overrides, returns the SB3 model and how to train it (an :class:`Agent`).

Entries shipped here:

- offline (behaviour cloning with :class:`~sb3_elmur.bc.ElmurBC` from a :class:`~sb3_elmur.data.TrajectoryDataset`):
  ``"elmur"`` (an ElmurPPO policy), ``"bc-lstm"`` (sb3-contrib's ``MlpLstmPolicy``), ``"bc-mlp"`` (SB3's
  ``MlpPolicy``), and ``"random"`` (uniform actions, no training);
- online (``model.learn``): ``"elmur-ppo"``, ``"recurrent-ppo"``, ``"ppo-mlp"`` (same PPO settings);
- reference: ``"expert"``, the history-based POPGym expert of the task.

A harness never names an agent's class or trainer: it calls :meth:`ModelEntry.build`, then
:meth:`Agent.fit` with whatever it has (a dataset, a step budget, a callback), then ``agent.model.predict``
(SB3's stateful signature). New agents (RATE, DT, CQL, Diffusion Policy, ...) are added with
:func:`register_model` and run in every harness unchanged::

    from sb3_elmur.registry import Agent, register_model

    def build_my_dt(env, seed, overrides):
        model = MyDecisionTransformer(env.observation_space, env.action_space, seed=seed)
        return Agent(model, settings={"updates": 2000, **overrides}, trainer=train_my_dt)

    register_model("dt", "Decision Transformer", "offline", build_my_dt)
"""

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from sb3_elmur.data import TrajectoryDataset
from sb3_elmur.elmur import PAPER_LAYER, ElmurConfig

Kind = Literal["offline", "online", "reference"]
KINDS = ("offline", "online", "reference")


@dataclass
class TrainingInputs:
    """
    What a harness hands to :meth:`Agent.fit`; each trainer uses the parts it needs.

    :param dataset: Expert trajectories, with the observations of the entry's env (offline agents).
    :param total_timesteps: Environment steps (online agents).
    :param callback: An SB3 callback for online training (evaluation curves).
    :param progress_bar: Show a progress bar.
    :param seed: Seed of the training run (batch order for BC).
    """

    dataset: TrajectoryDataset | None = None
    total_timesteps: int | None = None
    callback: BaseCallback | None = None
    progress_bar: bool = False
    seed: int = 0


#: A trainer: trains ``agent.model`` in place from the inputs.
Trainer = Callable[["Agent", TrainingInputs], None]


@dataclass
class Agent:
    """
    A built agent: the model (anything with SB3's ``predict(observation, state, episode_start, deterministic)``), the
    settings of its trainer (JSON-serialisable, recorded with every result) and the trainer itself.

    :param model: The model; ``model.predict`` acts on a VecEnv's observations.
    :param settings: Trainer settings (e.g. BC updates and learning rate); overrides have been applied.
    :param trainer: Trains the model (None: nothing to train, e.g. random and expert agents).
    """

    model: Any
    settings: dict[str, Any] = field(default_factory=dict)
    trainer: Trainer | None = None

    def fit(self, inputs: TrainingInputs) -> Any:
        """
        Train the model (a no-op for agents without a trainer).

        :param inputs: Dataset, budget, callback: what the harness has.
        :return: The model.
        """
        if self.trainer is not None:
            self.trainer(self, inputs)
        return self.model

    @property
    def n_parameters(self) -> int:
        """Parameters of the model's policy (0 for models without one)."""
        policy = getattr(self.model, "policy", None)
        return int(sum(p.numel() for p in policy.parameters())) if policy is not None else 0


#: A builder: ``builder(env, seed, overrides) -> Agent``.
Builder = Callable[[VecEnv, int, dict[str, Any]], Agent]


@dataclass(frozen=True)
class ModelEntry:
    """
    One agent of the registry.

    :param name: Registry key (e.g. ``"elmur"``).
    :param label: Name shown in tables and plots.
    :param kind: ``"offline"`` (trained from a dataset), ``"online"`` (trained by interaction) or ``"reference"``.
    :param builder: ``builder(env, seed, overrides) -> Agent``.
    :param one_hot: The model needs float Box observations (``make_popgym_env(..., one_hot=True)``; the harness
        one-hot encodes the dataset to match).
    :param needs_env_id: The builder reads ``overrides["env_id"]`` (task-specific agents such as the expert).
    :param description: One line for docs and ``--list-models``.
    :param trained: The agent has a trainer (False for random and expert: their results depend on no dataset or budget).
    :param family: The benchmark family the agent is made for (``"popgym"``, ``"mikasa"``: its experts), or None for
        agents that apply to any task.
    :param defaults: The registry's settings the builder applies (sizes, trainer and PPO settings), JSON-serialisable:
        harnesses reuse a saved result only while their :meth:`defaults_digest` is unchanged.
    """

    name: str
    label: str
    kind: Kind
    builder: Builder
    one_hot: bool = False
    needs_env_id: bool = False
    description: str = ""
    trained: bool = True
    family: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def defaults_digest(self) -> str:
        """A short hash of :attr:`defaults` (it changes when a setting the builder applies changes)."""
        text = json.dumps(self.defaults, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def accepts_digest(self, saved: str | None) -> bool:
        """
        Whether a result saved with the digest ``saved`` was made with the entry's settings as they are now.

        :param saved: The :meth:`defaults_digest` recorded with the result; None for a result saved before harnesses
            recorded digests, which was made with the settings of :data:`UNRECORDED_DIGESTS`.
        """
        current = self.defaults_digest()
        return saved == current if saved is not None else UNRECORDED_DIGESTS.get(self.name) == current

    def build(self, env: VecEnv, seed: int = 0, overrides: dict[str, Any] | None = None) -> Agent:
        """
        Build the untrained agent.

        :param env: The VecEnv the model acts in (its spaces define the model).
        :param seed: Seed of the model.
        :param overrides: Settings replacing the entry's defaults (see the builders: trainer settings such as
            ``updates`` or ``learning_rate``, ``policy_kwargs`` merged into the policy's, ``elmur_kwargs`` into
            ELMUR's, ``model_kwargs`` into the algorithm's); unknown keys raise a ValueError.
        """
        return self.builder(env, seed, dict(overrides or {}))


_REGISTRY: dict[str, ModelEntry] = {}
#: The entries' digests (:meth:`ModelEntry.defaults_digest`) when the harnesses began to record them with every result.
#: A result saved before carries none; it was made with these settings (as far as the trainer settings recorded in the
#: results of docs/results show), so it stays valid while an entry keeps them and is redone once they change. Leave
#: the values as they are when a setting changes: that is what retires the old results.
UNRECORDED_DIGESTS = {
    "elmur": "4b0024ae4288",
    "bc-lstm": "b789cb7c23e8",
    "bc-mlp": "70effcc01b95",
    "elmur-ppo": "34a7069430db",
    "recurrent-ppo": "88d25d320cb9",
    "ppo-mlp": "7357b559cf3f",
}


def register_model(
    name: str,
    label: str,
    kind: Kind,
    builder: Builder,
    one_hot: bool = False,
    needs_env_id: bool = False,
    description: str = "",
    trained: bool = True,
    replace: bool = False,
    family: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ModelEntry:
    """
    Add an agent to the registry (every harness that takes model names can then run it).

    :param name: Registry key.
    :param label: Name shown in tables and plots.
    :param kind: ``"offline"``, ``"online"`` or ``"reference"``.
    :param builder: ``builder(env, seed, overrides) -> Agent``.
    :param one_hot: The model needs one-hot (float Box) observations.
    :param needs_env_id: The builder reads ``overrides["env_id"]``.
    :param description: One line for docs and listings.
    :param trained: The agent has a trainer (harnesses skip datasets and budgets for the others).
    :param replace: Allow replacing an existing entry of the same name.
    :param family: The benchmark family the agent is made for (None: any task).
    :param defaults: The settings the builder applies (see :class:`ModelEntry`); give them so that harnesses notice
        when they change.
    :return: The new entry.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"A model named {name!r} is registered already (pass replace=True to replace it)")
    entry = ModelEntry(name, label, kind, builder, one_hot, needs_env_id, description, trained, family, dict(defaults or {}))
    _REGISTRY[name] = entry
    return entry


def get_model(name: str) -> ModelEntry:
    """
    The registry entry of ``name``.

    :param name: Registry key.
    :raises KeyError: For an unknown name, listing the close matches.
    """
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"Unknown model {name!r}{hint} Registered: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def list_models(kind: Kind | Iterable[Kind] | None = None, family: str | None = None) -> list[str]:
    """
    Names of the registered models, in registration order.

    :param kind: Only models of this kind (or kinds).
    :param family: Only models that apply to this benchmark family (those made for it and those for any task).
    """
    kinds = {kind} if isinstance(kind, str) else (set(kind) if kind is not None else set(KINDS))
    return [
        name for name, entry in _REGISTRY.items() if entry.kind in kinds and (family is None or entry.family in (None, family))
    ]


# ---------------------------------------------------------------------------------------------------- helpers
def _take(overrides: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with the overrides of the same names (popped from ``overrides``)."""
    return {key: overrides.pop(key, value) for key, value in defaults.items()}


def _merged(defaults: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    merged = copy.deepcopy(defaults)
    merged.update(extra or {})
    return merged


def _check_empty(name: str, overrides: dict[str, Any]) -> None:
    overrides.pop("env_id", None)  # harnesses always pass it; only some builders read it
    if overrides:
        raise ValueError(f"Unknown overrides for model {name!r}: {sorted(overrides)}")


def train_bc(agent: Agent, inputs: TrainingInputs) -> None:
    """
    Behaviour cloning with :class:`~sb3_elmur.bc.ElmurBC` (settings: ``updates`` and ElmurBC's keyword arguments;
    ``compile_backbone="auto"``: ElmurBC compiles where the run is long enough to pay, :func:`~sb3_elmur.bc.compile_pays`).

    :param agent: The agent (an ElmurPPO, RecurrentPPO or PPO model).
    :param inputs: Must hold a dataset.
    """
    from sb3_elmur.bc import ElmurBC

    if inputs.dataset is None:
        raise ValueError("behaviour cloning needs a dataset")
    settings = dict(agent.settings)
    updates = settings.pop("updates")
    trainer = ElmurBC(agent.model, inputs.dataset, seed=inputs.seed, **settings)
    trainer.learn(updates, progress_bar=inputs.progress_bar)


def train_online(agent: Agent, inputs: TrainingInputs) -> None:
    """
    Online training: ``model.learn(total_timesteps, callback)``.

    :param agent: The agent (an SB3 algorithm).
    :param inputs: Must hold ``total_timesteps``.
    """
    if inputs.total_timesteps is None:
        raise ValueError("online training needs total_timesteps")
    agent.model.learn(inputs.total_timesteps, callback=inputs.callback, progress_bar=inputs.progress_bar)


# ---------------------------------------------------------------------------------------------------- sizes
#: ELMUR for POPGym episodes (up to ~1000 steps): segments of K = 10 steps, 4 slots per layer, 2 layers of width 32
#: (about 94k parameters with the heads).
ELMUR_SIZES: dict[str, Any] = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 4,
    "d_ff": 64,
    "segment_len": 10,
    "n_slots": 4,
    "lru_lambda": 0.1,
}
#: The cloned ELMUR (offline): the paper's layer (plain residuals, no token shift), as the paper's protocol.
ELMUR_KWARGS: dict[str, Any] = {**ELMUR_SIZES, **PAPER_LAYER}
#: ElmurPPO online: ElmurPPO's own default layer (gated residuals, token shift; docs/ppo.md), what an SB3 user gets,
#: in one layer (ElmurPPO's default depth; the gates' weights make one gated layer about RecurrentPPO's size here,
#: 89k parameters against its 91k). Measured against the paper's layer in docs/popgym.md (online track).
ELMUR_PPO_KWARGS: dict[str, Any] = {
    **ELMUR_SIZES,
    "n_layers": 1,
    **{key: getattr(ElmurConfig(), key) for key in PAPER_LAYER},
}
#: The LSTM width that gives BC-LSTM about ELMUR's parameter count (both with a 64-unit policy head): 128 for the
#: actor LSTM alone (BC, about 88k parameters); 96 when the critic has its own LSTM too (online, about 93k).
LSTM_HIDDEN = 128
LSTM_HIDDEN_ONLINE = 96
#: Behaviour-cloning settings shared by the three cloned models (ElmurBC keyword arguments and ``updates``).
BC_SETTINGS: dict[str, Any] = {
    "updates": 2000,
    "batch_size": 64,
    "segments_per_sample": 3,
    "learning_rate": 1e-3,
    "warmup_steps": 50,
    "segment_len": 10,
    "normalize_observations": False,
}
#: ElmurBC settings of the ELMUR entry on top of BC_SETTINGS: compile where the run is long enough to pay.
ELMUR_BC: dict[str, Any] = {"compile_backbone": "auto"}
#: PPO settings of the online track (the same for the three online agents).
PPO_SETTINGS: dict[str, Any] = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 10,
    "learning_rate": 5e-4,
    "gae_lambda": 0.95,
    "gamma": 0.99,
    "ent_coef": 0.01,
    "max_grad_norm": 1.0,
}
#: The harnesses' models run on the CPU unless an override asks for another device (``model_kwargs={"device": ...}``).
DEVICE: dict[str, Any] = {"device": "cpu"}
HEADS: dict[str, Any] = {"net_arch": {"pi": [64], "vf": [64]}, "ortho_init": False}
#: Policies of the baselines: BC-LSTM (an actor LSTM), RecurrentPPO (actor and critic LSTMs), the MLPs.
BC_LSTM_POLICY: dict[str, Any] = {**HEADS, "lstm_hidden_size": LSTM_HIDDEN, "enable_critic_lstm": False}
RECURRENT_PPO_POLICY: dict[str, Any] = {**HEADS, "lstm_hidden_size": LSTM_HIDDEN_ONLINE, "enable_critic_lstm": True}
BC_MLP_POLICY: dict[str, Any] = {"net_arch": {"pi": [128, 64], "vf": [64]}, "ortho_init": False}
PPO_MLP_POLICY: dict[str, Any] = {"net_arch": {"pi": [128, 64], "vf": [128, 64]}, "ortho_init": False}


def _elmur_policy(env: VecEnv) -> str:
    return "MultiInputElmurPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpElmurPolicy"


def _sb3_policy(env: VecEnv, base: str) -> str:
    return "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else base


def _build_elmur(env: VecEnv, seed: int, overrides: dict[str, Any], online: bool) -> tuple[Any, dict[str, Any]]:
    from sb3_elmur import ElmurPPO

    elmur = _merged(ELMUR_PPO_KWARGS if online else ELMUR_KWARGS, overrides.pop("elmur_kwargs", None))
    policy_kwargs = _merged({**HEADS, "elmur_kwargs": elmur}, overrides.pop("policy_kwargs", None))
    model_kwargs = _merged({**DEVICE, **(PPO_SETTINGS if online else {})}, overrides.pop("model_kwargs", None))
    model = ElmurPPO(_elmur_policy(env), env, seed=seed, policy_kwargs=policy_kwargs, **model_kwargs)
    return model, elmur


def _standardized_inputs(overrides: dict[str, Any]) -> dict[str, Any]:
    """
    With ``normalize_observations`` among the overrides, the policy gets the standardizing features extractor
    whose statistics ElmurBC sets from the dataset (:mod:`sb3_elmur.common.normalization`).
    """
    if overrides.get("normalize_observations"):
        from sb3_elmur.common.normalization import StandardizedFlattenExtractor

        extractor = {"features_extractor_class": StandardizedFlattenExtractor}
        overrides["policy_kwargs"] = {**extractor, **(overrides.get("policy_kwargs") or {})}
    return overrides


def build_elmur_bc(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """ELMUR cloned with ElmurBC (K and the chunking follow the ELMUR config)."""
    overrides = _standardized_inputs(overrides)
    model, elmur = _build_elmur(env, seed, overrides, online=False)
    settings = _take(overrides, {**BC_SETTINGS, "segment_len": elmur["segment_len"], **ELMUR_BC})
    _check_empty("elmur", overrides)
    return Agent(model, settings, train_bc)


def build_bc_lstm(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """sb3-contrib's MlpLstmPolicy cloned with ElmurBC (unrolled S*K steps per chunk, state carried)."""
    from sb3_contrib import RecurrentPPO

    overrides = _standardized_inputs(overrides)
    policy_kwargs = _merged(BC_LSTM_POLICY, overrides.pop("policy_kwargs", None))
    model_kwargs = _merged(DEVICE, overrides.pop("model_kwargs", None))
    model = RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **model_kwargs)
    settings = _take(overrides, BC_SETTINGS)
    _check_empty("bc-lstm", overrides)
    return Agent(model, settings, train_bc)


def build_bc_mlp(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """SB3's MlpPolicy (no memory) cloned with ElmurBC."""
    from stable_baselines3 import PPO

    overrides = _standardized_inputs(overrides)
    policy_kwargs = _merged(BC_MLP_POLICY, overrides.pop("policy_kwargs", None))
    model_kwargs = _merged(DEVICE, overrides.pop("model_kwargs", None))
    model = PPO(_sb3_policy(env, "MlpPolicy"), env, seed=seed, policy_kwargs=policy_kwargs, **model_kwargs)
    settings = _take(overrides, BC_SETTINGS)
    _check_empty("bc-mlp", overrides)
    return Agent(model, settings, train_bc)


def build_elmur_ppo(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """ElmurPPO trained online."""
    model, _ = _build_elmur(env, seed, overrides, online=True)
    _check_empty("elmur-ppo", overrides)
    return Agent(model, {"algorithm": "ElmurPPO", **_ppo_settings(model)}, train_online)


def build_recurrent_ppo(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """sb3-contrib's RecurrentPPO (LSTM actor and critic) trained online."""
    from sb3_contrib import RecurrentPPO

    policy_kwargs = _merged(RECURRENT_PPO_POLICY, overrides.pop("policy_kwargs", None))
    model_kwargs = _merged({**DEVICE, **PPO_SETTINGS}, overrides.pop("model_kwargs", None))
    model = RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **model_kwargs)
    _check_empty("recurrent-ppo", overrides)
    return Agent(model, {"algorithm": "RecurrentPPO", **_ppo_settings(model)}, train_online)


def build_ppo_mlp(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """SB3's PPO with an MLP (no memory) trained online."""
    from stable_baselines3 import PPO

    policy_kwargs = _merged(PPO_MLP_POLICY, overrides.pop("policy_kwargs", None))
    model_kwargs = _merged({**DEVICE, **PPO_SETTINGS}, overrides.pop("model_kwargs", None))
    model = PPO(_sb3_policy(env, "MlpPolicy"), env, seed=seed, policy_kwargs=policy_kwargs, **model_kwargs)
    _check_empty("ppo-mlp", overrides)
    return Agent(model, {"algorithm": "PPO", **_ppo_settings(model)}, train_online)


def _ppo_settings(model: Any) -> dict[str, Any]:
    """The PPO settings a model runs with (recorded with its results)."""
    names = ("n_steps", "batch_size", "n_epochs", "gae_lambda", "gamma", "ent_coef", "max_grad_norm")
    settings = {name: getattr(model, name) for name in names}
    rate = model.learning_rate
    settings["learning_rate"] = rate if isinstance(rate, float | int) else repr(rate)
    return settings


class RandomPolicy:
    """
    Uniformly random actions, with SB3's stateful ``predict`` signature.

    :param action_space: The action space of one env.
    :param seed: Seed of the action draws.
    """

    def __init__(self, action_space: spaces.Space, seed: int = 0) -> None:
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(seed)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """
        One random action per env (``deterministic`` is ignored: there is no greedy random policy).

        :param observation: A batch of observations (one per env).
        :param state: Unused.
        :param episode_start: Unused.
        :param deterministic: Unused.
        """
        first = next(iter(observation.values())) if isinstance(observation, dict) else observation
        return np.stack([self.action_space.sample() for _ in range(len(first))]), None


def build_random(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """Uniform random actions (no training)."""
    _check_empty("random", overrides)
    return Agent(RandomPolicy(env.action_space, seed), {})


class ExpertPolicy:
    """
    The history-based POPGym expert of a task behind SB3's stateful ``predict``, one expert per env.

    Experts also read the rewards, which ``predict`` does not receive: the evaluation loop calls
    :meth:`observe_rewards` after every ``env.step``. Env ``i``'s episode seeds its expert with ``seeds[i]``
    (particle-filter experts sample; the others ignore the seed).

    :param env_id: The POPGym task.
    :param seeds: The env seed of each env (the evaluation seeds); default ``0..n_envs-1``.
    """

    def __init__(self, env_id: str, seeds: Iterable[int] | None = None) -> None:
        self.env_id = env_id
        self.seeds = list(seeds) if seeds is not None else None
        self.experts: list[Any] = []
        self._actions: list[Any] = []
        self._rewards: np.ndarray | None = None

    def observe_rewards(self, rewards: np.ndarray) -> None:
        """
        Record the rewards of the step just taken (called by the evaluation loop after ``env.step``).

        :param rewards: ``[n_envs]`` rewards.
        """
        self._rewards = np.asarray(rewards, dtype=np.float64)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """
        The experts' actions (they are deterministic given the history: ``deterministic`` changes nothing).

        :param observation: A batch of raw observations (``make_popgym_env(env_id)``).
        :param state: Unused (the experts keep their own history).
        :param episode_start: ``[n_envs]``; True starts a new episode for that env's expert.
        :param deterministic: Unused.
        """
        from sb3_elmur.envs.popgym.experts import make_expert

        n = len(observation)
        if len(self.experts) != n:
            self.experts, self._actions = [None] * n, [None] * n
            episode_start = np.ones(n, dtype=bool)
        starts = np.ones(n, dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        seeds = self.seeds if self.seeds is not None else list(range(n))
        actions = []
        for i in range(n):
            if starts[i] or self.experts[i] is None:
                self.experts[i] = make_expert(self.env_id, seed=int(seeds[i]))
                self.experts[i].reset(observation[i])
            else:
                reward = 0.0 if self._rewards is None else float(self._rewards[i])
                self.experts[i].observe(self._actions[i], reward, observation[i])
            self._actions[i] = self.experts[i].act()
            actions.append(self._actions[i])
        self._rewards = None
        return np.stack([np.asarray(a) for a in actions]), None


def build_expert(env: VecEnv, seed: int, overrides: dict[str, Any]) -> Agent:
    """The task's history-based expert (needs ``overrides["env_id"]``; ``seeds`` sets its per-env seeds)."""
    env_id = overrides.pop("env_id", None)
    if env_id is None:
        raise ValueError("the expert needs overrides={'env_id': ...}")
    seeds = overrides.pop("seeds", None)
    _check_empty("expert", overrides)
    return Agent(ExpertPolicy(env_id, seeds), {})


_CLONED = {"bc": BC_SETTINGS, "device": DEVICE}
_ONLINE = {"ppo": PPO_SETTINGS, "device": DEVICE}
# name, label, kind, builder, and the other arguments of register_model (defaults: the settings the builder applies)
_ENTRIES: list[tuple[str, str, Kind, Builder, dict[str, Any]]] = [
    ("elmur", "ELMUR", "offline", build_elmur_bc, {"description": "ElmurBC on an ElmurPPO policy",
     "defaults": {"elmur_kwargs": ELMUR_KWARGS, "heads": HEADS, "elmur_bc": ELMUR_BC, **_CLONED}}),
    ("bc-lstm", "BC-LSTM", "offline", build_bc_lstm, {"one_hot": True,
     "description": "ElmurBC on RecurrentPPO's MlpLstmPolicy", "defaults": {"policy": BC_LSTM_POLICY, **_CLONED}}),
    ("bc-mlp", "BC-MLP", "offline", build_bc_mlp, {"description": "ElmurBC on PPO's MlpPolicy (no memory)",
     "defaults": {"policy": BC_MLP_POLICY, **_CLONED}}),
    ("random", "Random", "offline", build_random, {"description": "uniform random actions (no training)", "trained": False}),
    ("elmur-ppo", "ElmurPPO", "online", build_elmur_ppo, {"description": "ElmurPPO trained online",
     "defaults": {"elmur_kwargs": ELMUR_PPO_KWARGS, "heads": HEADS, **_ONLINE}}),
    ("recurrent-ppo", "RecurrentPPO", "online", build_recurrent_ppo, {"one_hot": True,
     "description": "sb3-contrib RecurrentPPO", "defaults": {"policy": RECURRENT_PPO_POLICY, **_ONLINE}}),
    ("ppo-mlp", "PPO-MLP", "online", build_ppo_mlp, {"description": "SB3 PPO with an MLP (no memory)",
     "defaults": {"policy": PPO_MLP_POLICY, **_ONLINE}}),
    ("expert", "Expert", "reference", build_expert, {"needs_env_id": True, "trained": False, "family": "popgym",
     "description": "the POPGym task's history-based expert"}),
]  # fmt: skip
for _name, _label, _kind, _builder, _options in _ENTRIES:
    register_model(_name, _label, _kind, _builder, **_options)

__all__ = [
    "BC_LSTM_POLICY",
    "BC_MLP_POLICY",
    "BC_SETTINGS",
    "ELMUR_BC",
    "ELMUR_KWARGS",
    "ELMUR_PPO_KWARGS",
    "ELMUR_SIZES",
    "KINDS",
    "LSTM_HIDDEN",
    "LSTM_HIDDEN_ONLINE",
    "PPO_MLP_POLICY",
    "PPO_SETTINGS",
    "RECURRENT_PPO_POLICY",
    "UNRECORDED_DIGESTS",
    "Agent",
    "ExpertPolicy",
    "ModelEntry",
    "RandomPolicy",
    "TrainingInputs",
    "get_model",
    "list_models",
    "register_model",
    "train_bc",
    "train_online",
]
