"""
Backbone benchmark: streaming latency and memory along a long episode, and training throughput.

1. Streaming (acting): per-step latency (median, p90), state size and process RSS at
   t = 10 ... 10^6 for each batch size (see sb3_elmur.common.long_episode).
2. Acting step, eager vs compiled (ElmurBackbone.compile_step), side by side: the two steps alternate in rounds
   in one process, at a few batch sizes and with one tower (a stream) or two (ElmurPPO's actor and critic).
3. Training: segments per second of the parallel path (forward + backward + AdamW step) for a few
   model sizes, with gradient through memory (memory_bptt=None) and detached (memory_bptt=1).

    python benchmarks/backbone_benchmark.py --output docs/results/backbone_benchmark.md
"""

import argparse
import platform
import time

import numpy as np
import torch as th
from ppo_throughput import rotation

from sb3_elmur.common.long_episode import LongEpisode, latency_table
from sb3_elmur.common.profiling import peak_rss_mib
from sb3_elmur.elmur import PAPER_LAYER, ElmurBackbone, ElmurConfig

#: The streamed and stepped backbone: d=64, 2 layers, K=10, M=4, the paper's layer (ElmurConfig's defaults until they
#: were chosen from the PPO recipes), so that the figures compare with earlier runs of this benchmark.
STREAMED = {"d_model": 64, "n_layers": 2, **PAPER_LAYER}
SIZES = {
    "small (d=64, 2 layers)": {"d_model": 64, "n_layers": 2, "n_heads": 4},
    "medium (d=128, 3 layers)": {"d_model": 128, "n_layers": 3, "n_heads": 4},
    "large (d=256, 4 layers)": {"d_model": 256, "n_layers": 4, "n_heads": 8},
}


def step_latency_side_by_side(batch: int, n_towers: int, rounds: int = 5, steps: int = 200) -> dict:
    """
    Median ms per acting step of the eager step, the compiled step (``compile_step``: inductor's C++ wrapper) and the
    same step compiled with torch's default Python wrapper (alternating rounds), and the compile seconds.
    """
    th._dynamo.reset()  # a fresh compilation per row: the rows must not share torch's recompilation budget
    th.manual_seed(0)
    net = ElmurBackbone(8, ElmurConfig(**STREAMED), n_towers=n_towers).eval()
    features = th.randn(batch, 8)
    python_wrapper = net.compile_step(options={"cpp_wrapper": False})
    steps_fn = {"eager": net.step_towers, "compiled": net.compile_step(), "python": python_wrapper}
    states = {name: net.initial_state(batch) for name in steps_fn}
    times: dict[str, list[float]] = {name: [] for name in steps_fn}
    compile_s = {}
    with th.inference_mode():
        for name in ("compiled", "python"):
            begin = time.perf_counter()
            # Two segments and a bit: each of the two graphs compiles at its first call and may recompile at its second
            # for the strides of the states that the other returns.
            for _ in range(2 * net.config.segment_len + 3):
                _, states[name] = steps_fn[name](features, states[name], None)
            compile_s[name] = time.perf_counter() - begin
        for round_index in range(rounds):
            for name in rotation(list(steps_fn), round_index):
                begin = time.perf_counter()
                for _ in range(steps):
                    _, states[name] = steps_fn[name](features, states[name], None)
                times[name].append((time.perf_counter() - begin) / steps * 1e3)
    ms = {name: np.array(values) for name, values in times.items()}
    return {
        "ms": {name: float(np.median(values)) for name, values in ms.items()},
        "speedup": ms["eager"] / ms["compiled"],
        "wrapper": ms["compiled"] / ms["python"],
        "compile_s": compile_s["compiled"],
    }


def training_throughput(config: ElmurConfig, batch: int, n_segments: int, iterations: int, in_features: int = 8) -> dict:
    th.manual_seed(0)
    net = ElmurBackbone(in_features, config)
    head = th.nn.Linear(config.d_model, 4)
    optimizer = th.optim.AdamW([*net.parameters(), *head.parameters()], lr=1e-4)
    length = n_segments * config.segment_len
    features = th.randn(batch, length, in_features)
    targets = th.randint(0, 4, (batch, length))
    steps = th.arange(length).expand(batch, -1)

    def iteration() -> None:
        out, _ = net(features, steps, check_layout=False)
        loss = th.nn.functional.cross_entropy(head(out).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        iteration()
    start = time.perf_counter()
    for _ in range(iterations):
        iteration()
    seconds = (time.perf_counter() - start) / iterations
    return {
        "params": sum(p.numel() for p in net.parameters()),
        "segments_per_s": batch * n_segments / seconds,
        "steps_per_s": batch * length / seconds,
    }


#: (towers, batch) of the side-by-side acting-step comparison: a stream, and ElmurPPO's two towers at 1, 8, 64 envs.
STEP_COMPARISON = [(1, 1), (2, 1), (2, 8), (2, 64)]
#: The streaming steps measured: the eager step and the backbone's compiled branch-free step (compile_step).
STEP_LABELS = {"eager": "eager step", "compiled": "compiled step (ElmurBackbone.compile_step)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 1_000, 100_000, 1_000_000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="episodes streamed side by side")
    parser.add_argument("--train-batch", type=int, default=32, help="samples per training batch")
    parser.add_argument("--train-segments", type=int, default=3, help="segments per sample (S)")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-streaming", action="store_true")
    parser.add_argument("--skip-step-comparison", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument(
        "--steps", nargs="+", choices=list(STEP_LABELS), default=list(STEP_LABELS), help="acting steps to stream with"
    )
    parser.add_argument("--output", help="also write the results as Markdown to this file")
    args = parser.parse_args()
    th.set_num_threads(args.threads)

    sections = [
        f"Machine: {platform.processor() or platform.machine()}, torch {th.__version__}, {args.threads} thread(s). "
        "Absolute times on shared machines are noisy; compare rows of one run.",
    ]
    if not args.skip_streaming:
        for batch_size in args.batch_sizes:
            for step in args.steps:
                net = ElmurBackbone(8, ElmurConfig(**STREAMED)).eval()
                title = f"Streaming, d=64, 2 layers, K=10, M=4, batch {batch_size}, {STEP_LABELS[step]}"
                print(title)
                begin = time.perf_counter()
                rows = LongEpisode(net, batch_size=batch_size, compiled=step == "compiled").measure(args.checkpoints)
                table = latency_table(rows)
                print(table)
                seconds = time.perf_counter() - begin
                sections.append(
                    f"### {title}\n\n{table}\n\nWall time of the whole stream (compilation included): {seconds:.0f} s."
                )
    if not args.skip_step_comparison:
        lines = [
            "| towers | batch | eager ms/step | compiled ms/step | eager / compiled (min - max) | Python-wrapper ms/step "
            "| compiled / Python wrapper (min - max) | compile s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n_towers, batch in STEP_COMPARISON:
            r = step_latency_side_by_side(batch, n_towers)
            ms, speedup, wrapper = r["ms"], r["speedup"], r["wrapper"]
            row = (
                f"| {n_towers} | {batch} | {ms['eager']:.3f} | {ms['compiled']:.3f} | {np.median(speedup):.2f}x "
                f"({speedup.min():.2f} - {speedup.max():.2f}) | {ms['python']:.3f} | {np.median(wrapper):.2f}x "
                f"({wrapper.min():.2f} - {wrapper.max():.2f}) | {r['compile_s']:.0f} |"
            )
            print(row, flush=True)
            lines.append(row)
        sections.append(
            "### Acting step, eager vs compiled, side by side (d=64, 2 layers, 5 alternating rounds of 200 steps)\n\n"
            "Compiled: `ElmurBackbone.compile_step()` (inductor's C++ wrapper); Python wrapper: the same step compiled "
            "with torch's default wrapper.\n\n" + "\n".join(lines)
        )
    if args.skip_training:
        write_sections(sections, args.output)
        return
    lines = [
        "| model | parameters | memory_bptt | segments/s | steps/s |",
        "|---|---:|---|---:|---:|",
    ]
    for name, sizes in SIZES.items():
        for bptt in (None, 1):
            config = ElmurConfig(**sizes, **PAPER_LAYER, memory_bptt=bptt)
            result = training_throughput(config, args.train_batch, args.train_segments, args.iterations)
            row = (
                f"| {name} | {result['params']:,} | {'None (through memory)' if bptt is None else '1 (detached)'} "
                f"| {result['segments_per_s']:.0f} | {result['steps_per_s']:.0f} |"
            )
            print(row)
            lines.append(row)
    sections.append(
        f"### Training throughput (forward + backward + AdamW), batch {args.train_batch} samples x "
        f"S={args.train_segments} segments of K=10\n\n" + "\n".join(lines)
    )
    write_sections(sections, args.output)


def write_sections(sections: list[str], output: str | None) -> None:
    """Append the peak memory and, with ``output``, write the Markdown sections there."""
    sections.append(f"Peak RSS of the benchmark process: {peak_rss_mib():.0f} MiB.")
    if output:
        with open(output, "w") as file:
            file.write("\n\n".join(sections) + "\n")
        print(f"written to {output}")


if __name__ == "__main__":
    main()
