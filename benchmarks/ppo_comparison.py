"""
ElmurPPO vs RecurrentPPO (LSTM) vs PPO (MLP), side by side on the same envs, seeds and budgets.

For every (env, seed) the three agents get the same PPO hyperparameters, number of envs and
timesteps; each is evaluated (deterministic, on separate eval envs) every ``--eval-freq`` steps.
Reported: final evaluation return (mean over seeds), training steps/s (wall time of ``learn`` only)
and parameter counts; the table, the raw results (JSON) and learning-curve plots are written next to
``--output`` (.md table, .json raw results, .png learning curves).

    python benchmarks/ppo_comparison.py --output docs/results/ppo_comparison
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import FlattenObservation
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

import sb3_elmur.envs  # noqa: F401  (registers CartPoleNoVel-v1)
from sb3_elmur import ElmurPPO
from sb3_elmur.envs import make_popgym

ENVS = [
    "popgym-RepeatPreviousEasy-v0",
    "popgym-RepeatFirstEasy-v0",
    "popgym-CountRecallEasy-v0",
    "popgym-AutoencodeEasy-v0",
    "CartPoleNoVel-v1",
]
PPO_SETTINGS = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 10,
    "learning_rate": 7e-4,
    "gae_lambda": 0.98,
    "max_grad_norm": 1.0,
}


def agent(algo: str, env: Any, seed: int, width: int) -> Any:
    """The three agents with comparable parameter counts (identical heads; ``width`` sets the memory size)."""
    heads = {"net_arch": {"pi": [64], "vf": [64]}, "ortho_init": False}
    if algo == "elmur":
        # d_model = width / 2 and d_ff = width give about the LSTM's parameter count.
        elmur = {
            "d_model": width // 2,
            "d_ff": width,
            "n_layers": 1,
            "n_heads": 4,
            "segment_len": 10,
            "n_slots": 4,
            "lru_lambda": 0.5,
        }
        return ElmurPPO("MlpElmurPolicy", env, seed=seed, policy_kwargs={**heads, "elmur_kwargs": elmur}, **PPO_SETTINGS)
    if algo == "lstm":
        kwargs = {**heads, "lstm_hidden_size": width, "enable_critic_lstm": True}
        return RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=kwargs, **PPO_SETTINGS)
    return PPO(
        "MlpPolicy",
        env,
        seed=seed,
        policy_kwargs={**heads, "net_arch": {"pi": [width, 64], "vf": [width, 64]}},
        **PPO_SETTINGS,
    )


def make_popgym_one_hot(env_id: str) -> gym.Env:
    """POPGym env with MultiDiscrete observations one-hot encoded (what SB3's preprocessing feeds the
    networks anyway): sb3-contrib's RecurrentPPO crashes on MultiDiscrete observations with torch >= 2.13
    (``nn.LSTM`` rejects the numpy integer input size it computes)."""
    env = make_popgym(env_id)
    return FlattenObservation(env) if isinstance(env.observation_space, spaces.MultiDiscrete) else env


def make_env(env_id: str, n_envs: int, seed: int) -> VecNormalize:
    maker = make_popgym_one_hot if env_id.startswith("popgym-") else env_id
    kwargs = {"env_id": env_id} if env_id.startswith("popgym-") else {}
    env = make_vec_env(maker, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    # Observations are normalized when they are Box (VecNormalize rejects the others); rewards always.
    return VecNormalize(env, norm_obs=isinstance(env.observation_space, spaces.Box))


def run(env_id: str, algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    th.manual_seed(seed)
    env = make_env(env_id, args.n_envs, seed)
    eval_env = make_env(env_id, args.n_envs, seed + 1000)
    eval_env.training = False
    eval_env.norm_reward = False
    model = agent(algo, env, seed, args.width)
    curve, train_seconds = [], 0.0
    while model.num_timesteps < args.timesteps:
        start = time.perf_counter()
        model.learn(args.eval_freq, reset_num_timesteps=False)
        train_seconds += time.perf_counter() - start
        if env.norm_obs:
            eval_env.obs_rms = env.obs_rms
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
        curve.append((model.num_timesteps, float(mean)))
    env.close()
    eval_env.close()
    return {
        "env": env_id,
        "algo": algo,
        "seed": seed,
        "params": sum(p.numel() for p in model.policy.parameters()),
        "steps_per_s": model.num_timesteps / train_seconds,
        "curve": curve,
        "final": curve[-1][1],
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    names = {"elmur": "ElmurPPO", "lstm": "RecurrentPPO (LSTM)", "mlp": "PPO (MLP)"}
    lines = [
        f"Command: `{command}`",
        "",
        f"{args.timesteps:,} steps, {args.n_envs} envs, evaluation: {args.eval_episodes} episodes, deterministic. "
        "Return: mean over the seeds run of the final evaluation (± std over seeds).",
        "",
        "| env | agent | parameters | seeds | final return | steps/s | steps/s vs RecurrentPPO |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for env_id in dict.fromkeys(r["env"] for r in results):
        rows = {algo: [r for r in results if r["env"] == env_id and r["algo"] == algo] for algo in names}
        lstm_speed = np.mean([r["steps_per_s"] for r in rows["lstm"]]) if rows["lstm"] else float("nan")
        for algo, runs in rows.items():
            if not runs:
                continue
            finals = [r["final"] for r in runs]
            speed = np.mean([r["steps_per_s"] for r in runs])
            lines.append(
                f"| {env_id} | {names[algo]} | {runs[0]['params']:,} | {len(runs)} "
                f"| {np.mean(finals):.3f} ± {np.std(finals):.3f} | {speed:.0f} | {speed / lstm_speed:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(r["env"] for r in results))
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), squeeze=False)
    colors = {"elmur": "#d95f02", "lstm": "#1b9e77", "mlp": "#7570b3"}
    labels = {"elmur": "ElmurPPO", "lstm": "RecurrentPPO", "mlp": "PPO (MLP)"}
    for ax, env_id in zip(axes[0], envs, strict=True):
        for algo in labels:
            runs = [r for r in results if r["env"] == env_id and r["algo"] == algo]
            if not runs:
                continue
            steps = np.array([s for s, _ in runs[0]["curve"]])
            returns = np.array([[v for _, v in r["curve"]] for r in runs])
            ax.plot(steps, returns.mean(0), color=colors[algo], label=labels[algo])
            ax.fill_between(steps, returns.min(0), returns.max(0), color=colors[algo], alpha=0.2)
        ax.set_title(env_id.replace("popgym-", ""), fontsize=10)
        ax.set_xlabel("timesteps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("evaluation return")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--algos", nargs="+", default=["elmur", "lstm", "mlp"], choices=["elmur", "lstm", "mlp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="d_model / LSTM hidden size / first MLP layer")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="docs/results/ppo_comparison", help="prefix of the .md/.json/.png outputs")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from the saved runs")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    import sys

    command = "python benchmarks/ppo_comparison.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    raw = output.with_suffix(".json")
    # Results are saved after every run; an interrupted benchmark resumes where it stopped.
    results = json.loads(raw.read_text()) if raw.exists() else []
    done = {(r["env"], r["algo"], r["seed"]) for r in results}
    for seed in [] if args.report_only else args.seeds:
        for env_id in args.envs:
            for algo in args.algos:
                if (env_id, algo, seed) in done:
                    continue
                result = run(env_id, algo, seed, args)
                results.append(result)
                raw.write_text(json.dumps(results, indent=1))
                print(
                    f"{env_id} {algo} seed {seed}: final {result['final']:.3f}, {result['steps_per_s']:.0f} steps/s",
                    flush=True,
                )
    results = [r for r in results if r["env"] in args.envs and r["algo"] in args.algos and r["seed"] in args.seeds]
    if not results:
        raise SystemExit(f"no runs in {raw}")
    table = report(results, args, command)
    output.with_suffix(".md").write_text(table)
    plot(results, output.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
