"""
Today's code against the code of an earlier git revision, measured side by side: the long-episode stream
(:class:`~sb3_elmur.common.long_episode.LongEpisode`, as in examples/stream_long_episode.py) and behaviour cloning on
the T-Maze protocol (:class:`~sb3_elmur.bc.ElmurBC`, as in examples/tmaze_benchmark.py).

Absolute times on a shared machine move by 2x from run to run (docs/results/backbone_benchmark.md), so a figure
measured today cannot be compared with one published earlier. Here every variant runs in a worker process of its
own (the earlier revision's package is extracted with ``git archive`` and put first on that worker's path; the
worker checks which package it imported), the workers are prepared (the stream fast-forwarded to step ``--t`` of one
episode; the cloning data collected and a few updates made), and they then work in alternating rounds (the order
rotates), so that the load of the moment hits all of them alike. Reported: the median time per step or update over
the rounds and, per round, each variant's time relative to the earlier revision's eager one.

    python benchmarks/speed_against_revision.py --workload stream --revision 3e62b1e
    python benchmarks/speed_against_revision.py --workload bc --revision 14a296c
"""

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The paper's layer, which every earlier revision computes (its settings are dropped where a revision lacks them).
PAPER_LAYER = {"residual_gate": "none", "token_shift": False}
#: The streamed backbone: d = 64 with 2 layers, ElmurConfig()'s settings when the 10^6-step stream was first published.
STREAM_CONFIG = {"d_model": 64, "n_layers": 2, **PAPER_LAYER}
#: The T-Maze behaviour-cloning protocol of docs/bc.md (examples/tmaze_benchmark.py's ``elmur`` method).
BC_CONFIG = {"d_model": 32, "n_layers": 2, "n_heads": 4, "segment_len": 10, "n_slots": 2, "lru_lambda": 0.1, **PAPER_LAYER}
#: The revisions whose figures the issue's targets refer to: the first published stream (docs/results/
#: backbone_benchmark.md) and the T-Maze table (docs/results/tmaze.md, 304 s of cloning).
DEFAULT_REVISIONS = {"stream": "3e62b1e", "bc": "14a296c"}
UNITS = {"stream": "step", "bc": "update"}


def elmur_config(settings: dict[str, Any]) -> Any:
    """An ElmurConfig of the imported revision with those of ``settings`` that it knows."""
    import dataclasses

    from sb3_elmur.elmur import ElmurConfig

    fields = {f.name for f in dataclasses.fields(ElmurConfig)}
    return ElmurConfig(**{key: value for key, value in settings.items() if key in fields})


def stream_worker(compiled: bool, args: argparse.Namespace) -> tuple[Any, int]:
    """A stream fast-forwarded to ``args.t``; the work of a round is ``n`` acting steps (in inference mode)."""
    import torch as th

    from sb3_elmur.common.long_episode import LongEpisode
    from sb3_elmur.elmur import ElmurBackbone

    net = ElmurBackbone(8, elmur_config(STREAM_CONFIG)).eval()
    episode = LongEpisode(net, batch_size=args.batch, **({"compiled": True} if compiled else {}))

    def work(n: int) -> None:
        with th.inference_mode():
            episode.stream(n)

    with th.inference_mode():
        episode.fast_forward(args.t)
    work(3 * net.config.segment_len)  # warm-up (and the compilation of the compiled step)
    return work, episode.t


def bc_worker(compiled: bool, args: argparse.Namespace) -> tuple[Any, int]:
    """ElmurBC on the T-Maze oracle data, after a few updates; the work of a round is ``n`` more updates."""
    import torch as th

    from sb3_elmur import ElmurPPO
    from sb3_elmur.bc import ElmurBC
    from sb3_elmur.data import collect_trajectories
    from sb3_elmur.envs.tmaze import TMazeOracle, TMazeVecEnv

    env = TMazeVecEnv(16, corridor_length=(1, 28), seed=0)
    data = collect_trajectories(env, TMazeOracle(), args.episodes)
    policy_kwargs = {"elmur_kwargs": {**vars(elmur_config(BC_CONFIG)), "memory_bptt": None}, "net_arch": [32]}
    model = ElmurPPO("MlpElmurPolicy", env, seed=0, policy_kwargs=policy_kwargs)
    # The variant's own setting, never ElmurBC's "auto" (today's default); revisions before the option are eager.
    known = "compile_backbone" in inspect.signature(ElmurBC).parameters
    options = {"compile_backbone": compiled} if compiled or known else {}
    settings = {"segments_per_sample": 3, "batch_size": 64, "learning_rate": 1e-3, "warmup_steps": 20, "seed": 0}
    trainer = ElmurBC(model, data, **settings, **options)
    # A constant learning rate: the rounds go on past any schedule's end (the cost of an update does not depend on it).
    trainer.scheduler = th.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda update: 1.0)
    trainer.learn(5, progress_bar=False)  # warm-up (and the compilation)

    def work(n: int) -> None:
        trainer.learn(trainer.num_updates + n, progress_bar=False)

    return work, trainer.num_updates


def worker(workload: str, compiled: bool, args: argparse.Namespace) -> None:
    """Prepare the workload, then time ``n`` steps or updates for every ``n`` read from stdin."""
    import torch as th

    import sb3_elmur

    th.set_num_threads(1)
    th.manual_seed(0)
    prepare = {"stream": stream_worker, "bc": bc_worker}[workload]
    begin = time.perf_counter()
    work, reached = prepare(compiled, args)
    seconds = time.perf_counter() - begin
    print(json.dumps({"ready": reached, "package": sb3_elmur.__file__, "prepare_s": seconds}), flush=True)
    for line in sys.stdin:
        begin = time.perf_counter()
        work(int(line))
        print(json.dumps({"ms": (time.perf_counter() - begin) / int(line) * 1e3}), flush=True)


def extract(revision: str, into: Path) -> Path:
    """The package ``sb3_elmur`` of ``revision``, extracted under ``into``; returns the folder to put on the path."""
    archive = into / "rev.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), revision, "sb3_elmur"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def start(path: Path, compiled: bool, args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(path), "OMP_NUM_THREADS": "1", **(extra_env or {})}
    options = ["--t", str(args.t), "--batch", str(args.batch), "--episodes", str(args.episodes)]
    command = [sys.executable, __file__, "--workload", args.workload, "--worker", *options]
    command += ["--compiled"] if compiled else []
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(process: subprocess.Popen, line: str | None = None) -> dict:
    """Send a line to a worker (if any) and read its JSON reply."""
    if line is not None:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    reply = process.stdout.readline()
    if not reply:
        raise RuntimeError(f"a worker stopped (exit code {process.wait()})")
    return json.loads(reply)


def measure(args: argparse.Namespace, revision: str) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """
    Milliseconds per unit of work of each variant in every round, and each variant's reply when ready (the step or
    update it was prepared to, ``ready``, and the seconds that took, ``prepare_s``).
    """
    from ppo_throughput import rotation

    with tempfile.TemporaryDirectory() as folder:
        earlier = extract(revision, Path(folder))
        variants = {
            f"{revision}, eager": (earlier, False, {}),
            f"{revision}, compiled": (earlier, True, {}),
            "today, eager": (ROOT, False, {}),
            "today, compiled": (ROOT, True, {}),
        }
        if not args.revision_compiled:
            del variants[f"{revision}, compiled"]
        if args.skip_compiled:
            del variants["today, compiled"]
        for setting in args.compiled_env:  # compiled variants under other torch settings (e.g. inductor options)
            variants[f"today, compiled, {setting}"] = (ROOT, True, dict([setting.split("=", 1)]))
        workers, ready = {}, {}
        try:
            # One at a time, each with an empty compile cache of its own: the preparation times compare cold compiles.
            for index, (name, (path, compiled, env)) in enumerate(variants.items()):
                cache = {"TORCHINDUCTOR_CACHE_DIR": str(Path(folder) / f"inductor-{index}")}
                workers[name] = start(path, compiled, args, {**cache, **env})
                ready[name] = ask(workers[name])
            for name, reply in ready.items():  # each worker runs the code it was given
                if Path(reply["package"]).resolve().parents[1] != variants[name][0].resolve():
                    raise RuntimeError(f"the variant {name!r} imported {reply['package']}")
            times: dict[str, list[float]] = {name: [] for name in workers}
            for round_index in range(args.rounds):
                for name in rotation(list(workers), round_index):
                    times[name].append(ask(workers[name], str(args.work))["ms"])
        finally:
            for process in workers.values():
                process.stdin.close()
                process.wait()
    return {name: np.array(ms) for name, ms in times.items()}, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=list(DEFAULT_REVISIONS), default="stream")
    parser.add_argument("--revision", help=f"the earlier revision (default: {DEFAULT_REVISIONS})")
    parser.add_argument("--t", type=int, default=1_000_000, help="stream: the episode step at which it is timed")
    parser.add_argument("--batch", type=int, default=1, help="stream: episodes side by side")
    parser.add_argument("--episodes", type=int, default=2000, help="bc: oracle episodes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--work", type=int, help="steps (default 300) or updates (default 20) per variant per round")
    parser.add_argument(
        "--compiled-env", nargs="*", default=[], metavar="NAME=VALUE",
        help="also run the compiled variant with this environment variable, e.g. TORCHINDUCTOR_CPP_WRAPPER=1",
    )  # fmt: skip
    parser.add_argument("--skip-compiled", action="store_true", help="the eager variants only (no compilation)")
    parser.add_argument("--revision-compiled", action="store_true", help="also the earlier revision's compiled variant")
    parser.add_argument("--output", help="write the Markdown table here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--compiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.workload, args.compiled, args)
        return
    from ppo_throughput import ratio, write_table  # not in the workers: it imports today's package

    revision = args.revision or DEFAULT_REVISIONS[args.workload]
    args.work = args.work or {"stream": 300, "bc": 20}[args.workload]
    times, reached = measure(args, revision)
    unit = UNITS[args.workload]
    if args.workload == "stream":
        what = (
            f"the long-episode stream of one backbone (d = 64, 2 layers, K = 10, M = 4, the paper's layer), batch "
            f"{args.batch}, fast-forwarded to step {args.t:,}; {args.work} acting steps per round"
        )
        options = f"--t {args.t} --batch {args.batch}"
    else:
        what = (
            f"ElmurBC on the T-Maze protocol of docs/bc.md ({args.episodes} oracle episodes, batch 64, S = 3, d = 32, "
            f"2 layers, M = 2); {args.work} updates per round, the same batches in every variant"
        )
        options = f"--episodes {args.episodes}"
    revision_compiled = " --revision-compiled" if args.revision_compiled else ""
    extra = f" --compiled-env {' '.join(args.compiled_env)}" if args.compiled_env else ""
    lines = [
        f"Machine: {platform.machine()}, 1 thread per variant, each in its own process: {what}; {args.rounds} "
        "alternating rounds (the order rotates).",
        "",
        f"Command: `python benchmarks/speed_against_revision.py --workload {args.workload} --revision {revision} {options} "
        f"--rounds {args.rounds} --work {args.work}{extra}{revision_compiled}`",
        "",
        f"Time ratio: the variant's ms per {unit} / the {revision} eager one's, in the same round, median (min - max) over "
        "the rounds (< 1: faster).",
        "",
        "Preparation: seconds from the model's construction to the first timed round (the warm-up and the compilation,"
        " with an empty compile cache per variant; the variants are prepared one at a time).",
        "",
        f"| variant | prepared to {unit} | preparation s | median ms per {unit} | time ratio |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {name} | {reached[name]['ready']:,} | {reached[name].get('prepare_s', float('nan')):.1f} | "
            f"{np.median(ms):.3f} | {ratio(times, name, f'{revision}, eager')} |"
            for name, ms in times.items()
        ],
    ]
    write_table(lines, args.output)


if __name__ == "__main__":
    main()
