"""
Optuna sampler and converter of ``elmur_ppo`` for the RL Zoo.

The zoo's objective replaces the hyperparameter file's ``policy_kwargs`` with the sampler's, so the PPO sampler
(which returns only ``net_arch`` and ``activation_fn``) would silently drop ``elmur_kwargs``. This sampler returns a
complete ``policy_kwargs``: the PPO sampler's, plus the ELMUR settings it samples (trial parameters ``elmur_*``).
"""

from typing import Any

import optuna
from rl_zoo3.hyperparams_opt import convert_onpolicy_params, sample_ppo_params

#: Trial parameter -> (ElmurConfig field, choices).
ELMUR_CHOICES: dict[str, tuple[str, list[Any]]] = {
    "elmur_d_model": ("d_model", [32, 64, 128]),
    "elmur_n_layers": ("n_layers", [1, 2, 3]),
    "elmur_segment_len": ("segment_len", [8, 16, 32]),
    "elmur_n_slots": ("n_slots", [2, 4, 8]),
    "elmur_lru_lambda": ("lru_lambda", [0.1, 0.3, 0.5, 1.0]),
}


def elmur_kwargs_from_params(params: dict[str, Any]) -> dict[str, Any]:
    """The ``elmur_kwargs`` of a trial's parameters (its ``elmur_*`` entries; 4 heads, or fewer for narrow models)."""
    kwargs = {field: params[name] for name, (field, _) in ELMUR_CHOICES.items() if name in params}
    if "d_model" in kwargs:
        kwargs["n_heads"] = 4 if kwargs["d_model"] >= 64 else 2
    return kwargs


def sample_elmur_ppo_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Sample ElmurPPO hyperparameters: the zoo's PPO sampler plus the ELMUR backbone settings.

    :param trial: The Optuna trial.
    :param n_actions: Action dimension (unused, the zoo's signature).
    :param n_envs: Number of envs (unused).
    :param additional_args: The zoo's extra arguments (unused).
    :return: Constructor keyword arguments, ``policy_kwargs`` with ``elmur_kwargs`` included.
    """
    hyperparams = sample_ppo_params(trial, n_actions, n_envs, additional_args)
    params = {name: trial.suggest_categorical(name, choices) for name, (_, choices) in ELMUR_CHOICES.items()}
    hyperparams["policy_kwargs"]["elmur_kwargs"] = elmur_kwargs_from_params(params)
    return hyperparams


def convert_elmur_ppo_params(params: dict[str, Any]) -> dict[str, Any]:
    """
    A stored trial's parameters as constructor arguments (the zoo's ``--trial-id`` and best-trial loading).

    :param params: ``trial.params`` of a study made with :func:`sample_elmur_ppo_params`.
    """
    hyperparams = convert_onpolicy_params({key: value for key, value in params.items() if not key.startswith("elmur_")})
    hyperparams["policy_kwargs"]["elmur_kwargs"] = elmur_kwargs_from_params(params)
    return hyperparams
