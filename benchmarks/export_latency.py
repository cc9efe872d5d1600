"""
Per-step latency of the exported acting step (onnxruntime) against the policy's own step in torch, side by side.

Both run the same model on the same observations, at batch 1 and 64, one thread each (torch and onnxruntime);
rounds alternate between them and the median per-round ratio is reported.

    python benchmarks/export_latency.py
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch as th

from sb3_elmur import ElmurPPO
from sb3_elmur.common.export import OnnxElmurPolicy, export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--steps", type=int, default=300, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    th.set_num_threads(1)
    model = ElmurPPO("MlpElmurPolicy", args.env, seed=0)  # the default ElmurConfig
    policy = model.policy
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_onnx(model, Path(folder) / "agent.onnx")
        print(f"export: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 1024:.0f} KiB")
        onnx = OnnxElmurPolicy(path)
        onnx.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        print("| batch | torch step ms | onnxruntime step ms | onnxruntime / torch |")
        print("|---:|---:|---:|---:|")
        for batch in args.batches:
            obs = np.random.default_rng(0).normal(size=(batch, *model.observation_space.shape)).astype(np.float32)
            starts = np.zeros(batch, dtype=bool)
            torch_ms, onnx_ms = [], []
            for _ in range(args.rounds):
                state = policy.initial_states(batch)
                start = time.perf_counter()
                with th.no_grad():
                    for _ in range(args.steps):
                        policy(th.as_tensor(obs), state, th.as_tensor(starts), deterministic=True)
                torch_ms.append((time.perf_counter() - start) / args.steps * 1e3)
                onnx_state = onnx.initial_state(batch)
                start = time.perf_counter()
                for _ in range(args.steps):
                    _, _, onnx_state = onnx.step(obs, starts, onnx_state)
                onnx_ms.append((time.perf_counter() - start) / args.steps * 1e3)
            ratio = np.median(np.array(onnx_ms) / np.array(torch_ms))
            print(f"| {batch} | {np.median(torch_ms):.3f} | {np.median(onnx_ms):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
