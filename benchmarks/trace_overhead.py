#!/usr/bin/env python3
"""What `osml trace` costs the job it watches, against running it alone and under strace.

    python3 benchmarks/trace_overhead.py [path/to/osml] [--reps 5] [--busy]

1. A CPU-bound job (a pure-Python loop, ~2 s) alone and under `osml trace` at the default
   200 ms interval: the sampling overhead.
2. A syscall-heavy job (300,000 getppid calls from Python) alone, under
   `osml trace --syscalls=bpf` (BPF programs), `--syscalls=perf` (perf counters),
   `--syscalls=ptrace` and `strace -c -f`: the cost of counting every call; and 3,000,000
   calls alone and under both kernel modes.
3. A DataLoader-like job: a parent and 2 forked workers (multiprocessing's fork start method)
   reading 64 KiB chunks of 1 MiB files from the page cache and summing a strided byte of
   each chunk in Python, 200 steps of 4 files each;
   its step time alone and under the same counters (and the perf counters with
   `--syscall-names common` and `none`, fewer counters per thread).

Runs are interleaved, the median of --reps wall times is kept, and each line prints the ratio
to the job alone measured in the same run, with the load average before and after. --busy runs
one CPU-bound process beside every case (a training host is never idle).

Before each case the harness waits until no helper that an earlier trace forked to close its
kernel counters is left (each last close of a tracepoint's counter or program waits an RCU
grace period under a kernel mutex: 13 s for perf mode's ~360 counters here), so a case does not
pay for the previous one's clean-up; the waits are counted and printed.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

CPU_JOB = "s = 0\nfor i in range(12_000_000):\n    s += i * i\n"
SYSCALL_JOB = "import os\nfor _ in range(300_000):\n    os.getppid()\n"
LONG_SYSCALL_JOB = SYSCALL_JOB.replace("300_000", "3_000_000")
# Prints its mean step time in seconds on the last line.
LOADER_JOB = """
import multiprocessing as mp, os, sys, time
DIR = sys.argv[1]
FILES = sorted(os.path.join(DIR, f) for f in os.listdir(DIR))
def load(step):
    total = 0
    for k in range(4):
        with open(FILES[(step * 4 + k) % len(FILES)], "rb", buffering=0) as f:
            while chunk := f.read(65536):
                total += sum(chunk[::64])
    return total
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.map(load, range(4))  # workers started
        t = time.perf_counter()
        for _ in pool.imap(load, range(200), chunksize=1):
            pass
        print((time.perf_counter() - t) / 200)
"""


WAITS = []


def wait_for_helpers(osml):
    """Waits (up to 60 s) until no process runs the osml binary: the closing helpers."""
    exe = os.path.realpath(osml)
    t = time.perf_counter()
    while time.perf_counter() - t < 60:
        busy = False
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    busy = os.readlink(f"/proc/{pid}/exe") == exe
                except OSError:
                    continue
                if busy:
                    break
        if not busy:
            break
        time.sleep(0.05)
    WAITS.append(time.perf_counter() - t)


def wall(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def step_time(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    args = sys.argv[1:]
    reps = 5
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i : i + 2]
    busy = "--busy" in args
    if busy:
        args.remove("--busy")
    osml = args[0] if args else os.path.join(HERE, "..", "target", "release", "osml")
    py = sys.executable
    files = tempfile.mkdtemp(prefix="osml-trace-bench-")
    for k in range(64):
        with open(os.path.join(files, f"{k:03}.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
    have_strace = shutil.which("strace") is not None

    def under(job):
        out = {"alone": job, "osml trace --syscalls=bpf": [osml, "trace", "--syscalls=bpf", "--", *job],
               "osml trace --syscalls=perf": [osml, "trace", "--syscalls=perf", "--", *job],
               "osml trace --syscalls=ptrace": [osml, "trace", "--syscalls=ptrace", "--", *job]}
        if have_strace:
            out["strace -c -f"] = ["strace", "-c", "-f", "-o", "/dev/null", *job]
        return out

    cases = {"cpu job alone": (wall, [py, "-c", CPU_JOB]),
             "cpu job, osml trace (200 ms)": (wall, [osml, "trace", "--", py, "-c", CPU_JOB])}
    for name, cmd in under([py, "-c", SYSCALL_JOB]).items():
        cases[f"syscall job, {name}"] = (wall, cmd)
    # Ten times the calls, where osml's fixed start (tracepoint ids, ~360 counters) weighs less.
    cases["long syscall job, alone"] = (wall, [py, "-c", LONG_SYSCALL_JOB])
    for mode in ("bpf", "perf"):
        cases[f"long syscall job, osml trace --syscalls={mode}"] = (
            wall, [osml, "trace", f"--syscalls={mode}", "--", py, "-c", LONG_SYSCALL_JOB])
    for name, cmd in under([py, "-c", LOADER_JOB, files]).items():
        cases[f"loader step, {name}"] = (step_time, cmd)
        if name.endswith("=perf"):
            # Fewer counters per thread: each one is switched with the thread.
            for names in ("common", "none"):
                cases[f"loader step, {name} --syscall-names {names}"] = (
                    step_time, [osml, "trace", "--syscalls=perf", "--syscall-names", names, "--", py, "-c",
                                LOADER_JOB, files])
    hog = subprocess.Popen([py, "-c", "while True: pass"]) if busy else None
    load0 = os.getloadavg()
    try:
        times = {k: [] for k in cases}
        for _ in range(reps):
            for name, (measure, cmd) in cases.items():
                wait_for_helpers(osml)
                times[name].append(measure(cmd))
    finally:
        if hog:
            hog.kill()
        shutil.rmtree(files, ignore_errors=True)
    load1 = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{os.cpu_count()} CPUs; {'one CPU-bound process beside every case; ' if busy else ''}"
          f"load average {load0[0]:.2f} at start, {load1[0]:.2f} at end; {reps} interleaved rounds")
    print(f"waited for closing helpers before {sum(w > 0.1 for w in WAITS)} of {len(WAITS)} cases, "
          f"{sum(WAITS):.1f} s in all")
    print(f"{'case':<70} {'median s':>10} {'ratio':>7}  (min-max s)")
    for name in cases:
        base = med["cpu job alone" if name.startswith("cpu") else name.split(",")[0] + ", alone"]
        lo, hi = min(times[name]), max(times[name])
        print(f"{name:<70} {med[name]:>10.5f} {med[name] / base:>7.3f}  ({lo:.5f}-{hi:.5f})")


if __name__ == "__main__":
    main()
