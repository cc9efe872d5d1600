"""
Training throughput of ElmurPPO relative to RecurrentPPO and PPO (MLP), measured robustly on a shared machine.

Two settings, each on the envs of :mod:`ppo_comparison`:

* ``comparison``: the three agents of :mod:`ppo_comparison` (same PPO settings, ELMUR and LSTM with
  comparable parameter counts);
* ``default``: ``ElmurPPO("MlpElmurPolicy", env)`` against ``RecurrentPPO("MlpLstmPolicy", env)``, both with
  every argument at its default (PPO-MLP: ``PPO("MlpPolicy", env)``).

ElmurPPO runs twice in each setting: eager, and with ``compile_backbone=True`` (the parallel path through
``torch.compile``; with ``--compile-acting`` also ``compile_acting=True``, the compiled acting step). The
compiled agent's warm-up includes its compilation, whose cost is reported (it depends on whether torch's
on-disk cache already holds this model shape).

The agents of a setting train in the same process in alternation: each round runs ``learn`` for ``--steps``
steps with one agent after the other (the order rotates). Background load hits all agents alike, so the
per-round ratio of steps/s is stable even when the absolute figures are not. Reported per env: median
steps/s of each agent, the median and range of the per-round ratios, ElmurPPO's steps/s relative to PPO-MLP
(the env-bound limit) and the share of ElmurPPO's ``learn`` time spent collecting rollouts.

    python benchmarks/ppo_throughput.py --threads 1 2 --output docs/results/ppo_throughput.md
"""

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from ppo_comparison import ENVS, agent, make_env
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO

import sb3_elmur.ppo.ppo_elmur as ppo_elmur
from sb3_elmur import ElmurPPO

AGENTS = ("elmur", "compiled", "lstm", "mlp")


def make_agents(setting: str, env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """The agents of a setting, each with its own envs (same seed)."""
    envs = {algo: make_env(env_id, args.n_envs, args.seed) for algo in AGENTS}
    if setting == "comparison":
        models = {algo: agent(algo, envs[algo], args.seed, args.width) for algo in ("elmur", "lstm", "mlp")}
        models["compiled"] = agent("elmur", envs["compiled"], args.seed, args.width, compile_backbone=True)
        models["compiled"].policy.compile_acting = args.compile_acting
        return models
    compiled = {"compile_backbone": True, "compile_acting": args.compile_acting}
    return {
        # Eager: the default compile_backbone="auto" could compile a long enough run.
        "elmur": ElmurPPO("MlpElmurPolicy", envs["elmur"], seed=args.seed, policy_kwargs={"compile_backbone": False}),
        "compiled": ElmurPPO("MlpElmurPolicy", envs["compiled"], seed=args.seed, policy_kwargs=compiled),
        "lstm": RecurrentPPO("MlpLstmPolicy", envs["lstm"], seed=args.seed),
        "mlp": PPO("MlpPolicy", envs["mlp"], seed=args.seed),
    }


def timed_rollouts(model: Any) -> list[float]:
    """Wrap ``model.collect_rollouts`` to add up its wall time into the returned one-element list."""
    total = [0.0]
    collect = model.collect_rollouts

    def wrapper(*a: Any, **k: Any) -> bool:
        start = time.perf_counter()
        try:
            return collect(*a, **k)
        finally:
            total[0] += time.perf_counter() - start

    model.collect_rollouts = wrapper
    return total


def timed_checks() -> tuple[list[float], Any]:
    """Time ElmurPPO's finite-value checks of env outputs (added up into the returned list); also returns the
    unwrapped check, to restore."""
    total = [0.0]
    check = ppo_elmur.check_finite_transition

    def wrapper(*a: Any, **k: Any) -> None:
        start = time.perf_counter()
        try:
            check(*a, **k)
        finally:
            total[0] += time.perf_counter() - start

    ppo_elmur.check_finite_transition = wrapper  # type: ignore[assignment]
    return total, check


def measure(setting: str, env_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """Steps/s of each agent per round, and the compiled ElmurPPO's rollout share and check share."""
    models = make_agents(setting, env_id, args)
    warm_up = {}
    for algo, model in models.items():  # warm-up: first rollouts and updates (allocations, lazy init, compilation)
        start = time.perf_counter()
        model.learn(2 * args.n_envs * model.n_steps, reset_num_timesteps=False)
        warm_up[algo] = time.perf_counter() - start
    rollout_time = timed_rollouts(models["compiled"])
    check_time, unwrapped_check = timed_checks()
    speeds: dict[str, list[float]] = {algo: [] for algo in models}
    elmur_time, check_total = 0.0, 0.0
    for round_index in range(args.rounds):
        order = rotation(list(models), round_index)
        for algo in order:
            before = check_time[0]
            start = time.perf_counter()
            models[algo].learn(args.steps, reset_num_timesteps=False)
            elapsed = time.perf_counter() - start
            speeds[algo].append(args.steps / elapsed)
            if algo == "compiled":
                elmur_time += elapsed
                check_total += check_time[0] - before
    params = {algo: sum(p.numel() for p in model.policy.parameters()) for algo, model in models.items()}
    compile_seconds = warm_up["compiled"] - warm_up["elmur"]
    ppo_elmur.check_finite_transition = unwrapped_check
    return {
        "speeds": speeds,
        "rollout_share": rollout_time[0] / elmur_time,
        "check_share": check_total / elmur_time,
        "params": params,
        "compile": compile_seconds,
    }


def rotation(items: list[str], round_index: int) -> list[str]:
    """The agents' order in a round: rotated by one each round, so that none always runs first."""
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def write_table(lines: list[str], output: str | None) -> None:
    """Print the Markdown table and, with ``output``, write it there."""
    table = "\n".join(lines) + "\n"
    print(table)
    if output:
        Path(output).write_text(table)


def ratio(speeds: dict[str, np.ndarray], a: str, b: str) -> str:
    """Median (min - max) of the per-round ratio of two agents' steps/s."""
    r = speeds[a] / speeds[b]
    return f"{np.median(r):.2f}x ({r.min():.2f} - {r.max():.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--settings", nargs="+", default=["comparison", "default"], choices=["comparison", "default"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2048, help="steps per agent per round (whole rollouts)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--width", type=int, default=64, help="comparison setting: memory width (see ppo_comparison)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compile-acting", action="store_true", help="the compiled agent also acts through the compiled step (compile_acting)"
    )
    parser.add_argument("--output", help="write the Markdown table here")
    args = parser.parse_args()
    lines = [
        f"Machine: {platform.machine()}, torch {th.__version__}, {args.n_envs} envs, {args.rounds} rounds of "
        f"{args.steps:,} steps per agent (agents alternating in one process). Ratios are per round, same round.",
        "",
        f"Command: `python benchmarks/ppo_throughput.py --envs {' '.join(args.envs)} --settings {' '.join(args.settings)} "
        f"--threads {' '.join(map(str, args.threads))} --rounds {args.rounds} --steps {args.steps}"
        f"{' --compile-acting' if args.compile_acting else ''}`",
        "",
        "Steps/s: ElmurPPO eager / ElmurPPO with `compile_backbone=True`"
        f"{' and `compile_acting=True`' if args.compile_acting else ''} / RecurrentPPO / PPO-MLP (medians). "
        "Ratios: per round, median (min - max). Rollout share: the compiled agent's time in collect_rollouts. "
        "Compile: extra seconds of the compiled agent's warm-up (cold or warm cache, as it happened). "
        "Checks: share of the compiled agent's learn() time spent checking env outputs for NaN / infinities.",
        "",
        "| setting | threads | env | steps/s (eager / compiled / LSTM / MLP) | eager / LSTM | compiled / LSTM "
        "| compiled / MLP | rollout share | checks | compile s | parameters (Elmur / LSTM) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for setting in args.settings:
        for threads in args.threads:
            th.set_num_threads(threads)
            for env_id in args.envs:
                result = measure(setting, env_id, args)
                speeds = {algo: np.array(v) for algo, v in result["speeds"].items()}
                params = result["params"]
                medians = " / ".join(f"{np.median(speeds[algo]):.0f}" for algo in AGENTS)

                lines.append(
                    f"| {setting} | {threads} | {env_id} | {medians} | {ratio(speeds, 'elmur', 'lstm')} "
                    f"| {ratio(speeds, 'compiled', 'lstm')} "
                    f"| {np.median(speeds['compiled'] / speeds['mlp']):.2f} | {result['rollout_share']:.0%} "
                    f"| {result['check_share']:.2%} "
                    f"| {result['compile']:.0f} | {params['elmur']:,} / {params['lstm']:,} |"
                )
                print(lines[-1], flush=True)
    write_table(lines, args.output)


if __name__ == "__main__":
    main()
