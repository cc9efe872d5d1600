"""Small measurement helpers shared by examples and benchmarks."""

import resource
import time
from collections.abc import Callable

import numpy as np


def rss_mib() -> float:
    """Current resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(fn: Callable[[], object], repeats: int, warmup: int = 3) -> np.ndarray:
    """
    Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    :param fn: The work to time.
    :param repeats: Number of timed calls.
    :param warmup: Number of calls before timing.
    """
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return times
