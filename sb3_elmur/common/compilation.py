"""
When ``torch.compile`` of the backbone's training path pays for itself: the rule behind ``compile_backbone="auto"``
of ElmurPPO and ElmurBC, and the errors after which training goes on eagerly.
"""

import numpy as np

#: Seconds a first compilation of the backbone's training path costs (the T-Maze protocol's model on 2 CPU cores, an
#: empty compile cache: 106 s; docs/results/bc_compile_once.md; PPO's minibatch shapes: 1-2 minutes). With torch's
#: on-disk cache warm it is far less.
COMPILE_SECONDS = 100.0
#: How many times faster a compiled update is than an eager one, about (on a CPU: 1.9x on the T-Maze protocol, 2.3x
#: on POPGym's PositionOnlyCartPoleEasy, about 2.4x for PPO updates; docs/bc.md, docs/ppo.md).
COMPILED_SPEEDUP = 2.0


def compile_pays(seconds_per_update: float, updates_left: int) -> bool:
    """
    Whether compiling the rest of a run saves time: the eager time left, ``seconds_per_update * updates_left``, against
    :data:`COMPILE_SECONDS` plus that time divided by :data:`COMPILED_SPEEDUP`.

    :param seconds_per_update: Measured seconds of an eager update.
    :param updates_left: Updates still to make.
    :return: True where the compiled rest of the run is expected to be shorter.
    """
    eager = seconds_per_update * updates_left
    return COMPILE_SECONDS + eager / COMPILED_SPEEDUP < eager


def compile_errors() -> tuple[type[Exception], ...]:
    """The errors of a compilation that failed (no C++ compiler for inductor, an unsupported construct, ...)."""
    import torch._dynamo.exc
    import torch._inductor.exc

    return (torch._dynamo.exc.TorchDynamoException, torch._inductor.exc.InductorError)


def timed_seconds_per_update(seconds: list[float], timed_updates: int) -> float | None:
    """
    The seconds of an eager update once ``timed_updates`` updates after the first have been timed (the first pays
    one-time costs and is not counted): their median; None while there are fewer.

    :param seconds: Seconds of the eager updates so far, the first included.
    :param timed_updates: Updates to time after the first.
    """
    return float(np.median(seconds[1:])) if len(seconds) > timed_updates else None


def decision_message(seconds_per_update: float, updates_left: int, compiled: bool) -> str:
    """The line ``compile_backbone="auto"`` prints (to stderr) when it decides."""
    choice = "compiling the backbone's training path" if compiled else "staying eager"
    return f"compile_backbone='auto': {seconds_per_update * 1e3:.0f} ms per eager update, {updates_left} to go: {choice}"
