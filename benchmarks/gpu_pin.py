#!/usr/bin/env python3
"""Host-to-device copies of loader batches: osml's pool page-locked once (cudaHostRegister)
against torch's pin_memory() per batch and against pageable memory, in one run on one GPU.

    python benchmarks/gpu_pin.py    # needs torch with CUDA and the osml package
"""

import os
import sys
import tempfile
import time

import numpy as np
import torch

import osml
from osml.torch import TorchTokenLoader


def timed(label, make_batch, steps, bytes_per_batch):
    for _ in range(20):
        make_batch()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        make_batch()
    torch.cuda.synchronize()
    secs = time.perf_counter() - t
    return label, bytes_per_batch * steps / secs / 1e9, secs / steps * 1e6


def main():
    assert torch.cuda.is_available(), "needs CUDA"
    path = os.path.join(tempfile.mkdtemp(), "tokens.bin")
    np.random.default_rng(0).integers(0, 50257, size=128 << 20, dtype=np.uint16).tofile(path)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; osml {osml.__version__}")
    print("| batch | path | H2D GB/s | µs per batch |")
    print("|---|---|---|---|")
    for b, t in [(12, 1024), (64, 4096)]:
        nbytes = b * (t + 1) * 8
        steps = 2000 if b == 12 else 300
        pinned = TorchTokenLoader(path, b, t, device="cuda", pin_memory=True)
        assert pinned.pinned
        plain = osml.TokenLoader(path, b, t)
        rows = [
            timed("osml pool, page-locked once", lambda: next(pinned), steps, nbytes),
            timed("torch pin_memory() per batch", lambda: torch.from_numpy(plain.next_batch()).pin_memory().to("cuda", non_blocking=True), steps, nbytes),
            timed("pageable (no pinning)", lambda: torch.from_numpy(plain.next_batch()).to("cuda"), steps, nbytes),
        ]
        x, y = next(pinned)
        assert x.is_cuda and bool((y[:, :-1] == x[:, 1:]).all())
        for label, gbs, us in rows:
            print(f"| {b}×{t + 1} int64 ({nbytes / 2**20:.1f} MiB) | {label} | {gbs:.2f} | {us:.0f} |")
        pinned.close()
        del pinned, plain
    sys.stdout.flush()


if __name__ == "__main__":
    main()
