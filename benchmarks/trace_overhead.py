#!/usr/bin/env python3
"""What `osml trace` costs the job it watches, against running it alone and under strace.

    python3 benchmarks/trace_overhead.py [path/to/osml] [--reps 5]

1. A CPU-bound job (a pure-Python loop, ~2 s) alone and under `osml trace` at the default
   200 ms interval: the sampling overhead.
2. A syscall-heavy job (300,000 getppid calls from Python) alone, under
   `osml trace --syscalls` and under `strace -c -f`: the cost of counting every call.

Runs are interleaved, the median of --reps wall times is kept, and each line prints the ratio
to the job alone measured in the same run.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CPU_JOB = "s = 0\nfor i in range(12_000_000):\n    s += i * i\n"
SYSCALL_JOB = "import os\nfor _ in range(300_000):\n    os.getppid()\n"


def wall(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    args = sys.argv[1:]
    reps = 5
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i : i + 2]
    osml = args[0] if args else os.path.join(HERE, "..", "target", "release", "osml")
    py = sys.executable
    cases = {
        "cpu job alone": [py, "-c", CPU_JOB],
        "cpu job, osml trace (200 ms)": [osml, "trace", "--", py, "-c", CPU_JOB],
        "syscall job alone": [py, "-c", SYSCALL_JOB],
        "syscall job, osml trace --syscalls": [osml, "trace", "--syscalls", "--", py, "-c", SYSCALL_JOB],
    }
    if shutil.which("strace"):
        cases["syscall job, strace -c -f"] = ["strace", "-c", "-f", "-o", "/dev/null", py, "-c", SYSCALL_JOB]
    times = {k: [] for k in cases}
    for _ in range(reps):
        for name, cmd in cases.items():
            times[name].append(wall(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{'case':<36} {'median s':>9} {'ratio':>7}  (min-max s)")
    for name in cases:
        base = med["cpu job alone"] if name.startswith("cpu") else med["syscall job alone"]
        lo, hi = min(times[name]), max(times[name])
        print(f"{name:<36} {med[name]:>9.3f} {med[name] / base:>7.3f}  ({lo:.3f}-{hi:.3f})")


if __name__ == "__main__":
    main()
