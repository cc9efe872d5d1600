"""
Stream one long episode through the ELMUR backbone and report per-step latency and memory use.

The backbone's state has a fixed size (M slots per layer plus a K-step cache), so acting at step
10^6 costs what it costs at step 10: this script shows it. Between checkpoints the episode is
advanced segment by segment with the parallel (training) path, which computes exactly the same
function as streaming (see tests/test_backbone.py); at each checkpoint the streaming path acts one
step at a time and is timed. ``--stream-all`` streams every step instead (about 1-2 ms per step on
a CPU, so keep the checkpoints small).

    python examples/stream_long_episode.py                # t = 10, 10^3, 10^5, 10^6
    python examples/stream_long_episode.py --checkpoints 10 1000 --stream-all
"""

import argparse

import torch as th

from sb3_elmur.common.long_episode import LongEpisode, latency_table
from sb3_elmur.common.profiling import peak_rss_mib
from sb3_elmur.elmur import ElmurBackbone, ElmurConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 1_000, 100_000, 1_000_000])
    parser.add_argument("--segment-len", type=int, default=10, help="K, steps per segment")
    parser.add_argument("--n-slots", type=int, default=4, help="M, memory slots per layer")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--in-features", type=int, default=8)
    parser.add_argument("--timed-steps", type=int, default=100, help="streaming steps timed at each checkpoint")
    parser.add_argument("--stream-all", action="store_true", help="stream every step instead of fast-forwarding")
    parser.add_argument("--compiled", action="store_true", help="act through the compiled step (compile_step)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    th.manual_seed(args.seed)
    th.set_num_threads(1)
    config = ElmurConfig(d_model=args.d_model, n_layers=args.n_layers, segment_len=args.segment_len, n_slots=args.n_slots)
    net = ElmurBackbone(args.in_features, config).eval()
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"ELMUR backbone: {config.n_layers} layers, d_model {config.d_model}, K={config.segment_len}, "
        f"M={config.n_slots} slots/layer, {n_params:,} parameters; one episode, CPU, 1 thread"
    )
    episode = LongEpisode(net, batch_size=1, seed=args.seed, compiled=args.compiled)
    rows = episode.measure(args.checkpoints, timed_steps=args.timed_steps, stream_all=args.stream_all)
    print()
    print(latency_table(rows))
    timestamps = episode.state.memory.timestamps
    print(
        f"\nfinal step {episode.t:,}; slots written {int((timestamps >= 0).sum())}/{timestamps.numel()}; "
        f"newest slot timestamp {int(timestamps.max()):,}; non-finite values seen: {episode.nan_seen}; "
        f"peak RSS {peak_rss_mib():.1f} MiB"
    )
    if episode.nan_seen:
        raise SystemExit("non-finite values appeared in the stream")


if __name__ == "__main__":
    main()
