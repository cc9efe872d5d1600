"""
RecurrentPPO's own recipes with ElmurPPO swapped in: rl_zoo3 2.9.2's ``hyperparams/ppo_lstm.yml`` entries that run
here, and the CartPoleNoVel recipe of the ElmurPPO issue (RecurrentPPO's default policy), side by side.

Every recipe is trained twice per seed, with the same PPO settings, envs, VecNormalize and budget: once with
``RecurrentPPO("MlpLstmPolicy", ...)`` and the recipe's LSTM settings, once with ``ElmurPPO("MlpElmurPolicy", ...)``,
where only the class, the policy name and the LSTM settings are replaced (by an ElmurConfig: the defaults, or a
variant from ``VARIANTS``). Each run is evaluated (deterministic, separate eval envs, normalization synced) ten times
during its single ``learn`` call. Reported per recipe: median and spread over the seeds of the final evaluation, wall
time and CPU time of ``learn`` without the evaluations (one torch thread per run; CPU time does not count the waits
caused by other jobs on a shared machine), and the ElmurPPO / RecurrentPPO ratios. One JSON file per run in
``<output>_runs/``: an interrupted benchmark resumes where it stopped.

    python benchmarks/ppo_recipes.py --seeds 0 1 2
    python benchmarks/ppo_recipes.py --recipes cartpole-rppo --variants paper lambda0.5 --seeds 0 1 2
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from ppo_comparison import PeriodicEvaluation
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize
from torch import nn

import sb3_elmur.envs  # noqa: F401  (registers the NoVel ids)
from sb3_elmur import ElmurPPO
from sb3_elmur.elmur import ElmurConfig
from sb3_elmur.elmur.config import DEFAULTS_BEFORE_RECIPES


def linear(start: float) -> LinearSchedule:
    """rl_zoo3's ``lin_<start>``: decays linearly from ``start`` to 0 over the run."""
    return LinearSchedule(start, 0.0, 1.0)


ZOO_HEADS = {"ortho_init": False, "activation_fn": nn.ReLU, "net_arch": {"pi": [64], "vf": [64]}}
#: name -> env, n_envs, budget, PPO settings, non-LSTM policy settings, LSTM settings (transcribed from the sources).
RECIPES: dict[str, dict[str, Any]] = {
    "cartpole-rppo": {
        "source": "the ElmurPPO issue: RecurrentPPO's CartPoleNoVel recipe, default policies",
        "env": "CartPoleNoVel-v1",
        "n_envs": 8,
        "timesteps": 50_000,
        "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 7e-4, "gae_lambda": 0.98},
        "policy": {},
        "lstm": {},
    },
    "cartpole-zoo": {
        "source": "rl_zoo3 ppo_lstm.yml CartPoleNoVel-v1",
        "env": "CartPoleNoVel-v1",
        "n_envs": 8,
        "timesteps": 100_000,
        "ppo": {
            "n_steps": 32,
            "batch_size": 256,
            "gae_lambda": 0.8,
            "gamma": 0.98,
            "n_epochs": 20,
            "ent_coef": 0.0,
            "learning_rate": linear(1e-3),
            "clip_range": linear(0.2),
        },
        "policy": ZOO_HEADS,
        "lstm": {"lstm_hidden_size": 64, "enable_critic_lstm": True},
    },
    "pendulum-zoo": {
        "source": "rl_zoo3 ppo_lstm.yml PendulumNoVel-v1",
        "env": "PendulumNoVel-v1",
        "n_envs": 4,
        "timesteps": 100_000,
        "ppo": {
            "n_steps": 1024,
            "gae_lambda": 0.95,
            "gamma": 0.9,
            "n_epochs": 10,
            "ent_coef": 0.0,
            "learning_rate": 1e-3,
            "clip_range": 0.2,
            "use_sde": True,
            "sde_sample_freq": 4,
        },
        "policy": ZOO_HEADS,
        "lstm": {"lstm_hidden_size": 64, "enable_critic_lstm": True},
    },
    "mountaincar-continuous-zoo": {
        "source": "rl_zoo3 ppo_lstm.yml MountainCarContinuousNoVel-v0",
        "env": "MountainCarContinuousNoVel-v0",
        "n_envs": 8,
        "timesteps": 300_000,
        "ppo": {
            "batch_size": 256,
            "n_steps": 1024,
            "gamma": 0.9999,
            "learning_rate": 7.77e-05,
            "ent_coef": 0.00429,
            "clip_range": 0.1,
            "n_epochs": 10,
            "gae_lambda": 0.9,
            "max_grad_norm": 5,
            "vf_coef": 0.19,
            "use_sde": True,
            "sde_sample_freq": 8,
        },
        "policy": {"log_std_init": 0.0, "ortho_init": False, "net_arch": {"pi": [64], "vf": [64]}},
        "lstm": {"lstm_hidden_size": 32, "enable_critic_lstm": True},
    },
    # Diagnosis (docs/ppo.md): cartpole-rppo with the velocities given back, or recoverable from two frames.
    "cartpole-rppo-full": {
        "source": "diagnosis: cartpole-rppo on CartPole-v1 (velocities observed)",
        "env": "CartPole-v1",
        "n_envs": 8,
        "timesteps": 50_000,
        "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 7e-4, "gae_lambda": 0.98},
        "policy": {},
        "lstm": {},
    },
    "cartpole-rppo-stack2": {
        "source": "diagnosis: cartpole-rppo on CartPoleNoVel-v1 with the last two frames stacked (VecFrameStack 2)",
        "env": "CartPoleNoVel-v1",
        "frame_stack": 2,
        "n_envs": 8,
        "timesteps": 50_000,
        "ppo": {"n_steps": 128, "batch_size": 256, "n_epochs": 10, "learning_rate": 7e-4, "gae_lambda": 0.98},
        "policy": {},
        "lstm": {},
    },
    "mountaincar-zoo": {
        "source": "rl_zoo3 ppo_lstm.yml MountainCarNoVel-v0",
        "env": "MountainCarNoVel-v0",
        "n_envs": 16,
        "timesteps": 1_000_000,
        "ppo": {"n_steps": 16, "gae_lambda": 0.98, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
        "policy": {},
        "lstm": {},
    },
}
# Diagnosis: pendulum-zoo with the angular velocity recoverable from two frames.
RECIPES["pendulum-zoo-stack2"] = {
    **RECIPES["pendulum-zoo"],
    "source": "diagnosis: pendulum-zoo with the last two frames stacked (VecFrameStack 2)",
    "frame_stack": 2,
}
#: ElmurConfig overrides, tried against the settings before the defaults were chosen from these runs (d_model 64, 2
#: layers, the paper's layer: DEFAULTS_BEFORE_RECIPES), so that every variant keeps its meaning; "default" is
#: ElmurConfig() as it is now (the same settings as "small-gru-shift").
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # "default-<name>": overrides of ElmurConfig() as it is now; here a policy setting (train through torch.compile).
    "default-compiled": {"compile_backbone": True},
    "default-out0.1": {"output_scale": 0.1},
    "paper": {},
    "lambda0.5": {"lru_lambda": 0.5},
    "1layer": {"n_layers": 1},
    "d32": {"d_model": 32},
    "small": {"d_model": 32, "n_layers": 1},
    "small-lambda0.5": {"d_model": 32, "n_layers": 1, "lru_lambda": 0.5},
    "small-lambda1": {"d_model": 32, "n_layers": 1, "lru_lambda": 1.0},
    "small-ortho": {"d_model": 32, "n_layers": 1, "ortho_init": True},
    "ortho": {"ortho_init": True},
    "small-k32": {"d_model": 32, "n_layers": 1, "segment_len": 32},
    "zero": {"zero_init_residual": True},
    "recency": {"position_bias_init": "recency"},
    "small-recency": {"d_model": 32, "n_layers": 1, "position_bias_init": "recency"},
    "small-zero": {"d_model": 32, "n_layers": 1, "zero_init_residual": True},
    "small-zero-k32": {"d_model": 32, "n_layers": 1, "zero_init_residual": True, "segment_len": 32},
    # GTrXL-style gated residuals on the token track (ElmurConfig.residual_gate).
    "gru": {"residual_gate": "gru"},
    "gru-recency": {"residual_gate": "gru", "position_bias_init": "recency"},
    "small-gru": {"d_model": 32, "n_layers": 1, "residual_gate": "gru"},
    "small-gru-recency": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "position_bias_init": "recency"},
    "small-gru-bias1": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "gate_bias": 1.0},
    "small-gru-no-read": {"d_model": 32, "n_layers": 1, "residual_gate": "gru-no-read"},
    "small-gru-lambda1": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "lru_lambda": 1.0},
    # The backbone at a fraction of the learning rate (a policy setting: the recipe's PPO settings are kept).
    "small-gru-blr0.5": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "backbone_lr_scale": 0.5},
    "small-gru-blr0.25": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "backbone_lr_scale": 0.25},
    # Diagnosis: the same with a smaller step size (changes the recipe's PPO settings).
    "small-gru-lr3.5e-4": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "ppo.learning_rate": 3.5e-4},
    "small-gru-lr1.75e-4": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "ppo.learning_rate": 1.75e-4},
    # The read also attends to the previous segment's token states (ElmurConfig.read_previous_segment).
    "prev": {"read_previous_segment": True},
    "small-prev": {"d_model": 32, "n_layers": 1, "read_previous_segment": True},
    "small-gru-prev": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "read_previous_segment": True},
    # Every layer also sees its own input of the previous step (ElmurConfig.token_shift).
    "shift": {"token_shift": True},
    "small-shift": {"d_model": 32, "n_layers": 1, "token_shift": True},
    "small-gru-shift": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "token_shift": True},
    # The defaults' layer at half the backbone's learning rate, and at width 64.
    "small-gru-shift-blr0.5": {
        "d_model": 32,
        "n_layers": 1,
        "residual_gate": "gru",
        "token_shift": True,
        "backbone_lr_scale": 0.5,
    },
    "1layer-gru-shift": {"n_layers": 1, "residual_gate": "gru", "token_shift": True},
    "small-gru-shift-bias1": {"d_model": 32, "n_layers": 1, "residual_gate": "gru", "token_shift": True, "gate_bias": 1.0},
    # Ablations for the diagnosis: self-attention without memory; memory with one-step segments; neither.
    "small-no-memory": {"d_model": 32, "n_layers": 1, "use_read": False, "use_write": False},
    "small-k1": {"d_model": 32, "n_layers": 1, "segment_len": 1},
    "small-per-step": {"d_model": 32, "n_layers": 1, "segment_len": 1, "use_read": False, "use_write": False},
}
ELMUR_FIELDS = {field.name for field in dataclasses.fields(ElmurConfig)}


def make_env(env_id: str, n_envs: int, seed: int, training: bool = True, frame_stack: int = 1) -> VecNormalize:
    """The recipe's envs under VecNormalize (``normalize: True`` in every recipe); eval envs do not update it."""
    vec_env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    env = VecNormalize(VecFrameStack(vec_env, frame_stack) if frame_stack > 1 else vec_env)
    if not training:
        env.training, env.norm_reward = False, False
    return env


def model(algo: str, recipe: dict[str, Any], env: VecNormalize, seed: int) -> Any:
    """RecurrentPPO with the recipe's LSTM settings (``lstm``), or ElmurPPO with an ElmurConfig variant
    (``elmur:<variant>``) in their place; everything else identical. ``mlp``: PPO with an MLP policy (no memory)."""
    if algo == "mlp":
        return PPO("MlpPolicy", env, seed=seed, policy_kwargs=recipe["policy"], **recipe["ppo"])
    if algo == "lstm":
        policy_kwargs = {**recipe["policy"], **recipe["lstm"]}
        return RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **recipe["ppo"])
    name = algo.split(":", 1)[1]
    variant = dict(VARIANTS[name])
    # "ppo.<name>" entries change the algorithm's settings (diagnosis only: the recipes' own runs change none).
    ppo = {**recipe["ppo"], **{key[4:]: variant.pop(key) for key in list(variant) if key.startswith("ppo.")}}
    # A variant's other entries that are not ElmurConfig fields are policy settings (under the recipe's own).
    policy = {key: variant.pop(key) for key in list(variant) if key not in ELMUR_FIELDS}
    elmur = variant if name.split("-", 1)[0] == "default" else {**DEFAULTS_BEFORE_RECIPES, **variant}
    policy_kwargs = {**policy, **recipe["policy"], "elmur_kwargs": elmur}
    return ElmurPPO("MlpElmurPolicy", env, seed=seed, policy_kwargs=policy_kwargs, **ppo)


def run(name: str, algo: str, seed: int, eval_episodes: int) -> dict[str, Any]:
    """Train one agent on one recipe and seed; return its curve, final score and times."""
    th.set_num_threads(1)
    th.manual_seed(seed)
    recipe = RECIPES[name]
    stack = recipe.get("frame_stack", 1)
    env = make_env(recipe["env"], recipe["n_envs"], seed, frame_stack=stack)
    eval_env = make_env(recipe["env"], recipe["n_envs"], seed + 1000, training=False, frame_stack=stack)
    agent = model(algo, recipe, env, seed)
    evaluation = PeriodicEvaluation(eval_env, recipe["timesteps"] // 10, eval_episodes)
    wall, cpu = time.perf_counter(), time.process_time()
    agent.learn(recipe["timesteps"], callback=evaluation)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    env.close()
    eval_env.close()
    return {
        "recipe": name,
        "algo": algo,
        "seed": seed,
        "timesteps": agent.num_timesteps,
        "params": sum(p.numel() for p in agent.policy.parameters()),
        "wall_s": wall - evaluation.seconds,
        "cpu_s": cpu - evaluation.cpu_seconds,
        "curve": evaluation.curve,
        "final": evaluation.curve[-1][1],
        "eval_episodes": eval_episodes,
    }


def run_file(runs_dir: Path, name: str, algo: str, seed: int) -> Path:
    return runs_dir / f"{name}__{algo.replace(':', '-')}__seed{seed}.json"


def load(path: Path, eval_episodes: int, timesteps: int) -> dict[str, Any] | None:
    """A saved run made with the current budget and evaluation, else None (a corrupt file is rerun)."""
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        print(f"{path} is corrupt: rerunning it", file=sys.stderr)
        return None
    return result if result["eval_episodes"] == eval_episodes and result["timesteps"] >= timesteps else None


def report(results: list[dict[str, Any]], command: str) -> str:
    """Markdown table: per recipe and agent, median [min, max] final score and times, ratios to RecurrentPPO."""
    lines = [
        f"Produced by `{command}` (one run at a time, one torch thread; the machine was shared with other jobs).",
        "",
        "Score: final evaluation (deterministic) of each seed; median [min, max] over the seeds. Wall and CPU: seconds "
        "of `learn` without the evaluations, median over the seeds; ratios are ElmurPPO / RecurrentPPO (< 1 is faster).",
        "",
        "| recipe | budget | agent | parameters | seeds | score | wall s | CPU s | wall ratio | CPU ratio |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(r["recipe"] for r in results):
        runs = [r for r in results if r["recipe"] == name]
        lstm = [r for r in runs if r["algo"] == "lstm"]
        lstm_wall = np.median([r["wall_s"] for r in lstm]) if lstm else float("nan")
        lstm_cpu = np.median([r["cpu_s"] for r in lstm]) if lstm else float("nan")
        for algo in ["lstm", "mlp", *sorted({r["algo"] for r in runs} - {"lstm", "mlp"})]:
            mine = [r for r in runs if r["algo"] == algo]
            if not mine:
                continue
            finals = [r["final"] for r in mine]
            wall, cpu = np.median([r["wall_s"] for r in mine]), np.median([r["cpu_s"] for r in mine])
            agent = {"lstm": "RecurrentPPO", "mlp": "PPO (MLP, no memory)"}.get(algo) or f"ElmurPPO ({algo.split(':', 1)[1]})"
            lines.append(
                f"| {name} | {mine[0]['timesteps']:,} | {agent} | {mine[0]['params']:,} | {len(mine)} "
                f"| {np.median(finals):.1f} [{min(finals):.1f}, {max(finals):.1f}] | {wall:.0f} | {cpu:.0f} "
                + (f"| {wall / lstm_wall:.2f} | {cpu / lstm_cpu:.2f} |" if lstm else "| - | - |")
            )
    names = dict.fromkeys(r["recipe"] for r in results)
    lines += ["", "Recipes:", "", *(f"- `{name}`: {RECIPES[name]['source']}" for name in names)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS), help="ElmurConfig variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--output", default="docs/results/ppo_recipes", help="prefix of the .md output and the runs folder")
    parser.add_argument("--no-baseline", action="store_true", help="only the ElmurPPO variants")
    parser.add_argument("--mlp", action="store_true", help="also PPO with an MLP policy (no memory)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table from the saved runs")
    args = parser.parse_args()
    command = "python benchmarks/ppo_recipes.py " + " ".join(sys.argv[1:])
    output = Path(args.output)
    runs_dir = output.parent / f"{output.name}_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    algos = ([] if args.no_baseline else ["lstm"]) + (["mlp"] if args.mlp else [])
    algos += [f"elmur:{variant}" for variant in args.variants]
    # Recipe by recipe, seed by seed, the agents of one seed one after the other (so that they meet similar load).
    keys = [(name, algo, seed) for name in args.recipes for seed in args.seeds for algo in algos]
    results = []
    for name, algo, seed in keys:
        path = run_file(runs_dir, name, algo, seed)
        result = load(path, args.eval_episodes, RECIPES[name]["timesteps"])
        if result is None and not args.report_only:
            result = {**run(name, algo, seed, args.eval_episodes), "command": command}
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            tmp.replace(path)  # atomic: an interrupted run leaves no half-written result
            print(f"{name} {algo} seed {seed}: {result['final']:.1f}, {result['wall_s']:.0f} s", flush=True)
        if result is not None:
            results.append(result)
    if not results:
        raise SystemExit(f"no saved runs in {runs_dir}")
    table = report(results, command)
    output.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
