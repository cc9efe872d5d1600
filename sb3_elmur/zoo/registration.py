"""Registration of ``elmur_ppo`` in rl_zoo3's tables, and the zoo's command line with it."""

import contextlib
import runpy
import sys
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # rl_zoo3 registers NoVel ids of its own (velocities zeroed); ours (velocities removed) are put back below.
    warnings.filterwarnings("ignore", message=r".*Overriding environment \S*NoVel")
    import rl_zoo3
    from rl_zoo3 import hyperparams_opt
    from rl_zoo3.enjoy import enjoy
    from rl_zoo3.train import train

from sb3_elmur import ElmurPPO
from sb3_elmur.envs import register_no_velocity_envs
from sb3_elmur.zoo.hyperparams_opt import convert_elmur_ppo_params, sample_elmur_ppo_params

#: The hyperparameter file used when ``--algo elmur_ppo`` comes without ``-conf``.
DEFAULT_CONFIG = Path(__file__).parent / "hyperparams" / "elmur_ppo.yml"
ALGO = "elmur_ppo"


def record_video() -> None:
    """rl_zoo3's ``record_video`` (a script without a function: run as ``__main__``)."""
    runpy.run_module("rl_zoo3.record_video", run_name="__main__")


SCRIPTS = {"train": train, "enjoy": enjoy, "record_video": record_video}

# One definition of the NoVel envs in the whole package (benchmarks, tests and the zoo): positions only.
register_no_velocity_envs(override=True)


def register() -> None:
    """
    Add ``elmur_ppo`` to rl_zoo3's algorithms, samplers and converters (idempotent). The NoVel ids are sb3_elmur's
    (velocities removed, as in ``benchmarks/ppo_recipes.py``), not rl_zoo3's (velocities zeroed): the same
    information, two fewer inputs.
    """
    rl_zoo3.ALGOS[ALGO] = ElmurPPO  # one dict shared by train, enjoy, exp_manager and record_video
    hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO] = sample_elmur_ppo_params
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO] = convert_elmur_ppo_params
    with contextlib.suppress(ImportError):  # POPGym ids, when popgym is installed
        import popgym  # noqa: F401


def _with_default_config(argv: list[str]) -> list[str]:
    """``argv`` with ``-conf DEFAULT_CONFIG`` added for ``elmur_ppo`` training without a hyperparameter file."""
    algo = argv[argv.index("--algo") + 1] if "--algo" in argv[:-1] else None
    if algo == ALGO and not {"-conf", "--conf-file"} & set(argv):
        return [*argv, "-conf", str(DEFAULT_CONFIG)]
    return argv


def main(argv: list[str] | None = None) -> None:
    """
    ``python -m sb3_elmur.zoo {train,enjoy,record_video} [zoo arguments]``: the zoo's scripts with ``elmur_ppo``.

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SCRIPTS:
        raise SystemExit(f"usage: python -m sb3_elmur.zoo {{{','.join(SCRIPTS)}}} [rl_zoo3 arguments]")
    register()
    script, rest = argv[0], argv[1:]
    if script == "train":
        rest = _with_default_config(rest)
    saved = sys.argv
    sys.argv = [f"sb3_elmur.zoo {script}", *rest]  # the zoo's scripts parse sys.argv
    try:
        SCRIPTS[script]()
    finally:
        sys.argv = saved
