"""
ElmurPPO vs RecurrentPPO (LSTM) vs PPO (MLP), side by side on the same envs, seeds and budgets.

For every (env, seed) the three agents get the same PPO hyperparameters (learning rate decayed
linearly to 0 over the run), number of envs and timesteps; each is evaluated (deterministic, on
separate eval envs) every ``--eval-freq`` steps from a callback inside one ``learn`` call, so the
learning-rate schedule runs once over the whole budget. Reported: final evaluation return (mean over
seeds), training steps/s (wall time of ``learn`` minus the evaluations) and parameter counts; the table
and learning-curve plots are written next to ``--output`` (.md table, .png learning curves), the raw
result of every run to ``<output>_runs/`` (one JSON file per run: an interrupted benchmark resumes, and
``--workers`` runs several at once, one torch thread each).

    python benchmarks/ppo_comparison.py --seeds 0 1 --workers 2
"""

import argparse
import ast
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

import sb3_elmur.envs  # noqa: F401  (registers CartPoleNoVel-v1)
from sb3_elmur import ElmurPPO
from sb3_elmur.common.callbacks import EvaluateEvery
from sb3_elmur.common.plotting import plot_learning_curves
from sb3_elmur.elmur import PAPER_LAYER
from sb3_elmur.envs import make_popgym_env

ENVS = [
    "popgym-RepeatPreviousEasy-v0",
    "popgym-RepeatFirstEasy-v0",
    "popgym-CountRecallEasy-v0",
    "popgym-AutoencodeEasy-v0",
    "CartPoleNoVel-v1",
]
# Training budget per env: the two counting/reconstruction tasks get three times the budget of the others.
BUDGETS = {
    "popgym-CountRecallEasy-v0": 150_000,
    "popgym-AutoencodeEasy-v0": 150_000,
}
DEFAULT_BUDGET = 50_000
PPO_SETTINGS = {
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 10,
    "learning_rate": LinearSchedule(7e-4, 0.0, 1.0),
    "gae_lambda": 0.98,
    "max_grad_norm": 1.0,
}


def agent(
    algo: str,
    env: Any,
    seed: int,
    width: int,
    lru_lambda: float = 0.5,
    compile_backbone: bool = False,
    device: str = "auto",
    elmur_overrides: dict[str, Any] | None = None,
    policy_overrides: dict[str, Any] | None = None,
) -> Any:
    """
    The three agents with comparable parameter counts (identical heads; ``width`` sets the memory size).
    ``elmur_overrides`` / ``policy_overrides``: ElmurConfig fields and ElmurPPO policy settings to change.
    """
    heads = {"net_arch": {"pi": [64], "vf": [64]}, "ortho_init": False}
    if algo == "elmur":
        # d_model = width / 2 and d_ff = width give about the LSTM's parameter count; the paper's layer (the runs in
        # docs/results were made with it), other layers through --elmur-set.
        elmur = {
            "d_model": width // 2,
            "d_ff": width,
            "n_layers": 1,
            "n_heads": 4,
            "segment_len": 10,
            "n_slots": 4,
            "lru_lambda": lru_lambda,
            **PAPER_LAYER,
            **(elmur_overrides or {}),
        }
        kwargs = {**heads, "elmur_kwargs": elmur, "compile_backbone": compile_backbone, **(policy_overrides or {})}
        return ElmurPPO("MlpElmurPolicy", env, seed=seed, policy_kwargs=kwargs, device=device, **PPO_SETTINGS)
    if algo == "lstm":
        kwargs = {**heads, "lstm_hidden_size": width, "enable_critic_lstm": True}
        return RecurrentPPO("MlpLstmPolicy", env, seed=seed, policy_kwargs=kwargs, device=device, **PPO_SETTINGS)
    return PPO(
        "MlpPolicy",
        env,
        seed=seed,
        device=device,
        policy_kwargs={**heads, "net_arch": {"pi": [width, 64], "vf": [width, 64]}},
        **PPO_SETTINGS,
    )


def make_popgym_one_hot(env_id: str) -> gym.Env:
    """POPGym env with MultiDiscrete observations one-hot encoded (what SB3's preprocessing feeds the
    networks anyway): sb3-contrib's RecurrentPPO crashes on MultiDiscrete observations with torch >= 2.13."""
    one_hot = isinstance(make_popgym_env(env_id).observation_space, spaces.MultiDiscrete)
    return make_popgym_env(env_id, one_hot=one_hot)


def make_env(env_id: str, n_envs: int, seed: int) -> VecNormalize:
    maker = make_popgym_one_hot if env_id.startswith("popgym-") else env_id
    kwargs = {"env_id": env_id} if env_id.startswith("popgym-") else {}
    env = make_vec_env(maker, n_envs=n_envs, seed=seed, env_kwargs=kwargs)
    # Observations are normalized when they are Box (VecNormalize rejects the others); rewards always.
    return VecNormalize(env, norm_obs=isinstance(env.observation_space, spaces.Box))


class PeriodicEvaluation(EvaluateEvery):
    """Evaluates the model (deterministic, ``n_episodes`` on ``eval_env``) every ``eval_freq`` steps (see
    :class:`~sb3_elmur.common.callbacks.EvaluateEvery`); records the curve and the time spent evaluating, wall and
    CPU (to be subtracted from the training time).

    :param eval_env: Evaluation envs; their normalization statistics are synced from the training envs.
    :param eval_freq: Evaluate every this many environment steps.
    :param n_episodes: Episodes per evaluation.
    """

    def __init__(self, eval_env: VecNormalize, eval_freq: int, n_episodes: int) -> None:
        super().__init__(eval_freq)
        self.eval_env, self.n_episodes = eval_env, n_episodes
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def evaluate(self) -> float:
        start, cpu_start = time.perf_counter(), time.process_time()
        sync_envs_normalization(self.training_env, self.eval_env)
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu_start
        return float(mean)


def run(env_id: str, algo: str, seed: int, timesteps: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one agent on one env and seed; return its learning curve, steps/s and parameter count."""
    th.set_num_threads(args.threads)
    th.manual_seed(seed)
    env = make_env(env_id, args.n_envs, seed)
    eval_env = make_env(env_id, args.n_envs, seed + 1000)
    eval_env.training = False
    eval_env.norm_reward = False
    model = agent(
        algo,
        env,
        seed,
        args.width,
        args.elmur_lambda,
        elmur_overrides=args.elmur_set,
        policy_overrides=args.policy_set,
    )
    evaluation = PeriodicEvaluation(eval_env, args.eval_freq, args.eval_episodes)
    start = time.perf_counter()
    model.learn(timesteps, callback=evaluation)
    train_seconds = time.perf_counter() - start - evaluation.seconds
    env.close()
    eval_env.close()
    return {
        "env": env_id,
        "algo": algo,
        "seed": seed,
        "timesteps": model.num_timesteps,
        "settings": settings(args),
        "params": sum(p.numel() for p in model.policy.parameters()),
        "steps_per_s": model.num_timesteps / train_seconds,
        "curve": evaluation.curve,
        "final": evaluation.curve[-1][1],
    }


def settings(args: argparse.Namespace) -> str:
    """Everything a saved run must match to be reused (anything else is rerun), derived from the settings used."""
    ppo = ", ".join(f"{name}={value!r}" for name, value in PPO_SETTINGS.items())
    return (
        f"{ppo}, width={args.width}, n_envs={args.n_envs}, elmur_lambda={args.elmur_lambda}, "
        f"eval_freq={args.eval_freq}, eval_episodes={args.eval_episodes}" + overrides_text(args)
        # Absent when not given: the runs made before these options stay valid.
    )


def overrides_text(args: argparse.Namespace) -> str:
    """``, name=value`` for each ElmurConfig override, then each policy override."""
    return "".join(f", {name}={value}" for name, value in {**args.elmur_set, **args.policy_set}.items())


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["name=value", ...]`` -> dict, each value read as a Python literal where it is one (else a string)."""
    overrides = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"expected NAME=VALUE, got {pair!r}")
        try:
            overrides[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[name] = text
    return overrides


def budget(env_id: str, args: argparse.Namespace) -> int:
    return args.timesteps if args.timesteps is not None else BUDGETS.get(env_id, DEFAULT_BUDGET)


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    names = {"elmur": "ElmurPPO", "lstm": "RecurrentPPO (LSTM)", "mlp": "PPO (MLP)"}
    commands = dict.fromkeys(r.get("command", "(not recorded)") for r in results)
    lines = [
        "Produced by " + " and ".join(f"`{command}`" for command in commands) + ".",
        "",
        f"{args.n_envs} envs, learning rate decayed linearly from 7e-4 to 0, ELMUR λ = {args.elmur_lambda}"
        + overrides_text(args)
        + "; "
        f"evaluation: {args.eval_episodes} episodes, deterministic. "
        "Return: mean over the seeds run of the final evaluation (± std over seeds).",
        "",
        "| env | steps | agent | parameters | seeds | final return | steps/s | steps/s vs RecurrentPPO |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for env_id in dict.fromkeys(r["env"] for r in results):
        rows = {algo: [r for r in results if r["env"] == env_id and r["algo"] == algo] for algo in names}
        lstm_speed = np.mean([r["steps_per_s"] for r in rows["lstm"]]) if rows["lstm"] else float("nan")
        for algo, runs in rows.items():
            if not runs:
                continue
            finals = [r["final"] for r in runs]
            speed = np.mean([r["steps_per_s"] for r in runs])
            vs_lstm = f"{speed / lstm_speed:.2f}x" if rows["lstm"] else "-"
            lines.append(
                f"| {env_id} | {runs[0]['timesteps']:,} | {names[algo]} | {runs[0]['params']:,} | {len(runs)} "
                f"| {np.mean(finals):.3f} ± {np.std(finals):.3f} | {speed:.0f} | {vs_lstm} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    envs = list(dict.fromkeys(r["env"] for r in results))
    fig, axes = plt.subplots(1, len(envs), figsize=(4.2 * len(envs), 3.4), squeeze=False)
    colors = {"elmur": "#d95f02", "lstm": "#1b9e77", "mlp": "#7570b3"}
    labels = {"elmur": "ElmurPPO", "lstm": "RecurrentPPO", "mlp": "PPO (MLP)"}
    for ax, env_id in zip(axes[0], envs, strict=True):
        for algo in labels:
            runs = [r["curve"] for r in results if r["env"] == env_id and r["algo"] == algo]
            plot_learning_curves(ax, runs, labels[algo], colors[algo])
        ax.set_title(env_id.replace("popgym-", ""), fontsize=10)
        ax.set_xlabel("timesteps")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("evaluation return")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run_file(runs_dir: Path, env_id: str, algo: str, seed: int) -> Path:
    return runs_dir / f"{env_id}__{algo}__seed{seed}.json"


def run_and_save(env_id: str, algo: str, seed: int, args: argparse.Namespace, path: Path) -> dict[str, Any]:
    result = {**run(env_id, algo, seed, budget(env_id, args), args), "command": args.command}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)  # atomic: an interrupted run leaves no half-written result
    return result


def load_saved(path: Path, args: argparse.Namespace, env_id: str) -> dict[str, Any] | None:
    """The saved result of a run if it was made with the current settings and budget, else None."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"{path} is corrupt: rerunning it", file=sys.stderr)
        return None
    if result.get("settings") != settings(args) or result.get("timesteps", 0) < budget(env_id, args):
        return None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=ENVS)
    parser.add_argument("--algos", nargs="+", default=["elmur", "lstm", "mlp"], choices=["elmur", "lstm", "mlp"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--timesteps", type=int, default=None, help=f"budget for every env (default: {DEFAULT_BUDGET:,}, and {BUDGETS})"
    )
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--eval-freq", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="d_model / LSTM hidden size / first MLP layer")
    parser.add_argument("--elmur-lambda", type=float, default=0.5, help="LRU blend factor of ElmurPPO")
    parser.add_argument("--zero-init-residual", action="store_true", help="ElmurConfig.zero_init_residual=True")
    parser.add_argument("--position-bias-init", default="zero", choices=["zero", "recency"], help="ElmurConfig setting")
    parser.add_argument("--elmur-set", nargs="*", default=[], metavar="NAME=VALUE", help="other ElmurConfig settings")
    parser.add_argument(
        "--policy-set", nargs="*", default=[], metavar="NAME=VALUE", help="ElmurPPO policy settings (backbone_lr_scale=0.5)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workers", type=int, default=1, help="runs trained at once (separate processes)")
    parser.add_argument("--output", default="docs/results/ppo_comparison", help="prefix of the .md/.png outputs")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from the saved runs")
    args = parser.parse_args()
    args.command = "python benchmarks/ppo_comparison.py " + " ".join(sys.argv[1:])
    shortcuts = {"zero_init_residual": True} if args.zero_init_residual else {}
    if args.position_bias_init != "zero":
        shortcuts["position_bias_init"] = args.position_bias_init
    args.elmur_set = {**shortcuts, **parse_overrides(args.elmur_set)}
    args.policy_set = parse_overrides(args.policy_set)
    output = Path(args.output)
    runs_dir = output.parent / f"{output.name}_runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    keys = [(env_id, algo, seed) for seed in args.seeds for env_id in args.envs for algo in args.algos]
    results = {key: load_saved(run_file(runs_dir, *key), args, key[0]) for key in keys}
    todo = [] if args.report_only else [key for key, result in results.items() if result is None]
    # Longest runs first, so that the workers finish together.
    todo.sort(key=lambda key: budget(key[0], args) * (10 if key[1] != "mlp" else 1), reverse=True)
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        futures = {pool.submit(run_and_save, *key, args, run_file(runs_dir, *key)): key for key in todo}
        for future in as_completed(futures):
            key, result = futures[future], future.result()
            results[key] = result
            print(f"{' '.join(map(str, key))}: final {result['final']:.3f}, {result['steps_per_s']:.0f} steps/s", flush=True)
    found = [result for result in results.values() if result is not None]
    if not found:
        raise SystemExit(f"no runs with the current settings in {runs_dir}")
    table = report(found, args)
    output.with_suffix(".md").write_text(table)
    plot(found, output.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
