#!/usr/bin/env python3
"""Time to first batch on a 1-billion-token dataset: osml.TokenLoader against megatron-core's
GPTDataset (whose construction builds its document, sample and shuffle indices), each in a
fresh process with its modules already imported, the dataset in the page cache, megatron's
index cache empty.

    .venv/bin/python benchmarks/first_batch.py [--tokens 1000000000] [--dir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, {here!r})
import numpy, torch
import osml.torch
which, prefix = sys.argv[1], sys.argv[2]
if which != "osml":
    # Imports are not the loader's cost: megatron-core takes ~3.5 s to import here.
    import megatron.core.datasets.gpt_dataset, megatron.core.datasets.indexed_dataset  # noqa: F401
    import megatron_gpt  # noqa: F401
t = time.perf_counter()
if which == "osml":
    loader = osml.torch.TorchTokenLoader(prefix + ".bin", 12, 1024, mode="epoch", seed=1, format="bin")
    x, y = next(loader)
else:
    from megatron_gpt import make_loader
    it = make_loader(prefix, 12, 1024, seed=1)
    x, y = next(it)
print(json.dumps({{"first_batch_s": time.perf_counter() - t}}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000_000)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    prefix = os.path.join(a.dir, f"osml-first-batch-{a.tokens}")
    if not os.path.exists(prefix + ".idx"):
        sys.path.insert(0, str(HERE))
        from loaders import make_dataset

        make_dataset(prefix, a.tokens)
    subprocess.run(["cat", prefix + ".bin", prefix + ".idx"], stdout=subprocess.DEVNULL, check=True)
    code = CHILD.format(here=str(HERE))
    times = {"osml": [], "megatron_gptdataset": []}
    for _ in range(a.rounds):
        for which in times:
            out = subprocess.run([sys.executable, "-c", code, which, prefix], capture_output=True, text=True, check=True)
            times[which].append(json.loads(out.stdout.strip().splitlines()[-1])["first_batch_s"])
    o = sorted(times["osml"])[len(times["osml"]) // 2]
    m = sorted(times["megatron_gptdataset"])[len(times["megatron_gptdataset"]) // 2]
    print(f"{a.tokens:,} tokens; median of {a.rounds} fresh processes each")
    print("| loader | open to first batch (median, all runs) |")
    print("|---|---|")
    print(f"| osml.TokenLoader (epoch mode) | {o * 1e3:.1f} ms ({', '.join(f'{t * 1e3:.1f}' for t in times['osml'])}) |")
    print(f"| megatron-core GPTDataset (builds its indices) | {m:.2f} s ({', '.join(f'{t:.2f}' for t in times['megatron_gptdataset'])}) |")
    print(f"ratio: {m / o:.0f}×")


if __name__ == "__main__":
    main()
