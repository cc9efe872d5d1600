"""
T-Maze length generalization (the ELMUR paper's protocol): train on corridors of at most K*S - 2 = 28
steps with a 10-step window, then greedy success over 100 fixed seeds at growing corridor lengths.

    python examples/tmaze_benchmark.py --quick     # ~5 min on a CPU: ELMUR, BC-LSTM, BC-MLP at lengths 9 .. 9600
    python examples/tmaze_benchmark.py --output docs/results/tmaze   # all methods, lengths 9 .. 10^6 (hours)
    python examples/tmaze_benchmark.py --report-only --output docs/results/tmaze   # table + plot from saved results

Methods: ``elmur`` (behaviour cloning, gradient through memory, lambda 0.1), its ablations ``elmur-detached``
(memory detached at every segment, as the published code trains), ``elmur-lambda0.5``, ``elmur-lambda1.0``,
the paper's baselines ``bc-lstm`` (sb3-contrib's LSTM policy) and ``bc-mlp`` (SB3's MLP policy), all cloned
from the same oracle data by the same trainer, and ``elmur-ppo``: ElmurPPO trained online (no demonstrations)
on the same short corridors.

Evaluation acts a chunk of steps per forward pass with an exact speculative rollout
(:func:`sb3_elmur.envs.tmaze_parallel.evaluate_tmaze_parallel`), so 100 episodes of 10^6 steps take
minutes instead of hours. With ``--output DIR`` each method's results go to ``DIR/<method>.json`` as soon
as each length is done (a rerun skips what is there), and the table and plot to ``DIR.md`` / ``DIR.png``.
Trained models are kept in ``--models-dir`` (a rerun evaluates them without retraining).
"""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch as th
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_elmur import ElmurPPO
from sb3_elmur.bc import ElmurBC
from sb3_elmur.data import TrajectoryDataset, collect_trajectories
from sb3_elmur.elmur import PAPER_LAYER
from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv
from sb3_elmur.envs.tmaze_parallel import evaluate_tmaze_parallel

QUICK_LENGTHS = [9, 30, 90, 150, 300, 600, 900, 1200, 2400, 4800, 9600]
FULL_LENGTHS = [*QUICK_LENGTHS, 100_000, 1_000_000]
METHODS = ["elmur", "bc-lstm", "bc-mlp", "elmur-ppo", "elmur-detached", "elmur-lambda0.5", "elmur-lambda1.0"]
LABELS = {
    "elmur": "ELMUR (BC)",
    "bc-lstm": "BC-LSTM",
    "bc-mlp": "BC-MLP",
    "elmur-ppo": "ElmurPPO (online)",
    "elmur-detached": "ELMUR, writer detached",
    "elmur-lambda0.5": "ELMUR, λ = 0.5",
    "elmur-lambda1.0": "ELMUR, λ = 1.0",
}


def elmur_kwargs(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """Backbone settings: the paper's layer, 2 layers, d_model 32, K = 10, M = 2 slots (fewer than the segments of long
    corridors)."""
    lru_lambda = float(method.removeprefix("elmur-lambda")) if method.startswith("elmur-lambda") else args.lru_lambda
    return {
        "d_model": 32,
        "n_layers": 2,
        "n_heads": 4,
        "segment_len": args.segment_len,
        "n_slots": args.n_slots,
        "lru_lambda": lru_lambda,
        "memory_bptt": 1 if method == "elmur-detached" else None,
        "position_bias_init": args.position_bias_init,
        **PAPER_LAYER,
    }


def build(method: str, env: TMazeVecEnv, args: argparse.Namespace) -> tuple[BaseAlgorithm, dict[str, Any]]:
    """The untrained model of a method and its BC trainer settings."""
    if method == "bc-lstm":
        kwargs = {"lstm_hidden_size": 32, "net_arch": [32], "ortho_init": False}
        model = RecurrentPPO("MlpLstmPolicy", env, seed=args.seed, policy_kwargs=kwargs)
        return model, {"learning_rate": 3e-3, "updates": 1000}
    if method == "bc-mlp":
        model = PPO("MlpPolicy", env, seed=args.seed, policy_kwargs={"net_arch": [64, 64]})
        return model, {"learning_rate": 1e-3, "updates": 300}
    policy_kwargs = {"elmur_kwargs": elmur_kwargs(args, method), "net_arch": [32]}
    if method == "elmur-ppo":
        ppo = {"n_steps": 64, "batch_size": 480, "n_epochs": 4, "learning_rate": 1e-3, "ent_coef": 0.01}
        return ElmurPPO("MlpElmurPolicy", env, seed=args.seed, policy_kwargs=policy_kwargs, **ppo), {}
    model = ElmurPPO("MlpElmurPolicy", env, seed=args.seed, policy_kwargs=policy_kwargs)
    return model, {"learning_rate": 1e-3, "updates": args.updates}


def train(method: str, data: Callable[[], TrajectoryDataset], args: argparse.Namespace) -> BaseAlgorithm:
    """Train a method on corridors 1..K*S-2 (cloning the oracle data, or online for ``elmur-ppo``)."""
    env = TMazeVecEnv(16, corridor_length=(1, args.segment_len * args.segments - 2), seed=args.seed)
    model, settings = build(method, env, args)
    if method == "elmur-ppo":
        model.learn(args.ppo_steps, progress_bar=True)
        return model
    compiled = {"yes": True, "no": False, "auto": "auto"}[args.compile]
    trainer = ElmurBC(
        model, data(), segments_per_sample=args.segments, batch_size=64, learning_rate=settings["learning_rate"],
        warmup_steps=20, seed=args.seed, segment_len=args.segment_len, compile_backbone=compiled,
    )  # fmt: skip
    trainer.learn(settings["updates"])
    return model


def load_model(method: str, path: Path) -> BaseAlgorithm:
    return {"bc-lstm": RecurrentPPO, "bc-mlp": PPO}.get(method, ElmurPPO).load(path, device="cpu")


class Results:
    """Per-method results, saved to ``<dir>/<method>.json`` after every change (None: kept in memory)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.data: dict[str, dict[str, Any]] = {}
        if directory is not None and directory.is_dir():
            for file in sorted(directory.glob("*.json")):
                self.data[file.stem] = json.loads(file.read_text())

    def method(self, method: str) -> dict[str, Any]:
        return self.data.setdefault(method, {"success": {}, "eval_seconds": {}})

    def save(self, method: str) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{method}.json").write_text(json.dumps(self.data[method], indent=1))


def run_method(
    method: str, lengths: list[int], args: argparse.Namespace, results: Results, data: Callable[[], TrajectoryDataset]
) -> None:
    entry = results.method(method)
    todo = [length for length in lengths if str(length) not in entry["success"]]
    if not todo:
        return
    model_path = Path(args.models_dir) / f"{method}.zip" if args.models_dir else None
    if model_path is not None and model_path.exists():
        model = load_model(method, model_path)
        print(f"\n{LABELS[method]}: loaded {model_path}")
    else:
        print(f"\n{LABELS[method]}: training")
        th.manual_seed(args.seed)
        begin = time.perf_counter()
        model = train(method, data, args)
        entry["train_seconds"] = round(time.perf_counter() - begin, 1)
        entry["parameters"] = sum(p.numel() for p in model.policy.parameters())
        entry["command_args"] = {k: v for k, v in vars(args).items() if k not in ("output", "report_only")}
        if model_path is not None:
            model_path.parent.mkdir(parents=True, exist_ok=True)
            model.save(model_path)
        results.save(method)
        print(f"trained in {entry['train_seconds']:.0f} s ({entry['parameters']:,} parameters)")
    print(f"{'corridor':>10} | {'success':>7} | {'seconds':>7}")
    for length in todo:
        begin = time.perf_counter()
        outcome = evaluate_tmaze_parallel(
            model, length, n_episodes=args.eval_episodes, seed=1000 + args.seed, progress_bar=length >= 100_000
        )
        entry["success"][str(length)] = outcome.success_rate
        entry["eval_seconds"][str(length)] = round(time.perf_counter() - begin, 1)
        results.save(method)
        print(f"{length:>10,} | {outcome.success_rate:>7.2f} | {entry['eval_seconds'][str(length)]:>7.1f}", flush=True)


def table(results: Results, methods: list[str]) -> str:
    methods = [m for m in methods if m in results.data]
    lengths = sorted({int(length) for m in methods for length in results.data[m]["success"]})
    lines = [
        "| corridor length | " + " | ".join(LABELS[m] for m in methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for length in lengths:
        cells = [results.data[m]["success"].get(str(length)) for m in methods]
        lines.append(f"| {length:,} | " + " | ".join("not run" if c is None else f"{c:.2f}" for c in cells) + " |")
    for name, key, fmt in (("parameters", "parameters", ","), ("training seconds", "train_seconds", ".0f")):
        lines.append(f"| {name} | " + " | ".join(format(results.data[m].get(key, 0), fmt) for m in methods) + " |")
    return "\n".join(lines) + "\n"


def plot(results: Results, path: Path) -> None:
    """Success against corridor length: the methods (left) and the ELMUR ablations (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {
        "methods": ["elmur", "bc-lstm", "bc-mlp", "elmur-ppo"],
        "ELMUR ablations": ["elmur", "elmur-detached", "elmur-lambda0.5", "elmur-lambda1.0"],
    }
    # Lines that coincide stay visible: decreasing marker sizes, distinct markers.
    markers = {"elmur": ("o", 9), "bc-lstm": ("s", 6), "bc-mlp": ("^", 6), "elmur-ppo": ("D", 5)}
    markers |= {"elmur-detached": ("v", 6), "elmur-lambda0.5": ("s", 6), "elmur-lambda1.0": ("x", 6)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (title, methods) in zip(axes, panels.items(), strict=True):
        for method in methods:
            if method not in results.data or not results.data[method]["success"]:
                continue
            points = sorted((int(length), rate) for length, rate in results.data[method]["success"].items())
            marker, size = markers[method]
            ax.plot(*zip(*points, strict=True), marker=marker, markersize=size, alpha=0.85, label=LABELS[method])
        ax.axvline(28, color="grey", linewidth=0.8, linestyle=":")
        ax.text(31, 0.9, "longest training\ncorridor (28)", color="grey", fontsize=8)
        ax.set(xscale="log", ylim=(-0.03, 1.05), xlabel="corridor length (steps)", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("greedy success over 100 seeds")
    fig.suptitle("T-Maze: trained on corridors of 1..28 steps with a 10-step window", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="ELMUR, BC-LSTM and BC-MLP at lengths up to 9600")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="methods to run (default: all; quick: 3)")
    parser.add_argument("--lengths", type=int, nargs="+", help="corridor lengths to evaluate")
    parser.add_argument("--episodes", type=int, default=2000, help="oracle episodes for behaviour cloning")
    parser.add_argument("--updates", type=int, help="ELMUR BC gradient steps (default 600 quick, 2000 full)")
    parser.add_argument("--ppo-steps", type=int, default=100_000, help="env steps for elmur-ppo")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--segment-len", type=int, default=10, help="K")
    parser.add_argument("--segments", type=int, default=3, help="S, segments per training sample")
    parser.add_argument("--n-slots", type=int, default=2, help="M")
    parser.add_argument("--lru-lambda", type=float, default=0.1, help="lambda of the main ELMUR method")
    parser.add_argument("--position-bias-init", default="zero", choices=["zero", "recency"], help="ElmurConfig setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "yes", "no"],
        help="ELMUR cloning through torch.compile (auto: where the run is long enough to pay, ElmurBC's compile_pays)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--models-dir", help="save trained models here (and reuse them on a rerun)")
    parser.add_argument("--output", help="results folder: DIR/<method>.json, DIR.md (table) and DIR.png (plot)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plot from --output")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    output = Path(args.output) if args.output else None
    results = Results(output)
    methods = args.methods or (METHODS[:3] if args.quick else METHODS)
    lengths = args.lengths or (QUICK_LENGTHS if args.quick else FULL_LENGTHS)
    args.updates = args.updates or (600 if args.quick else 2000)

    if not args.report_only:
        cache: list[TrajectoryDataset] = []

        def data() -> TrajectoryDataset:
            if not cache:
                env = TMazeVecEnv(16, corridor_length=(1, args.segment_len * args.segments - 2), seed=args.seed)
                cache.append(collect_trajectories(env, TMazeOracle(), args.episodes))
                print(f"oracle data: {cache[0].n_episodes} episodes, {cache[0].n_steps} steps")
            return cache[0]

        for method in methods:
            run_method(method, lengths, args, results, data)

    report = table(results, METHODS)
    print("\nsuccess over", args.eval_episodes, "seeds (greedy):\n")
    print(report)
    if output is not None:
        output.with_suffix(".md").write_text(report)
        plot(results, output.with_suffix(".png"))
        print(f"wrote {output.with_suffix('.md')} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
