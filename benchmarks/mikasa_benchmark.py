"""
MIKASA-Robo memory variants: behaviour cloning of the scripted expert (it remembers the cue) with the offline agents
of the model registry (ELMUR, BC-LSTM, BC-MLP, ...), or online training with its online agents (ElmurPPO,
RecurrentPPO, PPO-MLP; ``--online``), success_once on fixed evaluation seeds, beside chance, the expert and the ELMUR
paper's table.

Per task: the expert's episodes are collected once (``--data``, .npz and a local Minari dataset
``mikasa/<task>-expert-<episodes>-v0``, seeds from 10,000; reused across runs), then
every (model, training seed) is trained and evaluated on seeds 0..``--eval-episodes``-1 and saved as one JSON in
``<output>_runs/`` (an interrupted run resumes); the table goes to ``<output>.md``. State observations of the
``*-Memory-v0`` variants (no leaks, CPU-safe cue hiding; ``docs/mikasa.md``), end-effector control.

Online (``--online``): every agent gets the same step budget, PPO settings (the registry's) and training envs
(``--n-envs``, seeded from ``TRAIN_SEED + 1000 * seed``, ManiSkill's normalized dense reward); the run records the
success rate of its last 100 training episodes every ``--eval-freq`` steps (the learning curve, plotted to
``<output>.png``) and is then evaluated like the cloned agents.

    python benchmarks/mikasa_benchmark.py --quick      # RememberColor3, 200 episodes, 1 seed, 40 evaluation episodes
    python benchmarks/mikasa_benchmark.py              # RememberColor3/5/9 and TakeItBack, 1000 episodes, 3 seeds
    python benchmarks/mikasa_benchmark.py --online     # ElmurPPO and PPO-MLP, 100k steps, 1 seed
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

from sb3_elmur.common.callbacks import TrainingSuccess
from sb3_elmur.data import TrajectoryDataset, collect_trajectories
from sb3_elmur.envs.mikasa import make_mikasa_vec_env
from sb3_elmur.envs.mikasa.batched import make_mikasa_batched_vec_env
from sb3_elmur.envs.mikasa.evaluation import evaluate_episodes
from sb3_elmur.envs.mikasa.memory_variants import VARIANT_VERSION
from sb3_elmur.registry import BC_SETTINGS, TrainingInputs, get_model

CONTROL = {"control_mode": "pd_ee_delta_pos"}
#: The ELMUR paper's MIKASA-Robo table (RGB, success_once): ELMUR, RATE, BC-MLP.
PAPER = {
    "RememberColor3-Memory-v0": (0.89, 0.65, 0.27),
    "RememberColor5-Memory-v0": (0.19, 0.13, 0.12),
    "RememberColor9-Memory-v0": (0.23, 0.09, 0.12),
    "TakeItBack-Memory-v0": (0.78, 0.42, 0.33),
}
#: What a policy without memory reaches: RememberColorN 1/N; TakeItBack 0.49, the best memoryless policy measured
#: (seeds 0-99: the line-follower, which carries the cube to about y = 0 in the memory variant, where the start region
#: covers the middle lane and part of a side lane; a random lane gives 1/3, the middle lane's centre 0.33).
CHANCE = {"RememberColor3-Memory-v0": 1 / 3, "RememberColor5-Memory-v0": 1 / 5, "RememberColor9-Memory-v0": 1 / 9,
          "TakeItBack-Memory-v0": 0.49}  # fmt: skip
#: Segments per behaviour-cloning window (``segments_per_sample``, the same for every cloned model) where the
#: registry's 3 (30 steps) are too short: the gradient reaches a memory write only from losses of the same window.
#: RememberColor's expert episodes end with the success after 20-22 steps, so 30 steps hold the cue and the search.
#: TakeItBack's successful ones last 28-102 steps (median 64) and the start, seen only at the first steps, is needed
#: in the return phase, after the first 30 steps: 11 segments (110 steps) hold every one of them whole.
SEGMENTS_PER_SAMPLE = {"TakeItBack-Memory-v0": 11}
#: Tasks whose cloned models standardize their inputs with the data's statistics (ElmurBC's normalize_observations):
#: TakeItBack's cue, the cube's start, has a std of 0.03 / 0.08 m beside joint features of std up to 0.7 (with raw
#: inputs ELMUR's training seed 2 did not learn the memory: 0.25; standardized, the same seed: 0.97).
STANDARDIZED = {"TakeItBack-Memory-v0"}
DATA_SEED = 10_000  # collection seeds never meet the evaluation seeds 0..n-1
TRAIN_SEED = 20_000  # nor do the online training envs' seeds


def dataset(task: str, episodes: int, folder: Path) -> TrajectoryDataset:
    """
    The expert's episodes of a task (collected once, then loaded). The file name carries the variant's
    ``VARIANT_VERSION`` (state layout and dynamics), so data of an older variant is never reused (and a file whose
    observations do not fit the env is collected again). The models clone the successful episodes only
    (:func:`demonstrations`).

    :param task: A memory-variant id.
    :param episodes: Expert episodes.
    :param folder: Where the data lies.
    """
    path = folder / f"{task}-obs{VARIANT_VERSION[task]}-{episodes}.npz"
    env = make_mikasa_vec_env(task, n_envs=4, seed=DATA_SEED, **CONTROL)
    if path.exists():
        data = TrajectoryDataset.load_npz(path)
        if data.observations.shape[1:] == env.observation_space.shape:
            env.close()
            return data
        print(f"{path}: observations of shape {data.observations.shape[1:]}, not the env's; collecting again")
    start = time.perf_counter()
    expert = get_model("mikasa-expert").build(env, 0, {}).model  # the task's scripted expert
    data = collect_trajectories(env, expert, episodes, progress_bar=True)
    folder.mkdir(parents=True, exist_ok=True)
    data.save_npz(path)
    print(f"{task}: {data.n_episodes} expert episodes, {data.n_steps} steps, {time.perf_counter() - start:.0f} s")
    if importlib.util.find_spec("minari") is not None:  # also as a local Minari dataset
        from sb3_elmur.data.minari import to_minari

        name = task.removesuffix("-v0")
        # No env spec stored: ManiSkill registers its ids with a callable entry point, which Minari cannot serialise.
        to_minari(data, f"mikasa/{name}-expert-{episodes}-v{VARIANT_VERSION[task]}", env.observation_space, env.action_space)
    env.close()
    return data


def demonstrations(data: TrajectoryDataset) -> TrajectoryDataset:
    """
    The successful episodes of the expert data (ManiSkill ends an episode at the success; the failures run to the
    time limit): the RememberColor experts never fail, TakeItBack's fails 13 of 1000 episodes (version 2; 14 in
    version 1), 180 steps of pushing about, against 28-102 for a success.
    """
    return data.select(data.terminated) if not data.terminated.all() else data


def run(
    task: str,
    model: str,
    seed: int,
    data: TrajectoryDataset | None,
    args: argparse.Namespace,
    model_path: Path | None = None,
) -> dict[str, Any]:
    """
    Build a registry model, train it (offline models: on the expert data; online models: ``args.timesteps`` steps
    in ``args.n_envs`` envs), measure success_once and save the trained model to ``model_path`` (a .zip, when given).
    """
    th.manual_seed(seed)
    entry = get_model(model)
    online = entry.kind == "online"
    train_seed = TRAIN_SEED + 1000 * seed
    if online and args.batched:  # one batched ManiSkill env: the GPU backend's parallel simulation where there is a GPU
        env = make_mikasa_batched_vec_env(task, n_envs=args.n_envs, seed=train_seed, **CONTROL)
    else:
        env = make_mikasa_vec_env(task, n_envs=args.n_envs if online else 1, seed=train_seed, **CONTROL)
    cloned = entry.trained and not online
    overrides = bc_settings(task, args) if cloned else {}
    if entry.trained and args.device != "cpu":  # the registry's models run on the CPU unless asked otherwise
        overrides["model_kwargs"] = {"device": args.device}
    agent = entry.build(env, seed, overrides)
    curve = TrainingSuccess(args.eval_freq) if online else None
    inputs = TrainingInputs(dataset=data, total_timesteps=args.timesteps, callback=curve, seed=seed, progress_bar=online)
    start = time.perf_counter()
    agent.fit(inputs)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    episodes = evaluate_episodes(agent.model, task, args.eval_episodes, seed=0, n_envs=4, **CONTROL)
    eval_s = time.perf_counter() - start
    env.close()
    result = {"task": task, "model": model, "seed": seed, "success": float(np.mean([e["success"] for e in episodes])),
              "train_s": train_s, "eval_s": eval_s, "eval_episodes": args.eval_episodes, "obs_version": VARIANT_VERSION[task],
              **budget(entry, args.episodes if data else 0, args, task)}  # fmt: skip
    if data is not None:
        result["demonstrations"] = data.n_episodes  # the successful episodes cloned
    if online:
        steps = int(agent.model.num_timesteps)  # whole rollouts: the budget rounded up to n_steps * n_envs
        result.update(settings=agent.settings, parameters=agent.n_parameters, curve=curve.curve if curve else [],
                      steps_done=steps, steps_per_s=steps / train_s)  # fmt: skip
    # How far the policy got (evaluate_episodes): the rate of each reached_* flag, the median of each final distance.
    for key in episodes[0]:
        if key.startswith("reached_"):
            result[key] = float(np.mean([e[key] for e in episodes]))
        elif key.startswith("final_"):
            result[f"median_{key}"] = float(np.nanmedian([e[key] for e in episodes]))
    if model_path is not None and entry.trained:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        agent.model.save(model_path)
    return result


def bc_settings(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The settings every cloned model of a task trains with: ``args.updates``, the task's window and inputs."""
    window = SEGMENTS_PER_SAMPLE.get(task, BC_SETTINGS["segments_per_sample"])
    standardized = task in STANDARDIZED or args.standardize
    return {"updates": args.updates, "segments_per_sample": window, "normalize_observations": standardized}


def budget(entry: Any, episodes: int, args: argparse.Namespace, task: str) -> dict[str, Any]:
    """
    What a run was trained with (a saved run is reused only if it matches, :func:`matches`): expert episodes and
    :func:`bc_settings` for cloned agents, environment steps and envs for online ones, nothing for untrained ones;
    for trained ones also the digest of the registry's settings of the model (``registry``).
    """
    if not entry.trained:
        return {"episodes": 0, "updates": 0}
    digest = {"registry": entry.defaults_digest()}
    if entry.kind == "online":
        return {"timesteps": args.timesteps, "n_envs": args.n_envs, **({"batched": True} if args.batched else {}), **digest}
    return {"episodes": episodes, **bc_settings(task, args), **digest}


def matches(saved: dict[str, Any], wanted: dict[str, Any], entry: Any) -> bool:
    """
    Whether a saved run was made with the ``wanted`` settings (:func:`budget` and the variant's version); the
    registry's digest through :meth:`~sb3_elmur.registry.ModelEntry.accepts_digest` (runs saved before digests were
    recorded carry none).
    """
    same = all(saved.get(key, 0) == value for key, value in wanted.items() if key != "registry")
    return same and ("registry" not in wanted or entry.accepts_digest(saved.get("registry")))


def report(
    results: list[dict[str, Any]],
    tasks: list[str],
    models: list[str],
    command: str,
    expected: int,
    online: argparse.Namespace | None = None,
) -> str:
    """
    The results as Markdown: success_once beside chance and the paper, then per run what a RememberColor policy
    reached and how long training and evaluation took.

    :param results: The run JSONs.
    :param tasks: Tasks (rows).
    :param models: Registry names (columns).
    :param command: The command line that makes (and resumes) every run of the table, shown above it.
    :param expected: The number of runs the table has places for (it says how many are done).
    :param online: The arguments of an online run (its budget is stated), None for the offline track.
    """
    eval_episodes = results[0]["eval_episodes"] if results else 0
    labels = [get_model(m).label for m in models]
    track = (
        f"Online: {online.timesteps} environment steps per run in {online.n_envs} envs, the registry's PPO settings "
        "for every agent, ManiSkill's normalized dense reward. "
        if online
        else ""
    )
    lines = [
        f"Produced by `{command}` ({len(results)} of {expected} runs done). {track}success_once on seeds "
        f"0..{eval_episodes - 1} (state observations of the memory variants, end-effector control), mean [min, max] "
        "over training seeds; the paper's numbers are for RGB observations and offline training, shown for orientation "
        "only.",
        "",
        "| task | chance | " + " | ".join(labels) + " | paper ELMUR / RATE / BC-MLP |",
        "|---|---:|" + "---:|" * len(models) + "---|",
    ]

    def runs_of(task: str, model: str) -> list[dict[str, Any]]:
        return [r for r in results if r["task"] == task and r["model"] == model]

    def cell(values: list[float], digits: int = 2) -> str:
        return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]" if values else "-"

    for task in tasks:
        cells = [cell([r["success"] for r in runs_of(task, model)]) for model in models]
        paper = " / ".join(f"{v:.2f}" for v in PAPER[task])
        lines.append(f"| {task} | {CHANCE[task]:.2f} | " + " | ".join(cells) + f" | {paper} |")
    lines += [
        "",
        "Per model: reached any cube / reached the target cube (RememberColor: the TCP within the success radius at "
        "some step, static or not), or the rate of episodes whose cube reached the goal and the median distance of the "
        "cube to its start at the end (TakeItBack; the start region's radius is 0.08 m), and training / evaluation "
        "minutes per run (mean).",
        "",
        "| task | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(models),
    ]
    for task in tasks:
        cells = []
        for model in models:
            runs = runs_of(task, model)
            if not runs:
                cells.append("-")
                continue
            mean = {
                key: np.mean([r.get(key, 0.0) for r in runs])
                for key in ("reached_cube", "reached_target", "train_s", "eval_s")
            }
            reach = f"{mean['reached_cube']:.2f} / {mean['reached_target']:.2f}, " if "reached_cube" in runs[0] else ""
            if "reached_goal" in runs[0]:  # TakeItBack
                goal = np.mean([r["reached_goal"] for r in runs])
                back = np.median([r["median_final_start_distance"] for r in runs])
                reach = f"goal {goal:.2f}, cube to start {back:.3f} m, "
            minutes = f"{mean['train_s'] / 60:.1f} / {mean['eval_s'] / 60:.1f} min"
            speed = f", {np.mean([r['steps_per_s'] for r in runs]):.0f} steps/s" if "steps_per_s" in runs[0] else ""
            cells.append(reach + minutes + speed)
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(results: list[dict[str, Any]], tasks: list[str], models: list[str], path: Path) -> None:
    """
    One panel per task: the success rate of the last 100 training episodes against environment steps, per online
    agent (mean over training seeds, min-max band), with chance as a dotted line.

    :param results: The run JSONs.
    :param tasks: Tasks (panels).
    :param models: Online registry names (lines).
    :param path: The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sb3_elmur.common.plotting import plot_learning_curves

    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for model in models:
            curves = [r["curve"] for r in results if r["task"] == task and r["model"] == model and r.get("curve")]
            plot_learning_curves(ax, curves, get_model(model).label)
        ax.axhline(CHANCE[task], color="grey", linestyle=":", label="chance")
        ax.set(title=task.removesuffix("-Memory-v0"), xlabel="environment steps", ylim=(-0.02, 1.02))
    axes[0][0].set_ylabel("training success (last 100 episodes)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def track_arguments(argv: list[str]) -> list[str]:
    """The arguments of a run without its ``--tasks`` / ``--models`` subset and ``--table-only``: the command that makes
    every run of the table (a subset run's results are those it would make, since saved runs must match its budget)."""
    kept, skipping = [], False
    for arg in argv:
        if arg.startswith("--"):
            skipping = arg in ("--tasks", "--models")
            if skipping or arg == "--table-only":
                continue
        elif skipping:
            continue
        kept.append(arg)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--online", action="store_true", help="train the online agents (default: clone the expert)")
    parser.add_argument("--tasks", nargs="+", choices=list(CHANCE))
    parser.add_argument("--models", nargs="+", help="registry names (default elmur bc-lstm bc-mlp; online elmur-ppo ppo-mlp)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--episodes", type=int, help="expert episodes per task")
    parser.add_argument("--updates", type=int, help="BC gradient steps")
    parser.add_argument("--timesteps", type=int, help="online: environment steps per run (default 100k; quick 10k)")
    parser.add_argument("--n-envs", type=int, default=8, help="online: training envs")
    parser.add_argument(
        "--batched",
        action="store_true",
        help="online: the training envs as one batched ManiSkill env (MikasaBatchedVecEnv: the GPU backend where a GPU "
        "is, episodes to the time limit; on a CPU only with --n-envs 1)",
    )
    parser.add_argument("--device", default="cpu", help="torch device of the trained models (e.g. cuda)")
    parser.add_argument("--eval-freq", type=int, help="online: steps between learning-curve points")
    parser.add_argument("--eval-episodes", type=int)
    parser.add_argument(
        "--standardize",
        action="store_true",
        help=f"every task's cloned models standardize their inputs (default: only {', '.join(sorted(STANDARDIZED))})",
    )
    parser.add_argument("--data", default=str(Path.home() / ".cache" / "sb3_elmur" / "mikasa"))
    parser.add_argument("--output", help="default docs/results/mikasa_offline[_quick] (online: mikasa_online[_quick])")
    parser.add_argument("--table-only", action="store_true", help="write the table of the runs done so far, run nothing")
    args = parser.parse_args()
    quick, online = args.quick, args.online
    default_tasks = ["RememberColor3-Memory-v0"] if quick else list(CHANCE)
    tasks = args.tasks or default_tasks
    seeds = args.seeds or ([0] if quick or online else [0, 1, 2])
    args.episodes = args.episodes or (200 if quick else 1000)
    args.updates = args.updates or (300 if quick else 4000)
    args.timesteps = args.timesteps or (10_000 if quick else 100_000)
    args.eval_freq = args.eval_freq or max(args.timesteps // 20, 1)
    args.eval_episodes = args.eval_episodes or (40 if quick else 100)
    kind = "online" if online else "offline"
    default_models = ["elmur-ppo", "ppo-mlp"] if online else ["elmur", "bc-lstm", "bc-mlp"]
    args.models = args.models or default_models
    # The table always covers the track's tasks and agents (a --tasks / --models subset runs only its part).
    table_tasks = [*default_tasks, *(task for task in tasks if task not in default_tasks)]
    table_models = ["mikasa-expert", *default_models, *(model for model in args.models if model not in default_models)]
    for model in args.models:
        if get_model(model).kind != kind:
            parser.error(f"{model} is a {get_model(model).kind} agent; this is the {kind} track (--online switches)")
    output = Path(args.output or f"docs/results/mikasa_{kind}{'_quick' if quick else ''}")
    runs = output.parent / f"{output.name}_runs"
    runs.mkdir(parents=True, exist_ok=True)
    # The command that makes (and resumes) the runs; --table-only only writes their table.
    command = " ".join(["python benchmarks/mikasa_benchmark.py", *(arg for arg in sys.argv[1:] if arg != "--table-only")])
    track_command = " ".join(["python benchmarks/mikasa_benchmark.py", *track_arguments(sys.argv[1:])])
    th.set_num_threads(1)
    results = []
    models = ["mikasa-expert", *args.models]
    for task in table_tasks:
        data = None
        for model in table_models:
            entry = get_model(model)
            for seed in seeds if entry.trained else [0]:
                path = runs / f"{task}__{model}__seed{seed}.json"
                if path.exists():
                    saved = json.loads(path.read_text())
                    wanted = {"obs_version": VARIANT_VERSION[task], **budget(entry, args.episodes, args, task)}
                    if matches(saved, wanted, entry):
                        results.append(saved)
                        continue
                    print(f"{path.name}: recorded with other settings than {wanted}; running it again")
                if args.table_only or task not in tasks or model not in models:
                    continue
                if entry.trained and not online and data is None:
                    data = demonstrations(dataset(task, args.episodes, Path(args.data)))
                model_path = Path(args.data) / "models" / output.name / f"{task}__{model}__seed{seed}.zip"
                result = {**run(task, model, seed, data, args, model_path), "command": command}
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(result, indent=1))
                tmp.replace(path)
                results.append(result)
                print(f"{task} {model} seed {seed}: success_once {result['success']:.2f}", flush=True)
    expected = len(table_tasks) * sum(len(seeds) if get_model(m).trained else 1 for m in table_models)
    table = report(results, table_tasks, table_models, track_command, expected, args if online else None)
    output.with_suffix(".md").write_text(table)
    if online and results:
        plot_curves(results, table_tasks, table_models[1:], output.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
