#!/usr/bin/env python3
"""Side-by-side: osml.TokenLoader against the loaders people use, on one file, in one run.

Every loader delivers int64 torch tensors x, y of shape [B, T] from the same uint16 token file
(plus its Megatron index for megatron-core). Each runs in a fresh process, three rounds
interleaved; the parent samples the process tree's RSS and PSS every 20 ms.

    make bench-loaders            # or: .venv/bin/python benchmarks/loaders.py [--tokens N]

Reported per loader: tokens/s (median of rounds), CPU seconds per million tokens (whole
process tree), peak RSS, PSS and anonymous memory of the tree (RSS and PSS include mapped
dataset pages, which are page cache; anonymous memory is what the process allocated), system calls per batch (whole tree, set-up
included; perf tracepoint, needs tracefs and root), and time from constructing the loader to
the first batch in hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
B, T = 12, 1024


# --------------------------------------------------------------------------- the loaders


def run_osml(path: str):
    from osml.torch import TorchTokenLoader

    loader = TorchTokenLoader(path + ".bin", batch_size=B, seq_len=T, seed=1, format="bin")
    return loader, lambda: next(loader)


def run_nanogpt(path: str):
    """nanoGPT's get_batch as its train.py does it: a new memmap per batch, random offsets,
    a per-sample int64 conversion, and a stack of x and of y."""
    import numpy as np
    import torch

    torch.manual_seed(1)

    def get_batch():
        data = np.memmap(path + ".bin", dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in ix])
        return x, y

    return None, get_batch


def _memmap_dataloader(path: str, workers: int):
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset, RandomSampler

    class Windows(Dataset):
        def __init__(self):
            self.n = os.path.getsize(path + ".bin") // 2 - T

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            data = np.memmap(path + ".bin", dtype=np.uint16, mode="r")
            w = torch.from_numpy(data[i : i + T + 1].astype(np.int64))
            return w[:-1], w[1:]

    g = torch.Generator().manual_seed(1)
    # Random windows with replacement, as nanoGPT draws them (shuffle=True would build a
    # permutation of every window first: tens of seconds and gigabytes on a large file).
    sampler = RandomSampler(Windows(), replacement=True, num_samples=10**9, generator=g)
    dl = DataLoader(Windows(), batch_size=B, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(dl)
    return dl, lambda: next(it)


def run_dataloader0(path: str):
    return _memmap_dataloader(path, 0)


def run_dataloader2(path: str):
    return _memmap_dataloader(path, 2)


def run_megatron(path: str):
    sys.path.insert(0, str(HERE))
    from megatron_gpt import make_loader  # noqa: PLC0415

    it = make_loader(path, B, T, seed=1, num_workers=0)
    return None, lambda: next(it)


RUNNERS = {
    "osml": run_osml,
    "nanogpt_get_batch": run_nanogpt,
    "dataloader_w0": run_dataloader0,
    "dataloader_w2": run_dataloader2,
    "megatron_gptdataset": run_megatron,
}


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its live descendants (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / ticks


def child(name: str, path: str, seconds: float) -> None:
    """Runs one loader in this (fresh) process for about `seconds` and prints its figures."""
    import gc

    import numpy  # noqa: F401 - imported before timing, as a training script has it
    import torch  # noqa: F401

    import osml.torch  # noqa: F401

    if name == "megatron_gptdataset":  # import time (~3.5 s here) is not the loader's cost
        sys.path.insert(0, str(HERE))
        import megatron.core.datasets.gpt_dataset  # noqa: F401
        import megatron_gpt  # noqa: F401

    counter = why = None
    try:
        from osml._osml import SyscallCounter

        counter = SyscallCounter()
        start_calls = counter.read()
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        why = str(e)
    t0 = time.perf_counter()
    holder, next_batch = RUNNERS[name](path)
    x, y = next_batch()
    first = time.perf_counter() - t0
    assert x.shape == (B, T) and str(x.dtype) == "torch.int64", (x.shape, x.dtype)
    assert bool((y[:, :-1] == x[:, 1:]).all())
    for _ in range(10):
        next_batch()
    cpu0 = tree_cpu_s(os.getpid())
    t1 = time.perf_counter()
    steps = 0
    while steps < 20 or time.perf_counter() - t1 < seconds:
        x, y = next_batch()
        steps += 1
    secs = time.perf_counter() - t1
    cpu1 = tree_cpu_s(os.getpid())
    del x, y, next_batch, holder
    gc.collect()
    calls = None if counter is None else (counter.read() - start_calls) / (steps + 11)
    print(json.dumps({
        "name": name,
        "tokens_per_s": B * T * steps / secs,
        "first_batch_s": first,
        "cpu_s_per_mtok": (cpu1 - cpu0) / (B * T * steps / 1e6),
        "syscalls_per_batch": calls,
        "syscalls_unavailable": why,
    }))


# --------------------------------------------------------------------------- the parent


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def memory(pids: list[int]) -> tuple[int, int, int]:
    rss = pss = anon = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                    elif line.startswith("Anonymous:"):
                        anon += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss, anon


def measure(name: str, path: str, seconds: float) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", name, "--path", path, "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0, 0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            for k, v in enumerate(memory(tree(proc.pid))):
                peak[k] = max(peak[k], v)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    out, err = proc.stdout.read(), proc.stderr.read()
    if status != 0:
        return {"name": name, "error": err.strip().splitlines()[-1] if err.strip() else f"status {status}"}
    r = json.loads(out.strip().splitlines()[-1])
    r["peak_rss"], r["peak_pss"], r["peak_anon"] = peak
    return r


def make_dataset(prefix: str, tokens: int) -> None:
    """Random uint16 tokens below 50257 with documents of 1-2000 tokens ending in 50256, as a
    raw .bin and its Megatron .idx."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = rng.integers(0, 50256, size=tokens, dtype=np.uint16)
    lengths = rng.integers(1, 2001, size=tokens // 500, dtype=np.int64)
    ends = np.cumsum(lengths)
    lengths = lengths[ends <= tokens]
    ends = np.cumsum(lengths)
    data[ends - 1] = 50256
    lengths[-1] += tokens - int(ends[-1])
    data.tofile(prefix + ".bin")
    s = len(lengths)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(np.array([1], dtype="<u8").tobytes())
        f.write(np.array([8], dtype="<u1").tobytes())
        f.write(np.array([s, s + 1], dtype="<u8").tobytes())
        f.write(lengths.astype("<i4").tobytes())
        f.write((np.concatenate([[0], np.cumsum(lengths)[:-1]]) * 2).astype("<i8").tobytes())
        f.write(np.arange(s + 1, dtype="<i8").tobytes())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--path")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed run per loader and round")
    ap.add_argument("--tokens", type=int, default=256 << 20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.path, a.seconds)
        return
    work = Path(tempfile.mkdtemp(prefix="osml-bench-loaders-"))
    prefix = str(work / "data")
    make_dataset(prefix, a.tokens)
    subprocess.run(["cat", prefix + ".bin"], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    names = a.only or list(RUNNERS)
    results: dict[str, list[dict]] = {n: [] for n in names}
    for _ in range(a.rounds):
        for n in names:
            results[n].append(measure(n, prefix, a.seconds))
    rows = []
    for n, rs in results.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows.append((n, None, rs[0]["error"]))
            continue
        med = lambda k: statistics.median(r[k] for r in ok)  # noqa: E731
        tps = med("tokens_per_s")
        rows.append((n, {
            "tokens_per_s": tps,
            "tokens_per_s_range": (min(r["tokens_per_s"] for r in ok), max(r["tokens_per_s"] for r in ok)),
            "cpu_s_per_mtok": med("cpu_s_per_mtok"),
            "first_batch_s": med("first_batch_s"),
            "peak_rss": max(r["peak_rss"] for r in ok),
            "peak_pss": max(r["peak_pss"] for r in ok),
            "peak_anon": max(r["peak_anon"] for r in ok),
            "syscalls_per_batch": None if ok[0]["syscalls_per_batch"] is None else med("syscalls_per_batch"),
        }, None))
    print(json.dumps({"B": B, "T": T, "tokens": a.tokens, "rounds": a.rounds, "rows": rows}, default=str), file=sys.stderr)
    nano = dict((n, r) for n, r, _ in rows if r).get("nanogpt_get_batch")
    print(f"file: {a.tokens:,} uint16 tokens ({a.tokens * 2 / 2**20:.0f} MiB, cached); B={B}, T={T}; {a.rounds} rounds, interleaved; {os.cpu_count()} CPUs")
    print("| loader | tokens/s (min–max) | × nanoGPT get_batch | CPU s per M tokens (tree) | peak RSS / PSS / anonymous (tree) | syscalls per batch | first batch |")
    print("|---|---|---|---|---|---|---|")
    for n, r, err in rows:
        if r is None:
            print(f"| {n} | failed: {err} | | | | | |")
            continue
        lo, hi = r["tokens_per_s_range"]
        ratio = f"{r['tokens_per_s'] / nano['tokens_per_s']:.1f}×" if nano else "–"
        sc = "–" if r["syscalls_per_batch"] is None else f"{r['syscalls_per_batch']:.1f}"
        print(f"| {n} | {r['tokens_per_s'] / 1e6:.1f} M ({lo / 1e6:.1f}–{hi / 1e6:.1f}) | {ratio} | {r['cpu_s_per_mtok']:.3f} | {r['peak_rss'] / 2**20:.0f} / {r['peak_pss'] / 2**20:.0f} / {r['peak_anon'] / 2**20:.0f} MiB | {sc} | {r['first_batch_s'] * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
