"""
POPGym benchmark demo: ELMUR, BC-LSTM, BC-MLP and Random cloned from the history-based experts, evaluated on
seeds 0..99 as in the ELMUR paper (offline track), or ElmurPPO, RecurrentPPO and PPO-MLP trained online.

    python examples/popgym_benchmark.py                  # quick offline run: 5 tasks, ~10 min on 2 CPU cores
    python examples/popgym_benchmark.py --full           # offline, all 48 tasks, 3000 episodes per task (hours)
    python examples/popgym_benchmark.py --online         # online, the 16 Easy tasks, 100k steps each (hours)
    python examples/popgym_benchmark.py --online --quick # online, 5 tasks, 20k steps each

Any other option goes to the harness (benchmarks/popgym_benchmark.py, ``--help`` lists them), e.g.
``--tasks CountRecall --workers 2`` or ``--set elmur.updates=500``. Results go to docs/results/popgym_*.md
(table), .csv (every run), .png (bars relative to the expert) and popgym_*_runs/ (one JSON per run; a rerun
resumes).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import popgym_benchmark  # the harness


def main() -> None:
    argv = sys.argv[1:]
    full, online = "--full" in argv, "--online" in argv
    argv = [a for a in argv if a not in ("--full", "--online")]
    if online:
        argv = ["--track", "online", *argv]
        if "--tasks" not in argv and "--quick" not in argv:
            argv += ["--tasks", "Easy"]
    elif not full and "--tasks" not in argv:
        argv = ["--quick", *argv]
    if full and "--tasks" not in argv:
        argv += ["--tasks", "all"]
    if "--workers" not in argv and full:
        argv += ["--workers", "2"]
    popgym_benchmark.main(argv, command=" ".join(["python examples/popgym_benchmark.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
