"""
MIKASA-Robo in RGB, end to end: expert episodes recorded in RGB (the scripted expert acts on the state of the same
env, the dataset holds only what the agent sees: both cameras' images and the proprioception), ElmurBC with a CNN
per camera (:class:`~sb3_elmur.envs.mikasa.rgb.MikasaRGBExtractor`), success_once on fixed seeds.

    python examples/mikasa_rgb.py                       # CPU smoke run: 20 episodes of RememberColor3, 300 updates
    python examples/mikasa_rgb.py --gpu-settings        # prints the full run for a GPU machine and exits

The data is cached in parts of ``--part`` episodes (``<cache>/<task>-rgb/part-000.npz``, ...; seeds 10,000 +
1,000 * part), so an interrupted collection resumes and a larger ``--episodes`` adds parts to the same cache.
Collection seeds never meet the evaluation seeds 0..n-1. ``--frames`` writes a picture of the first episode (base
and hand camera at the cue, empty and search steps). ``--json`` writes the sizes, times and results.

Full run on a GPU machine (``--gpu-settings`` prints it with the times measured on this CPU; see
docs/results/mikasa_rgb.md): collect on the CPU cores (ManiSkill's CPU backend, one env per core), train on the GPU.
"""

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from sb3_elmur.data import TrajectoryDataset
from sb3_elmur.envs.mikasa import make_mikasa_vec_env
from sb3_elmur.envs.mikasa.rgb import (
    RGB_ENV_KWARGS,
    MikasaRGBExtractor,
    collect_rgb_trajectories,
    concatenate_datasets,
    evaluate_expert_in_rgb,
    evaluate_rgb_success,
    make_rgb_collection_env,
    match_image_layout,
)

DATA_SEED = 10_000
#: Measured on the CPU of this project (2 shared cores, Mesa lavapipe, see docs/results/mikasa_rgb.md); used for the
#: estimates of --gpu-settings.
CPU_COSTS = {
    "collect_steps_per_s_per_env": 3.3,  # one env, expert acting on the state; env creation (about 20 s) not counted
    "eval_steps_per_s_per_env": 3.0,  # one env, the ELMUR policy with the CNN acting
    "bc_update_s": 3.4,  # one ElmurBC update of 8 episodes (3 segments of 10 steps), 2.6 to 4.2 s as the load varied
    "rgb_step_bytes": 128 * 128 * 6 + 25 * 4,
}
GPU_RUN = {
    "tasks": ["RememberColor3-Memory-v0", "RememberColor5-Memory-v0", "RememberColor9-Memory-v0", "TakeItBack-Memory-v0"],
    "episodes": 1000,
    "updates": 1500,
    "batch_size": 64,
    "eval_episodes": 100,
    "n_envs": 16,
    "part": 160,  # 10 episodes per env and part: each part starts its 16 envs once (about 20 s)
    "seeds": [0, 1, 2],
}


def gpu_settings() -> str:
    """The full RGB run for a GPU machine, with times estimated from the per-step costs measured here."""
    run = GPU_RUN
    lengths = {"RememberColor": 20, "TakeItBack": 67}  # mean expert episode lengths (an episode ends at its success)
    per_env = CPU_COSTS["collect_steps_per_s_per_env"]
    lines = [
        "Full RGB run for a GPU machine (16 CPU cores, one GPU):",
        "",
        "  for task in " + " ".join(run["tasks"]) + "; do",
        f"    python examples/mikasa_rgb.py --task $task --episodes {run['episodes']} --updates {run['updates']} \\",
        f"      --batch-size {run['batch_size']} --eval-episodes {run['eval_episodes']} --n-envs {run['n_envs']} \\",
        f"      --part {run['part']} \\",
        f"      --eval-envs {run['n_envs']} --seeds {' '.join(map(str, run['seeds']))} --device cuda \\",
        "      --json results/$task.json",
        "  done",
        "",
        "Per task (estimates from the costs measured on this project's CPU, one env per core assumed to keep its speed):",
    ]
    for task in run["tasks"]:
        length = next(v for k, v in lengths.items() if task.startswith(k))
        steps = run["episodes"] * length
        collect_h = steps / (per_env * run["n_envs"]) / 3600
        horizon = 180 if task.startswith("TakeItBack") else 60
        eval_h = len(run["seeds"]) * run["eval_episodes"] * horizon / (CPU_COSTS["eval_steps_per_s_per_env"] * run["n_envs"])
        lines.append(
            f"- {task}: {steps:,} RGB steps, {steps * CPU_COSTS['rgb_step_bytes'] / 1e9:.1f} GB in memory (twice that while "
            f"training: one channels-first copy), collection about {collect_h:.1f} h, evaluation of {len(run['seeds'])} "
            f"seeds at most {eval_h / 3600:.1f} h (a failing policy runs the whole {horizon} steps)"
        )
    lines += [
        f"- training: {run['updates']} ElmurBC updates of {run['batch_size']} episodes per seed on the GPU; on this CPU an "
        f"update of 8 episodes takes {CPU_COSTS['bc_update_s']} s (not measured on a GPU)",
        f"- collection is CPU work (ManiSkill's CPU backend with software or GPU Vulkan rendering): {per_env} steps/s "
        "per env here; the parts are cached, so it is done once",
    ]
    return "\n".join(lines)


def dataset(task: str, episodes: int, part: int, n_envs: int, cache: Path) -> tuple[TrajectoryDataset, dict[str, Any]]:
    """The first ``episodes`` expert episodes of the task in RGB, collected in cached parts (resumable)."""
    # The folder names the variant's version from version 2 on (TakeItBack 2 changed the dynamics), so data of another
    # version is never reused; version 1 keeps the plain name of the caches made before.
    from sb3_elmur.envs.mikasa.memory_variants import VARIANT_VERSION  # imports ManiSkill

    version = VARIANT_VERSION.get(task, 1)
    folder = cache / (f"{task}-rgb" if version == 1 else f"{task}-rgb-v{version}")
    folder.mkdir(parents=True, exist_ok=True)
    parts, collected_s, collected_steps = [], 0.0, 0
    for index in range((episodes + part - 1) // part):
        path = folder / f"part-{index:03d}.npz"
        if path.exists():
            data = TrajectoryDataset.load_npz(path)
        else:
            start = time.perf_counter()
            seed = DATA_SEED + 1000 * index
            data = collect_rgb_trajectories(task, part, n_envs, seed, progress_bar=True, subprocess=n_envs > 1)
            collected_s += time.perf_counter() - start
            collected_steps += data.n_steps
            data.save_npz(path)
            print(f"part {index}: {data.n_episodes} episodes, {data.n_steps} steps, {time.perf_counter() - start:.0f} s")
        parts.append(data)
    data = concatenate_datasets(parts)
    if data.n_episodes > episodes:  # the last part may hold more episodes than asked for
        keep = int(data.episode_lengths[:episodes].sum())
        data = TrajectoryDataset(
            observations={k: v[:keep] for k, v in data.observations.items()},
            actions=data.actions[:keep],
            rewards=data.rewards[:keep],
            episode_lengths=data.episode_lengths[:episodes],
            terminated=data.terminated[:episodes],
            metadata=data.metadata,
        )
    disk = sum((folder / f"part-{i:03d}.npz").stat().st_size for i in range(len(parts)))
    sizes = {
        "episodes": data.n_episodes,
        "steps": data.n_steps,
        "mean_episode_length": float(data.episode_lengths.mean()),
        "expert_success": float(data.terminated.mean()),
        "disk_mb": disk / 1e6,
        "memory_mb": sum(v.nbytes for v in data.observations.values()) / 1e6,
        "collect_s": collected_s,
        "collect_steps_per_s": collected_steps / collected_s if collected_s else None,
    }
    return data, sizes


def save_frames(data: TrajectoryDataset, path: str, cue: int = 5, hidden: int = 5) -> None:
    """Base (left) and hand (right) camera of the first episode at the first and last cue steps, the empty table and
    the search phase."""
    from PIL import Image

    rgb = data.episode(0)["observations"]["rgb"]
    steps = [t for t in (0, cue - 1, cue, cue + hidden - 1, cue + hidden, cue + hidden + 5) if t < len(rgb)]
    rows = [np.concatenate([rgb[t, ..., :3], rgb[t, ..., 3:]], axis=1) for t in steps]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    print(f"frames of steps {steps} -> {path}")


def train_and_evaluate(task: str, data: TrajectoryDataset, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """ElmurBC of an ELMUR policy with the per-camera CNN, then success_once on seeds 0..eval_episodes-1."""
    from sb3_elmur import ElmurPPO
    from sb3_elmur.bc import ElmurBC
    from sb3_elmur.registry import BC_SETTINGS, ELMUR_KWARGS, HEADS

    th.manual_seed(seed)
    env = make_mikasa_vec_env(task, n_envs=1, seed=seed, obs_mode="rgb", **RGB_ENV_KWARGS)
    extractor = {"features_per_camera": args.features_per_camera}
    policy_kwargs = {**HEADS, "elmur_kwargs": dict(ELMUR_KWARGS), "features_extractor_class": MikasaRGBExtractor,
                     "features_extractor_kwargs": extractor}  # fmt: skip
    model = ElmurPPO("MultiInputElmurPolicy", env, seed=seed, policy_kwargs=policy_kwargs, device=args.device)
    env.close()
    settings = {k: v for k, v in BC_SETTINGS.items() if k not in ("updates", "segment_len", "batch_size")}
    # As the registry: the backbone's training path compiled where the run is long enough to pay (the CNNs stay eager).
    compile_backbone = {"auto": "auto", "on": True, "off": False}[args.compile_backbone]
    trainer = ElmurBC(model, match_image_layout(data, model.observation_space), batch_size=args.batch_size, seed=seed,
                      compile_backbone=compile_backbone, **settings)  # fmt: skip
    start = time.perf_counter()
    trainer.learn(args.updates, progress_bar=True)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    make_env = lambda env_id, n, first: make_rgb_collection_env(env_id, n, first, subprocess=n > 1)  # noqa: E731
    success = evaluate_rgb_success(model, task, args.eval_episodes, seed=0, n_envs=args.eval_envs, make_env=make_env)
    eval_s = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.policy.parameters())
    cnn_params = sum(p.numel() for p in model.policy.features_extractor.parameters())
    return {"seed": seed, "success": success, "train_s": train_s, "s_per_update": train_s / max(1, args.updates),
            "eval_s": eval_s, "parameters": n_params, "cnn_parameters": cnn_params}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="RememberColor3-Memory-v0")
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes in RGB")
    parser.add_argument("--part", type=int, default=10, help="episodes per cached part")
    parser.add_argument("--n-envs", type=int, default=1, help="collection envs side by side")
    parser.add_argument("--updates", type=int, default=300, help="ElmurBC gradient steps")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes per update")
    parser.add_argument("--features-per-camera", type=int, default=128)
    parser.add_argument("--eval-episodes", type=int, default=4)
    parser.add_argument("--eval-envs", type=int, default=2)
    parser.add_argument("--expert-episodes", type=int, default=0, help="also measure the expert in RGB on this many seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile-backbone", choices=["auto", "on", "off"], default="auto",
                        help="torch.compile of the backbone for training (auto: where it pays)")  # fmt: skip
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "sb3_elmur" / "mikasa_rgb"))
    parser.add_argument("--frames", help="write a picture of the first episode to this .png")
    parser.add_argument("--json", help="write sizes, times and results to this file")
    parser.add_argument("--gpu-settings", action="store_true", help="print the full run for a GPU machine and exit")
    args = parser.parse_args()
    if args.gpu_settings:
        print(gpu_settings())
        return
    th.set_num_threads(max(1, min(th.get_num_threads(), os.cpu_count() or 1)))
    result: dict[str, Any] = {"task": args.task, "settings": vars(args)}
    data, result["data"] = dataset(args.task, args.episodes, args.part, args.n_envs, Path(args.cache))
    sizes = result["data"]
    print(f"data: {sizes['episodes']} episodes, {sizes['steps']} steps (mean length {sizes['mean_episode_length']:.1f}), "
          f"{sizes['disk_mb']:.1f} MB on disk, {sizes['memory_mb']:.1f} MB in memory, "
          f"expert success {sizes['expert_success']:.2f}")  # fmt: skip
    if sizes["collect_steps_per_s"]:
        print(f"collection: {sizes['collect_s']:.0f} s, {sizes['collect_steps_per_s']:.1f} steps/s")
    if args.frames:
        save_frames(data, args.frames)
    if args.expert_episodes:
        start = time.perf_counter()
        expert = evaluate_expert_in_rgb(args.task, args.expert_episodes, n_envs=min(5, args.expert_episodes))
        result["expert"] = {"success": expert, "episodes": args.expert_episodes, "s": time.perf_counter() - start}
        print(f"expert in RGB (acting on the state), seeds 0..{args.expert_episodes - 1}: success_once {expert:.2f}")
    result["runs"] = []
    for seed in args.seeds:
        run = train_and_evaluate(args.task, data, seed, args)
        result["runs"].append(run)
        print(f"seed {seed}: ELMUR success_once {run['success']:.2f} on {args.eval_episodes} episodes; "
              f"{run['train_s']:.0f} s training ({run['s_per_update']:.2f} s/update), {run['eval_s']:.0f} s evaluation, "
              f"{run['parameters']:,} parameters ({run['cnn_parameters']:,} in the CNNs)")  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
