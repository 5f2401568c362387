#!/usr/bin/env python3
"""Opening a mixture of 100 sources and taking the first batch: osml against megatron-core's
`BlendedDataset` (built by `BlendedMegatronDatasetBuilder`, as Megatron-LM builds its blends:
each source's `GPTDataset` document, sample and shuffle indices, then the blending indices),
over the same 100 Megatron prefixes, each in a fresh process with its modules imported,
rounds interleaved, megatron's index cache empty each time.

Each source is a sparse `.bin` of 100 M uint16 tokens (10 B tokens, 20 GB in all, nothing on
disk but the `.idx`) with documents of 2,048 tokens, weights of three odd decimals.

    .venv/bin/python benchmarks/blend_open.py [--sources 100] [--tokens-per-source 100000000] [--samples 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

B, T = 12, 1024

CHILD = r"""
import json, sys, tempfile, time
from types import SimpleNamespace
import numpy, torch
import osml.torch
which, spec = sys.argv[1], json.loads(sys.argv[2])
prefixes, weights = spec["prefixes"], spec["weights"]
if which == "megatron":
    # Imports are not the loader's cost (seconds for megatron-core).
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from torch.utils.data import DataLoader
    # BlendedDataset asks torch.distributed for the rank: one process group, as in training.
    import os, torch.distributed as dist
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    dist.init_process_group("gloo", rank=0, world_size=1)
t = time.perf_counter()
if which == "osml":
    loader = osml.torch.TorchTokenLoader(dict(zip(prefixes, weights)), {B}, {T}, seed=1)
    x, y = next(loader)
    opened = None
else:
    tokenizer = SimpleNamespace(vocab_size=50257, eod=50256, pad=50256, unique_identifiers={{"class": "gpt2"}})
    config = GPTDatasetConfig(
        random_seed=1, sequence_length={T}, blend=(prefixes, [float(w) for w in weights]), split="100,0,0",
        path_to_cache=tempfile.mkdtemp(prefix="megatron-blend-cache-"), tokenizer=tokenizer,
        reset_position_ids=False, reset_attention_mask=False, eod_mask_loss=False, create_attention_mask=False,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [spec["samples"], 0, 0], lambda: True, config).build()
    opened = time.perf_counter() - t
    batch = next(iter(DataLoader(train, batch_size={B}, shuffle=False, num_workers=0)))
    x = batch["tokens"].long()
first = time.perf_counter() - t
assert tuple(x.shape) == ({B}, {T}), x.shape
print(json.dumps({{"first_batch_s": first, "built_s": opened}}))
""".format(B=B, T=T)


def make_sources(root: Path, n: int, tokens: int) -> list[str]:
    """`n` Megatron prefixes: sparse `.bin` of `tokens` uint16 tokens, documents of 2,048."""
    prefixes = []
    doc = 2048
    docs = tokens // doc
    lengths = np.full(docs, doc, dtype="<i4")
    pointers = (np.arange(docs, dtype="<i8") * doc * 2).astype("<i8")
    doc_index = np.arange(docs + 1, dtype="<i8")
    for s in range(n):
        prefix = root / f"source_{s:03d}"
        prefixes.append(str(prefix))
        if (prefix.with_suffix(".idx")).exists():
            continue
        with open(prefix.with_suffix(".bin"), "wb") as f:
            f.truncate(docs * doc * 2)
        with open(prefix.with_suffix(".idx"), "wb") as f:
            f.write(b"MMIDIDX\x00\x00")
            f.write(np.array([1], dtype="<u8").tobytes())
            f.write(np.array([8], dtype="<u1").tobytes())  # uint16
            f.write(np.array([docs, docs + 1], dtype="<u8").tobytes())
            f.write(lengths.tobytes())
            f.write(pointers.tobytes())
            f.write(doc_index.tobytes())
    return prefixes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--tokens-per-source", type=int, default=100_000_000)
    ap.add_argument("--samples", type=int, default=1_000_000, help="megatron's blend size (global samples)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    a = ap.parse_args()
    root = Path(a.dir) / f"osml-blend-open-{a.sources}x{a.tokens_per_source}"
    root.mkdir(exist_ok=True)
    prefixes = make_sources(root, a.sources, a.tokens_per_source)
    weights = [f"0.{(i * 7919 + 137) % 997 + 1:03d}" for i in range(a.sources)]
    spec = json.dumps({"prefixes": prefixes, "weights": weights, "samples": a.samples})
    load0 = os.getloadavg()
    runs: dict[str, list[dict]] = {"osml": [], "megatron": []}
    for _ in range(a.rounds):
        for which in runs:
            subprocess.run(["cat", *[p + ".idx" for p in prefixes]], stdout=subprocess.DEVNULL, check=True)
            out = subprocess.run([sys.executable, "-c", CHILD, which, spec], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{which} failed: {out.stderr.strip()[-2000:]}")
            runs[which].append(json.loads(out.stdout.strip().splitlines()[-1]))
    load1 = os.getloadavg()
    med = lambda which, k: statistics.median(r[k] for r in runs[which])  # noqa: E731
    o, m = med("osml", "first_batch_s"), med("megatron", "first_batch_s")
    print(f"{a.sources} sources × {a.tokens_per_source:,} tokens (sparse, documents of 2,048), B={B}, T={T}; "
          f"megatron blend of {a.samples:,} samples; median of {a.rounds} fresh processes, interleaved; "
          f"{os.cpu_count()} CPUs; load average {load0[0]:.2f} → {load1[0]:.2f}")
    ms = lambda which, scale, fmt: ", ".join(format(r["first_batch_s"] * scale, fmt) for r in runs[which])  # noqa: E731
    print("| loader | open to first batch (median; all runs) |")
    print("|---|---|")
    print(f"| osml `TorchTokenLoader` (mixture) | {o * 1e3:.1f} ms ({ms('osml', 1e3, '.1f')}) |")
    print(f"| megatron-core `BlendedDataset` (indices built in {med('megatron', 'built_s'):.2f} s) | "
          f"{m * 1e3:.0f} ms ({ms('megatron', 1e3, '.0f')}) |")
    print(f"ratio: {m / o:.0f}×")


if __name__ == "__main__":
    main()
