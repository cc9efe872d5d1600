"""
MIKASA-Robo memory variants, offline: behaviour cloning of the scripted expert (it remembers the cue) with the
agents of the model registry (ELMUR, BC-LSTM, BC-MLP, ...), success_once on fixed evaluation seeds, beside chance,
the expert and the ELMUR paper's table.

Per task: the expert's episodes are collected once (``--data``, .npz and a local Minari dataset
``mikasa/<task>-expert-<episodes>-v0``, seeds from 10,000; reused across runs), then
every (model, training seed) is trained and evaluated on seeds 0..``--eval-episodes``-1 and saved as one JSON in
``<output>_runs/`` (an interrupted run resumes); the table goes to ``<output>.md``. State observations of the
``*-Memory-v0`` variants (no leaks, CPU-safe cue hiding; ``docs/mikasa.md``), end-effector control.

    python benchmarks/mikasa_benchmark.py --quick      # RememberColor3, 200 episodes, 1 seed, 40 evaluation episodes
    python benchmarks/mikasa_benchmark.py              # RememberColor3/5/9 and TakeItBack, 1000 episodes, 3 seeds
"""

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from sb3_elmur.data import TrajectoryDataset, collect_trajectories
from sb3_elmur.envs.mikasa import make_mikasa_vec_env
from sb3_elmur.envs.mikasa.evaluation import evaluate_success
from sb3_elmur.registry import TrainingInputs, get_model

CONTROL = {"control_mode": "pd_ee_delta_pos"}
#: The ELMUR paper's MIKASA-Robo table (RGB, success_once): ELMUR, RATE, BC-MLP.
PAPER = {
    "RememberColor3-Memory-v0": (0.89, 0.65, 0.27),
    "RememberColor5-Memory-v0": (0.19, 0.13, 0.12),
    "RememberColor9-Memory-v0": (0.23, 0.09, 0.12),
    "TakeItBack-Memory-v0": (0.78, 0.42, 0.33),
}
#: Success of the best memoryless policy: 1/N for RememberColorN, about 1/3 for TakeItBack (three start lanes).
CHANCE = {"RememberColor3-Memory-v0": 1 / 3, "RememberColor5-Memory-v0": 1 / 5, "RememberColor9-Memory-v0": 1 / 9,
          "TakeItBack-Memory-v0": 1 / 3}  # fmt: skip
DATA_SEED = 10_000  # collection seeds never meet the evaluation seeds 0..n-1


def dataset(task: str, episodes: int, folder: Path) -> TrajectoryDataset:
    """The expert's episodes of a task (collected once, then loaded)."""
    path = folder / f"{task}-{episodes}.npz"
    if path.exists():
        return TrajectoryDataset.load_npz(path)
    start = time.perf_counter()
    env = make_mikasa_vec_env(task, n_envs=4, seed=DATA_SEED, **CONTROL)
    expert = get_model("mikasa-expert").build(env, 0, {}).model  # the task's scripted expert
    data = collect_trajectories(env, expert, episodes, progress_bar=True)
    folder.mkdir(parents=True, exist_ok=True)
    data.save_npz(path)
    print(f"{task}: {data.n_episodes} expert episodes, {data.n_steps} steps, {time.perf_counter() - start:.0f} s")
    if importlib.util.find_spec("minari") is not None:  # also as a local Minari dataset
        from sb3_elmur.data.minari import to_minari

        name = task.removesuffix("-v0")
        # No env spec stored: ManiSkill registers its ids with a callable entry point, which Minari cannot serialise.
        to_minari(data, f"mikasa/{name}-expert-{episodes}-v0", env.observation_space, env.action_space)
    env.close()
    return data


def run(task: str, model: str, seed: int, data: TrajectoryDataset | None, args: argparse.Namespace) -> dict[str, Any]:
    """Build a registry model, train it (offline models: on the expert data) and measure success_once."""
    th.manual_seed(seed)
    env = make_mikasa_vec_env(task, n_envs=1, seed=seed, **CONTROL)
    entry = get_model(model)
    agent = entry.build(env, seed, {"updates": args.updates} if entry.trained else {})
    start = time.perf_counter()
    agent.fit(TrainingInputs(dataset=data, seed=seed, progress_bar=False))
    train_s = time.perf_counter() - start
    success = evaluate_success(agent.model, task, args.eval_episodes, seed=0, n_envs=4, **CONTROL)
    env.close()
    return {"task": task, "model": model, "seed": seed, "success": success, "train_s": train_s,
            "episodes": data.n_episodes if data else 0, "updates": args.updates if entry.trained else 0,
            "eval_episodes": args.eval_episodes}  # fmt: skip


def report(results: list[dict[str, Any]], tasks: list[str], models: list[str], command: str) -> str:
    lines = [
        f"Produced by `{command}`. success_once on seeds 0..{results[0]['eval_episodes'] - 1} (state observations of the "
        "memory variants, end-effector control), mean [min, max] over training seeds; the paper's numbers are for RGB "
        "observations and are shown for orientation only.",
        "",
        "| task | chance | " + " | ".join(get_model(m).label for m in models) + " | paper ELMUR / RATE / BC-MLP |",
        "|---|---:|" + "---:|" * len(models) + "---|",
    ]
    for task in tasks:
        cells = []
        for model in models:
            values = [r["success"] for r in results if r["task"] == task and r["model"] == model]
            cells.append(f"{np.mean(values):.2f} [{min(values):.2f}, {max(values):.2f}]" if values else "-")
        paper = " / ".join(f"{v:.2f}" for v in PAPER[task])
        lines.append(f"| {task} | {CHANCE[task]:.2f} | " + " | ".join(cells) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", nargs="+", choices=list(CHANCE))
    parser.add_argument("--models", nargs="+", default=["elmur", "bc-lstm", "bc-mlp"])
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--episodes", type=int, help="expert episodes per task")
    parser.add_argument("--updates", type=int, help="BC gradient steps")
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument("--data", default=str(Path.home() / ".cache" / "sb3_elmur" / "mikasa"))
    parser.add_argument("--output", help="default docs/results/mikasa_offline[_quick]")
    args = parser.parse_args()
    quick = args.quick
    tasks = args.tasks or (["RememberColor3-Memory-v0"] if quick else list(CHANCE))
    seeds = args.seeds or ([0] if quick else [0, 1, 2])
    args.episodes = args.episodes or (200 if quick else 1000)
    args.updates = args.updates or (300 if quick else 1500)
    args.eval_episodes = args.eval_episodes or (40 if quick else 100)
    output = Path(args.output or f"docs/results/mikasa_offline{'_quick' if quick else ''}")
    runs = output.parent / f"{output.name}_runs"
    runs.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/mikasa_benchmark.py " + " ".join(sys.argv[1:])
    th.set_num_threads(1)
    results = []
    models = ["mikasa-expert", *args.models]
    for task in tasks:
        data = None
        for model in models:
            trained = get_model(model).trained
            for seed in seeds if trained else [0]:
                path = runs / f"{task}__{model}__seed{seed}.json"
                if path.exists():
                    results.append(json.loads(path.read_text()))
                    continue
                if trained and data is None:
                    data = dataset(task, args.episodes, Path(args.data))
                result = {**run(task, model, seed, data, args), "command": command}
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, indent=1))
                tmp.replace(path)
                results.append(result)
                print(f"{task} {model} seed {seed}: success_once {result['success']:.2f}", flush=True)
    table = report(results, tasks, models, command)
    output.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
