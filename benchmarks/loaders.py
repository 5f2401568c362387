#!/usr/bin/env python3
"""Side-by-side: osml.TokenLoader against the loaders people use, on one file, in one run.

Every loader delivers int64 torch tensors x, y of shape [B, T], y being x shifted by one token
(the child checks), in random order, from the same uint16 token file: read as it is (osml,
nanoGPT, DataLoader and torchdata over a memmap, windows at random offsets), with its Megatron
index (megatron-core), or converted before any timing into the peer's own format (litdata,
MosaicML Streaming, HF datasets: the file's consecutive windows of T + 1 tokens, shuffled; see
peers.py). Each loader runs in a fresh process with its modules imported before the clock
starts, three rounds interleaved, every file in the page cache. A loader whose epoch ends
starts the next one inside the timed loop, as a training loop does.

    make bench-loaders            # all three parts, then first_batch.py
    $(scripts/bench-venv.sh) benchmarks/loaders.py [--tokens N] [--only NAME ...]
    $(scripts/bench-venv.sh) benchmarks/loaders.py --mixture
    $(scripts/bench-venv.sh) benchmarks/loaders.py --resume-check

`--mixture` cuts the file's documents into three Megatron prefixes of about equal tokens,
weights 0.7 / 0.2 / 0.1, read by osml (a dict of path to weight), megatron-core's
BlendedDataset of three GPTDatasets (built by BlendedMegatronDatasetBuilder in a one-rank
process group, as Megatron-LM builds it) and litdata's CombinedStreamingDataset; their first
batch includes building the blend's indices. `--resume-check` runs osml.testing.resume_check on a
small file for osml and the peers that have state_dict / load_state_dict, each in a fresh
process, and says per loader which world sizes and worker counts it went through and how the
ranks were made.

Reported per loader: tokens/s (median of rounds, min–max), CPU seconds per million tokens
(user + system of the loader's process tree over the timed loop), system calls per batch
(whole tree, set-up included; perf tracepoint, needs tracefs and root), time from constructing
the loader (its dataset and indices included) to the first batch in hand, and memory, read by
the loader's process itself after the timed loop, before anything is torn down; nothing reads
/proc during the timed loop (a smaps_rollup read costs milliseconds of CPU with torch loaded,
enough to cut osml's measured rate by more than half):

- peak RSS: the sum over the tree (the process, its dataloader workers and helpers such as
  multiprocessing's resource tracker) of each process's VmHWM (/proc/PID/status), its own peak
  resident set. Processes peak at different moments, so the sum bounds the tree's peak from
  above. It counts the dataset's mapped page-cache pages, and pages shared between processes
  once per process.
- PSS: the tree's Pss (/proc/PID/smaps_rollup) after the timed loop, the loader still held:
  the present (not peak) resident set with each shared page split between the processes that
  map it, so the tree counts it once. Mapped dataset pages are included.
- anonymous: the tree's Anonymous (smaps_rollup) at the same moment: what the processes
  allocated (heaps, batch buffers, copies), without file pages.

Memory figures are the maximum over rounds. A loader that cannot run, or whose format cannot
be built, gives a row `failed: reason`; the JSON on stderr holds every figure and error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peers  # beside this file, found through sys.path

B, T = 12, 1024
Batch = tuple[Any, Any]
Runner = Callable[[Path], tuple[Any, Callable[[], Batch]]]


def data_prefix(work: Path) -> str:
    return str(work / "data")


# --------------------------------------------------------------------------- the loaders


def run_osml(work: Path) -> tuple[Any, Callable[[], Batch]]:
    from osml.torch import TorchTokenLoader

    loader = TorchTokenLoader(data_prefix(work) + ".bin", batch_size=B, seq_len=T, seed=1, format="bin")
    return loader, lambda: next(loader)


def run_nanogpt(work: Path) -> tuple[Any, Callable[[], Batch]]:
    """nanoGPT's get_batch as its train.py does it: a new memmap per batch, random offsets,
    a per-sample int64 conversion, and a stack of x and of y."""
    import numpy as np
    import torch

    torch.manual_seed(1)
    path = data_prefix(work) + ".bin"

    def get_batch() -> Batch:
        data = np.memmap(path, dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i : i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + T].astype(np.int64)) for i in ix])
        return x, y

    return None, get_batch


def windows_dataset(path: str) -> Any:
    """A map-style Dataset of every window of T + 1 tokens of a uint16 file, as (x, y) int64,
    with a new memmap per sample (as nanoGPT maps the file per batch)."""
    import numpy as np
    import torch
    from torch.utils.data import Dataset

    class Windows(Dataset):
        def __init__(self) -> None:
            self.n = os.path.getsize(path) // 2 - T

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, i: int) -> Batch:
            data = np.memmap(path, dtype=np.uint16, mode="r")
            w = torch.from_numpy(data[i : i + T + 1].astype(np.int64))
            return w[:-1], w[1:]

    return Windows()


def _memmap_dataloader(work: Path, workers: int, stateful: bool = False) -> tuple[Any, Callable[[], Batch]]:
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    loader_class: Any = DataLoader
    sampler_class: Any = RandomSampler
    if stateful:  # torchdata's drop-in classes, whose state_dict records the sampler's position
        from torchdata.stateful_dataloader import StatefulDataLoader
        from torchdata.stateful_dataloader.sampler import RandomSampler as StatefulRandomSampler

        loader_class, sampler_class = StatefulDataLoader, StatefulRandomSampler
    dataset = windows_dataset(data_prefix(work) + ".bin")
    g = torch.Generator().manual_seed(1)
    # Random windows with replacement, as nanoGPT draws them (shuffle=True would build a
    # permutation of every window first: tens of seconds and gigabytes on a large file).
    sampler = sampler_class(dataset, replacement=True, num_samples=10**9, generator=g)
    dl = loader_class(dataset, batch_size=B, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    it = iter(dl)
    return dl, lambda: next(it)


def run_dataloader0(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _memmap_dataloader(work, 0)


def run_dataloader2(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _memmap_dataloader(work, 2)


def run_torchdata(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _memmap_dataloader(work, 0, stateful=True)


def run_megatron(work: Path) -> tuple[Any, Callable[[], Batch]]:
    from megatron_gpt import make_loader

    it = make_loader(data_prefix(work), B, T, seed=1, num_workers=0)
    return None, lambda: next(it)


def _epochs(loader: Any, xy: Callable[[Any], Batch]) -> tuple[Any, Callable[[], Batch]]:
    it: Iterator[Batch] = peers.forever(loader, xy)
    return loader, lambda: next(it)


def run_litdata(workers: int) -> Runner:
    return lambda work: _epochs(peers.litdata_loader(work / "litdata", B, T, workers), peers.xy_windows)


def run_mosaic(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _epochs(peers.mosaic_loader(work / "mds", B, 0), lambda b: peers.xy_windows(b["tokens"]))


def run_hf(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _epochs(peers.hf_loader(work / "arrow", B), lambda b: peers.xy_windows(b["input_ids"]))


def _mixture(work: Path) -> dict[str, float]:
    return {p + ".bin": w for p, w in zip(peers.mix_prefixes(work), peers.MIX_WEIGHTS)}


def run_osml_mixture(work: Path) -> tuple[Any, Callable[[], Batch]]:
    from osml.torch import TorchTokenLoader

    loader = TorchTokenLoader(_mixture(work), batch_size=B, seq_len=T, seed=1)
    return loader, lambda: next(loader)


def run_megatron_blended(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _epochs(peers.megatron_blend_loader(work, B, T, seed=1), peers.megatron_xy)


def run_litdata_combined(work: Path) -> tuple[Any, Callable[[], Batch]]:
    return _epochs(peers.litdata_combined_loader(work, B, T, 0), peers.xy_windows)


@dataclass(frozen=True)
class Row:
    run: Runner
    package: str  # the distribution whose version the row reports
    needs: tuple[str, ...] = ()  # formats (peers.FORMATS) built before timing
    imports: tuple[str, ...] = ()  # imported before the clock starts: import time is no loader's cost
    setup: Callable[[], None] | None = None  # the training job's own set-up, before the clock too


MEGATRON_IMPORTS = ("megatron.core.datasets.gpt_dataset", "megatron.core.datasets.blended_dataset", "megatron_gpt")
ROWS: dict[str, Row] = {
    "osml": Row(run_osml, "osml"),
    "nanogpt_get_batch": Row(run_nanogpt, "numpy"),
    "dataloader_w0": Row(run_dataloader0, "torch"),
    "dataloader_w2": Row(run_dataloader2, "torch"),
    "torchdata_w0": Row(run_torchdata, "torchdata", imports=("torchdata.stateful_dataloader",)),
    "megatron_gptdataset": Row(run_megatron, "megatron-core", imports=MEGATRON_IMPORTS),
    "litdata_w0": Row(run_litdata(0), "litdata", ("litdata",), ("litdata",)),
    "litdata_w2": Row(run_litdata(2), "litdata", ("litdata",), ("litdata",)),
    "mosaic_w0": Row(run_mosaic, "mosaicml-streaming", ("mds",), ("streaming",)),
    "hf_datasets": Row(run_hf, "datasets", ("arrow",), ("datasets",)),
}
MIXTURE_ROWS: dict[str, Row] = {
    "osml_mixture": Row(run_osml_mixture, "osml", ("mix",)),
    "megatron_blended": Row(run_megatron_blended, "megatron-core", ("mix",),
                            (*MEGATRON_IMPORTS, "megatron.core.datasets.blended_megatron_dataset_builder"),
                            peers.megatron_process_group),
    "litdata_combined": Row(run_litdata_combined, "litdata", ("mix", "litdata_mix"), ("litdata",)),
}


# --------------------------------------------------------------------------- resume_check


def _osml_ranked(source: Callable[[Path], Any]) -> Callable[..., Any]:
    def make(work: Path, rank: int, world_size: int, workers: int) -> Any:
        from osml.torch import TorchTokenLoader

        return TorchTokenLoader(source(work), B // world_size, T, seed=1, rank=rank, world_size=world_size,
                                workers=workers)

    return make


def _torchdata_ranked(work: Path, rank: int, world_size: int, workers: int) -> Any:
    from torchdata.stateful_dataloader import StatefulDataLoader
    from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

    dataset = windows_dataset(data_prefix(work) + ".bin")
    sampler = StatefulDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=1)
    return StatefulDataLoader(dataset, batch_size=B // world_size, sampler=sampler, num_workers=workers)


def _litdata_ranked(combined: bool) -> Callable[..., Any]:
    def make(work: Path, rank: int, world_size: int, workers: int) -> Any:
        def build() -> Any:
            if combined:
                return peers.litdata_combined_loader(work, B // world_size, T, workers)
            return peers.litdata_loader(work / "litdata", B // world_size, T, workers)

        return peers.SimulatedRank(build, rank, world_size)

    return make


def _mosaic_ranked(work: Path, rank: int, world_size: int, workers: int) -> Any:
    """Rank 0 of 1 only (see CHECKS["mosaic"])."""
    return peers.mosaic_loader(work / "mds", B // world_size, workers)


@dataclass(frozen=True)
class Check:
    make: Callable[..., Any]  # (work, rank, world_size, workers) -> a loader
    package: str
    world_sizes: tuple[int, ...]
    workers: tuple[int, ...]
    needs: tuple[str, ...] = ()
    how: str = ""  # how ranks are made, where it is not the loader's own rank argument


TORCHDATA_RANKS = "a StatefulDistributedSampler(num_replicas, rank) per rank"
LITDATA_RANKS = "ranks simulated in one process: litdata's _DistributedEnv.detect answers each rank's calls"
CHECKS: dict[str, Check] = {
    "osml": Check(_osml_ranked(lambda w: data_prefix(w) + ".bin"), "osml", (1, 2, 4), (1, 2)),
    "osml_mixture": Check(_osml_ranked(_mixture), "osml", (1, 2, 4), (1, 2), ("mix",)),
    "torchdata": Check(_torchdata_ranked, "torchdata", (1, 2), (0,), how=TORCHDATA_RANKS),
    "torchdata_fixed": Check(_torchdata_ranked, "torchdata", (2,), (2,),
                             how=TORCHDATA_RANKS + "; world size and workers kept"),
    "torchdata_workers": Check(_torchdata_ranked, "torchdata", (1,), (0, 2), how="one rank, workers changed"),
    "litdata": Check(_litdata_ranked(False), "litdata", (1, 2), (0, 2), ("litdata",), LITDATA_RANKS),
    "litdata_combined": Check(_litdata_ranked(True), "litdata", (1,), (0,), ("mix", "litdata_mix"),
                              "one rank, no workers: CombinedStreamingDataset resumes only an unchanged topology"),
    "litdata_combined_workers": Check(_litdata_ranked(True), "litdata", (1,), (0, 2), ("mix", "litdata_mix"),
                                      "one rank, workers changed"),
    "mosaic": Check(_mosaic_ranked, "mosaicml-streaming", (1,), (0, 2), ("mds",),
                    "one rank: with WORLD_SIZE > 1 Mosaic initialises torch.distributed itself, "
                    "so ranks cannot share a process"),
}


def resume_child(name: str, work: Path, steps: int, cycles: int) -> None:
    """Runs osml.testing.resume_check on one loader in this (fresh) process; prints JSON."""
    from osml.testing import resume_check

    check = CHECKS[name]
    if check.package == "litdata":
        peers.SimulatedRank.install()
    result = resume_check(lambda rank, world_size, workers: check.make(work, rank, world_size, workers),
                          steps=steps, cycles=cycles, world_sizes=list(check.world_sizes), workers=list(check.workers))
    print(json.dumps({"name": name, **result}, default=str))


# --------------------------------------------------------------------------- the child


def tree(pid: int) -> list[int]:
    """A process and its live descendants (/proc/PID/task/TID/children)."""
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


def tree_cpu_s(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / ticks


def _kib_fields(path: str, keys: dict[str, str]) -> dict[str, int]:
    """The ``key: N kB`` lines of a /proc file named by ``keys`` (line prefix -> result name), in bytes."""
    out = dict.fromkeys(keys.values(), 0)
    with open(path) as f:
        for line in f:
            name = keys.get(line.split(":", 1)[0])
            if name:
                out[name] = int(line.split()[1]) * 1024
    return out


def tree_memory(pids: Sequence[int]) -> dict[str, int]:
    """Σ VmHWM (``peak_rss``) and the present Rss, Pss and Anonymous of the processes."""
    total = {"peak_rss": 0, "rss": 0, "pss": 0, "anon": 0}
    for p in pids:
        try:
            got = _kib_fields(f"/proc/{p}/status", {"VmHWM": "peak_rss"})
            got.update(_kib_fields(f"/proc/{p}/smaps_rollup", {"Rss": "rss", "Pss": "pss", "Anonymous": "anon"}))
        except OSError:  # it exited meanwhile
            continue
        for k, v in got.items():
            total[k] += v
    return total


def child(name: str, work: Path, seconds: float) -> None:
    """Runs one loader in this (fresh) process for about `seconds` and prints its figures."""
    import numpy  # noqa: F401 - imported before timing, as a training script has it
    import osml.torch  # noqa: F401
    import torch  # noqa: F401

    row = {**ROWS, **MIXTURE_ROWS}[name]
    for module in row.imports:
        importlib.import_module(module)
    if row.setup:
        row.setup()
    counter = why = None
    try:
        from osml._osml import SyscallCounter

        counter = SyscallCounter()
        start_calls = counter.read()
    except Exception as e:  # noqa: BLE001 - reported, not fatal (perf events need root and tracefs)
        why = str(e)
    t0 = time.perf_counter()
    _loader, next_batch = row.run(work)  # held until the memory is read
    x, y = next_batch()
    first = time.perf_counter() - t0
    assert x.shape == (B, T) and str(x.dtype) == "torch.int64", (x.shape, x.dtype)
    assert y.shape == (B, T) and str(y.dtype) == "torch.int64", (y.shape, y.dtype)
    assert bool((y[:, :-1] == x[:, 1:]).all()), "y is not x shifted by one"
    for _ in range(10):
        next_batch()
    cpu0 = tree_cpu_s(tree(os.getpid()))
    t1 = time.perf_counter()
    steps = 0
    while steps < 20 or time.perf_counter() - t1 < seconds:
        x, y = next_batch()
        steps += 1
    secs = time.perf_counter() - t1
    pids = tree(os.getpid())
    cpu1 = tree_cpu_s(pids)
    calls = None if counter is None else (counter.read() - start_calls) / (steps + 11)
    memory = tree_memory(pids)  # after the counter: these reads are system calls too
    print(json.dumps({
        "name": name,
        "tokens_per_s": B * T * steps / secs,
        "first_batch_s": first,
        "cpu_s_per_mtok": (cpu1 - cpu0) / (B * T * steps / 1e6),
        "syscalls_per_batch": calls,
        "syscalls_unavailable": why,
        "processes": len(pids),
        **memory,
    }), flush=True)


# --------------------------------------------------------------------------- the parent


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
    peers.write_megatron(prefix, data, lengths)


def child_env(work: Path) -> dict[str, str]:
    """The children's environment: temporary files (megatron's index cache, Mosaic's file
    locks) and the peers' caches under the run's directory."""
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp), "LITDATA_CACHE_DIR": str(work / "litdata-cache"),
            "HF_DATASETS_CACHE": str(work / "hf-cache")}


def failure(stderr: str, status: int) -> str:
    """The exception line of a child's stderr (warnings may follow it), else its last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
    if errors:
        return errors[-1][:300]
    return lines[-1][:300] if lines else f"exit status {status}"


def run_child(args: list[str], work: Path, timeout: float) -> dict[str, Any]:
    """Runs this script with ``args``; its last JSON line on stdout (a peer may print too), or
    ``{"error": why}``."""
    try:
        proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False,
                              env=child_env(work), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    out = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not out:
        return {"error": failure(proc.stderr, proc.returncode)}
    return json.loads(out[-1])


def build_formats(needed: Sequence[str], prefix: str, work: Path, timeout: float) -> dict[str, str]:
    """Builds each format (and those it is built from) in a child; the formats that failed,
    with why."""
    broken: dict[str, str] = {}
    done: list[str] = []

    def one(fmt: str) -> None:
        if fmt in done or fmt in broken:
            return
        for dep in peers.FORMATS[fmt]:
            one(dep)
            if dep in broken:
                broken[fmt] = f"building {dep}: {broken[dep]}"
                return
        t = time.perf_counter()
        r = run_child(["--build", fmt, "--work", str(work)], work, timeout)
        if "error" in r:
            broken[fmt] = f"building {fmt}: {r['error']}"
        else:
            done.append(fmt)
            print(f"built {fmt} in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    for fmt in needed:
        one(fmt)
    return broken


def warm(work: Path) -> None:
    """Reads every file of the run into the page cache: every loader starts with its data cached."""
    buf = bytearray(1 << 20)
    for path in sorted(p for p in work.rglob("*") if p.is_file()):
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def version(package: str) -> str:
    """``package`` and its installed version."""
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} not installed"


def summarise(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of tokens/s, medians of CPU, first batch and syscalls, maxima of memory."""
    def med(k: str) -> float:
        return statistics.median(r[k] for r in rs)

    tps = [r["tokens_per_s"] for r in rs]
    return {
        "tokens_per_s": statistics.median(tps),
        "tokens_per_s_range": (min(tps), max(tps)),
        "cpu_s_per_mtok": med("cpu_s_per_mtok"),
        "first_batch_s": med("first_batch_s"),
        "first_batch_s_range": (min(r["first_batch_s"] for r in rs), max(r["first_batch_s"] for r in rs)),
        "peak_rss": max(r["peak_rss"] for r in rs),
        "pss": max(r["pss"] for r in rs),
        "anon": max(r["anon"] for r in rs),
        "processes": max(r["processes"] for r in rs),
        "syscalls_per_batch": None if rs[0]["syscalls_per_batch"] is None else med("syscalls_per_batch"),
    }


def print_table(rows: list[tuple[str, str, dict[str, Any] | None, str | None]], baseline: str | None) -> None:
    base = next((r for n, _, r, _ in rows if n == baseline and r), None)
    ratio_head = f" × {baseline} |" if baseline else ""
    print(f"| loader | version | tokens/s (min–max) |{ratio_head} CPU s per M tokens (tree) | peak RSS Σ VmHWM / PSS / "
          "anonymous after the loop (tree) | syscalls per batch | first batch (incl. construction) |")
    print("|---|---|---|" + ("---|" if baseline else "") + "---|---|---|---|")
    for n, ver, r, err in rows:
        if r is None:
            print(f"| {n} | {ver} | failed: {err} |" + (" |" if baseline else "") + " | | | |")
            continue
        lo, hi = r["tokens_per_s_range"]
        ratio = ""
        if baseline:
            ratio = f" {r['tokens_per_s'] / base['tokens_per_s']:.1f}× |" if base else " – |"
        sc = "–" if r["syscalls_per_batch"] is None else f"{r['syscalls_per_batch']:.1f}"
        procs = f", {r['processes']} processes" if r["processes"] > 1 else ""
        print(f"| {n} | {ver} | {r['tokens_per_s'] / 1e6:.1f} M ({lo / 1e6:.1f}–{hi / 1e6:.1f}) |{ratio} "
              f"{r['cpu_s_per_mtok']:.3f} | {r['peak_rss'] / 2**20:.0f} / {r['pss'] / 2**20:.0f} / "
              f"{r['anon'] / 2**20:.0f} MiB{procs} | {sc} | {r['first_batch_s'] * 1e3:.0f} ms |")


def host_line(tokens: int, load: tuple[float, float, float]) -> str:
    allowed = len(os.sched_getaffinity(0))
    return (f"file: {tokens:,} uint16 tokens ({tokens * 2 / 2**20:.0f} MiB, cached); B={B}, T={T}; "
            f"{os.cpu_count()} CPUs ({allowed} allowed); load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def busy_cpus(seconds: float = 1.0) -> float:
    """CPUs' worth of time spent busy (not idle or iowait) over ``seconds``, from /proc/stat:
    unlike the load average, not inflated by what this run did a moment ago."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    cpus = os.cpu_count() or 1
    return cpus * (1 - (idle1 - idle0) / max(1, total1 - total0))


def busy_warning(busy: float) -> None:
    """Warns when other work kept the CPUs busy as the run started."""
    cpus = os.cpu_count() or 1
    if busy > 0.5:
        print(f"warning: {busy:.1f} of {cpus} CPUs busy before the run: other work shares the machine, so rates and "
              "CPU times are unreliable; rerun on an idle host")


def benchmark(a: argparse.Namespace, work: Path) -> None:
    table = MIXTURE_ROWS if a.mixture else ROWS
    names = a.only or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"no row {unknown[0]!r}; rows: {', '.join(table)}")
    load0, busy = os.getloadavg(), busy_cpus()
    prefix = data_prefix(work)
    make_dataset(prefix, a.tokens)
    needed = list(dict.fromkeys(f for n in names for f in table[n].needs))
    broken = build_formats(needed, prefix, work, timeout=1800)
    warm(work)
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(a.rounds):
        for n in names:
            why = next((broken[f] for f in table[n].needs if f in broken), None)
            if why:
                results[n].append({"error": why})
                continue
            results[n].append(run_child(["--child", n, "--work", str(work), "--seconds", str(a.seconds)], work,
                                        timeout=300 + 10 * a.seconds))
    rows = []
    for n, rs in results.items():
        ok = [r for r in rs if "error" not in r]
        ver = version(table[n].package)
        rows.append((n, ver, summarise(ok), None) if ok else (n, ver, None, rs[0]["error"]))
    load1 = os.getloadavg()
    print(json.dumps({"B": B, "T": T, "tokens": a.tokens, "rounds": a.rounds, "seconds": a.seconds,
                      "mixture": dict(zip(peers.MIX_PARTS, peers.MIX_WEIGHTS)) if a.mixture else None,
                      "cpus": os.cpu_count(), "cpus_allowed": len(os.sched_getaffinity(0)),
                      "loadavg_start": load0, "loadavg_end": load1, "busy_cpus_at_start": busy, "rows": rows,
                      "errors": {n: [r["error"] for r in rs if "error" in r] for n, rs in results.items()}},
                     default=str), file=sys.stderr)
    print(host_line(a.tokens, load0))
    busy_warning(busy)
    if a.mixture:
        print("mixture: the documents cut in three sources of about equal tokens, weights "
              + " / ".join(str(w) for w in peers.MIX_WEIGHTS))
    print(f"{a.rounds} rounds, interleaved, {a.seconds:g} s timed per loader and round")
    print()
    print_table(rows, None if a.mixture else "nanogpt_get_batch")
    print()
    for n, rs in results.items():
        errors = [r["error"] for r in rs if "error" in r]
        if errors and len(errors) < len(rs):
            print(f"warning: {n}: {len(errors)} of {len(rs)} rounds failed ({errors[0]}); its figures are of the others")
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def resume_checks(a: argparse.Namespace, work: Path) -> None:
    names = a.only or list(CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        sys.exit(f"no check {unknown[0]!r}; checks: {', '.join(CHECKS)}")
    load0 = os.getloadavg()
    prefix = data_prefix(work)
    make_dataset(prefix, a.tokens)
    broken = build_formats(list(dict.fromkeys(f for n in names for f in CHECKS[n].needs)), prefix, work, 1800)
    results = {}
    for n in names:
        why = next((broken[f] for f in CHECKS[n].needs if f in broken), None)
        results[n] = {"error": why} if why else run_child(
            ["--resume-child", n, "--work", str(work), "--steps", str(a.steps), "--cycles", str(a.cycles)], work,
            timeout=900)
    load1 = os.getloadavg()
    print(json.dumps({"B": B, "T": T, "tokens": a.tokens, "steps": a.steps, "cycles": a.cycles,
                      "loadavg_start": load0, "loadavg_end": load1, "results": results}, default=str),
          file=sys.stderr)
    print(host_line(a.tokens, load0))
    print(f"osml.testing.resume_check: {a.steps} global steps of {B} samples, stopped and restored {a.cycles} times, "
          "against the same steps uninterrupted; samples named by a digest of their tokens")
    print()
    print("| loader | version | duplicates | drops | diverged | samples | tried |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        c, r = CHECKS[n], results[n]
        tried = (f"world sizes {', '.join(map(str, c.world_sizes))}; workers {', '.join(map(str, c.workers))}"
                 + (f"; {c.how}" if c.how else ""))
        if "error" in r:
            print(f"| {n} | {version(c.package)} | failed: {r['error']} | | | | {tried} |")
            continue
        stops = ", ".join(f"{s['step']} (world {s['world_size']}, {s['workers']} worker{'' if s['workers'] == 1 else 's'})"
                          for s in r["stops"])
        print(f"| {n} | {version(c.package)} | {r['duplicates']} | {r['drops']} | {r['diverged']} | {r['samples']} | "
              f"{tried}; stretches from steps {stops} |")
    print()
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--resume-child", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed run per loader and round")
    ap.add_argument("--tokens", type=int, help="tokens in the file (default 256 Mi; 4 Mi with --resume-check)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="*", help=f"rows: {', '.join(ROWS)}; with --mixture: {', '.join(MIXTURE_ROWS)}; "
                                              f"with --resume-check: {', '.join(CHECKS)}")
    ap.add_argument("--mixture", action="store_true", help="three sources, weights 0.7/0.2/0.1, instead of one")
    ap.add_argument("--resume-check", action="store_true", help="osml.testing.resume_check on osml and the peers")
    ap.add_argument("--steps", type=int, default=40, help="global steps of --resume-check")
    ap.add_argument("--cycles", type=int, default=3, help="stops and restores of --resume-check")
    ap.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.work, a.seconds)
        return
    if a.resume_child:
        resume_child(a.resume_child, a.work, a.steps, a.cycles)
        return
    if a.build:
        peers.build(a.build, data_prefix(a.work), a.work, T)
        print(json.dumps({"built": a.build}))
        return
    if a.tokens is None:
        a.tokens = 4 << 20 if a.resume_check else 256 << 20
    work = Path(tempfile.mkdtemp(prefix="osml-bench-loaders-"))
    try:
        (resume_checks if a.resume_check else benchmark)(a, work)
    finally:
        if a.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
