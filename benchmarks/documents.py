#!/usr/bin/env python3
"""What `documents=True` costs a PyTorch user: `osml.torch.TorchTokenLoader` over a 10-source
mixture with document fields (x, y, position_ids, cu_seqlens, sources and offsets delivered
as torch tensors), against one source of the same tokens without them (x, y), in one
process, rounds interleaved, the load average printed. Nothing reads the tensors (a
`.item()` costs 1.5 µs, a third of the baseline's time per batch, and would measure the
harness): what is measured is the loader and the wrapper's cost per batch.

The tokens: uint16 below 50257 with documents of 1-1000 tokens (as the `mixtures` Rust bench),
written as one Megatron prefix and as ten prefixes of a tenth each, warm in the page cache.

    .venv/bin/python benchmarks/documents.py [--tokens 25000000] [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import write_megatron  # noqa: E402

B, T, SOURCES = 12, 1024, 10


def corpus(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 1001, n // 500 + 10)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    lengths[-1] -= int(lengths.sum() - n)
    return rng.integers(0, 50257, n, dtype=np.uint16), lengths[lengths > 0]


def rate(loader, seconds: float) -> float:
    for _ in range(100):
        next(loader)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            next(loader)
        n += 100
    return n * B * T / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=25_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    import osml.torch

    with tempfile.TemporaryDirectory(prefix="osml-documents-bench-") as work:
        tokens, lengths = corpus(args.tokens)
        one = os.path.join(work, "all")
        write_megatron(one, tokens, lengths)
        ends = np.cumsum(lengths)
        cuts = [0, *(int(np.searchsorted(ends, len(tokens) * k // SOURCES)) + 1 for k in range(1, SOURCES)), len(lengths)]
        parts = []
        for i, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
            start = int(ends[lo - 1]) if lo else 0
            p = os.path.join(work, f"part{i}")
            write_megatron(p, tokens[start : int(ends[hi - 1])], lengths[lo:hi])
            parts.append(p)
        # Two decimals, as a user writes them: exact shares (a float sum such as
        # 0.05 + 0.01 is 0.060000000000000005, whose shares would be rounded, with a warning).
        weights = {p: round(0.05 + 0.01 * i, 2) for i, p in enumerate(parts)}
        load0 = os.getloadavg()
        single, mixed = [], []
        for r in range(args.rounds):
            for p in [one, *parts]:
                for ext in (".bin", ".idx"):
                    Path(p + ext).read_bytes()  # warm: a reclaimer evicts idle page cache
            single.append(rate(osml.torch.TorchTokenLoader(one, B, T, seed=r), args.seconds))
            mixed.append(rate(osml.torch.TorchTokenLoader(weights, B, T, seed=r, documents=True), args.seconds))
        s, m = statistics.median(single), statistics.median(mixed)
        print(f"TorchTokenLoader, B={B} T={T} int64, {args.rounds} interleaved rounds of {args.seconds:g} s; "
              f"load average {' '.join(f'{x:.2f}' for x in load0)} → {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("| source | median tokens/s (min–max) | ratio |")
        print("|---|---|---|")
        cell = lambda v, med: f"{med / 1e6:.1f} M ({min(v) / 1e6:.1f}–{max(v) / 1e6:.1f} M)"  # noqa: E731
        print(f"| one Megatron source, {args.tokens / 1e6:.0f} M tokens, x and y (baseline) | {cell(single, s)} | 1.00 |")
        print(f"| {SOURCES}-source mixture of the same tokens, documents=True | {cell(mixed, m)} | {m / s:.2f} |")


if __name__ == "__main__":
    main()
