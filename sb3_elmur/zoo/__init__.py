"""
RL Zoo (rl_zoo3) integration: ElmurPPO as the zoo's ``elmur_ppo`` algorithm, with hyperparameter files and an
Optuna sampler of its own. The zoo has no plugin hook, so :func:`register` extends its shared ``ALGOS``, sampler and
converter tables in place before its command line runs; everything else is the zoo's own CLI:

    python -m sb3_elmur.zoo train --algo elmur_ppo --env CartPoleNoVel-v1
    python -m sb3_elmur.zoo train --algo elmur_ppo --env CartPoleNoVel-v1 -optimize --n-trials 20 \\
        --storage logs/elmur.log --study-name cartpole
    python -m sb3_elmur.zoo enjoy --algo elmur_ppo --env CartPoleNoVel-v1 -f logs/

Needs the ``zoo`` extra (``pip install "sb3_elmur[zoo]"``: rl_zoo3, optuna).
"""

from sb3_elmur.zoo.hyperparams_opt import convert_elmur_ppo_params, elmur_kwargs_from_params, sample_elmur_ppo_params
from sb3_elmur.zoo.registration import DEFAULT_CONFIG, main, register

__all__ = [
    "DEFAULT_CONFIG",
    "convert_elmur_ppo_params",
    "elmur_kwargs_from_params",
    "main",
    "register",
    "sample_elmur_ppo_params",
]
