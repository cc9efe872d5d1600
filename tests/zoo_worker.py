"""
An RL Zoo worker for the tests: ``python -m sb3_elmur.zoo`` with the PPO part of the search space narrowed to tiny
rollouts (n_steps 32, batch 32, 1 epoch), so that a trial takes seconds. The storage, the study and the ELMUR part of
the sampler are the real ones.
"""

import sys

from rl_zoo3.hyperparams_opt import convert_onpolicy_params

import sb3_elmur.zoo.hyperparams_opt as opt
from sb3_elmur.zoo import main


def tiny_ppo_params(trial, n_actions, n_envs, additional_args):  # the zoo's signature
    return convert_onpolicy_params(
        {
            "n_steps_pow": trial.suggest_int("n_steps_pow", 5, 5),
            "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 5),
            "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.01, 0.03, log=True),
            "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.01, 0.1, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True),
            "ent_coef": trial.suggest_float("ent_coef", 1e-8, 1e-2, log=True),
            "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2]),
            "n_epochs": trial.suggest_categorical("n_epochs", [1]),
            "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 2),
            "net_arch": trial.suggest_categorical("net_arch", ["tiny"]),
            "activation_fn": trial.suggest_categorical("activation_fn", ["tanh", "relu"]),
        }
    )


if __name__ == "__main__":
    opt.sample_ppo_params = tiny_ppo_params
    main(sys.argv[1:])
