#!/usr/bin/env python3
"""`osml bench` against the tools that measure the same things, in one run.

    python3 benchmarks/os_tools.py [path/to/osml] [--dir DIR]

Runs `osml bench --json` on the comparable ids, then, on the same machine minutes later:
`perf bench syscall basic`, C `syscall(SYS_getppid)` loops (through glibc, and with an
inline `syscall` instruction as osml's rustix makes it), `perf bench sched pipe`
(pinned to one CPU with taskset, threads and processes), a C memcpy loop and
`perf bench mem memcpy`, and fio (random 4 KiB reads, O_DIRECT, psync at depth 1,
psync with 32 jobs, io_uring at depth 1 and 32) on a file in DIR. Prints each pair and the
ratio osml / tool. Tools that are missing are reported as such. Needs perf, fio, taskset
and a C compiler for the full table.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def osml_figures(osml, ids, d):
    out = sh(osml, "bench", "--json", "--dir", d, "--only", ",".join(ids))
    return {r["id"]: r for r in json.loads(out)["results"]}


def perf_usecs(*args):
    """`perf bench ...` prints `N usecs/op`."""
    if not shutil.which("perf"):
        return None
    out = sh("perf", "bench", *args)
    m = re.search(r"([\d.]+)\s+usecs/op", out)
    return float(m.group(1)) if m else None


def perf_memcpy_gbs():
    if not shutil.which("perf"):
        return None
    out = sh("perf", "bench", "mem", "memcpy", "-s", "256MB", "-l", "10", "-f", "default")
    m = re.search(r"([\d.]+)\s+(GB|MB)/sec", out)
    if not m:
        return None
    # perf prints binary units (GiB/s labelled GB/sec); osml prints decimal GB/s.
    v = float(m.group(1)) * (2**30 if m.group(2) == "GB" else 2**20)
    return v / 1e9


def c_reference(kind, build):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    exe = os.path.join(build, "os_reference")
    if not os.path.exists(exe):
        sh(cc, "-O2", "-o", exe, os.path.join(HERE, "os_reference.c"))
    try:
        return float(sh(exe, kind))
    except subprocess.CalledProcessError:
        return None  # e.g. syscall-raw off x86-64


def fio_kiops(path, size, engine, depth, jobs):
    if not shutil.which("fio"):
        return None
    out = sh(
        "fio", "--name=v", f"--filename={path}", f"--size={size}", "--rw=randread", "--bs=4k",
        "--direct=1", f"--ioengine={engine}", f"--iodepth={depth}", f"--numjobs={jobs}",
        "--group_reporting", "--time_based", "--runtime=4", "--output-format=json",
    )
    return json.loads(out)["jobs"][0]["read"]["iops"] / 1e3


def main():
    args = sys.argv[1:]
    d = "/var/tmp"
    if "--dir" in args:
        i = args.index("--dir")
        d = args[i + 1]
        del args[i : i + 2]
    osml = args[0] if args else os.path.join(HERE, "..", "target", "release", "osml")
    ids = ["syscall", "ctxswitch.thread", "ctxswitch.process", "memcpy",
           "pread", "pread.qd32", "io_uring", "io_uring.qd32"]
    ours = osml_figures(osml, ids, d)
    with tempfile.TemporaryDirectory() as build:
        pinned = ["taskset", "-c", "0"] if shutil.which("taskset") else []
        sched = lambda *extra: (  # noqa: E731
            float(re.search(r"([\d.]+)\s+usecs/op", sh(*pinned, "perf", "bench", "sched", "pipe", *extra)).group(1))
            if shutil.which("perf") else None
        )
        fd, scratch = tempfile.mkstemp(dir=d, prefix="osml-fio-")
        os.close(fd)
        size = "256M"
        try:
            rows = [
                ("syscall", "ns", "perf bench syscall basic", (perf_usecs("syscall", "basic") or 0) * 1e3 or None),
                ("syscall", "ns", "C syscall(SYS_getppid) loop", c_reference("syscall", build)),
                ("syscall", "ns", "C loop, inline `syscall` instruction", c_reference("syscall-raw", build)),
                ("ctxswitch.thread", "µs", "taskset -c 0 perf bench sched pipe -T", sched("-T")),
                ("ctxswitch.process", "µs", "taskset -c 0 perf bench sched pipe", sched()),
                ("memcpy", "GB/s", "C memcpy loop (malloc'd, 256 MiB)", c_reference("memcpy", build)),
                ("memcpy", "GB/s", "perf bench mem memcpy -s 256MB", perf_memcpy_gbs()),
                ("pread", "kIOPS", "fio psync iodepth=1", fio_kiops(scratch, size, "psync", 1, 1)),
                ("pread.qd32", "kIOPS", "fio psync numjobs=32", fio_kiops(scratch, size, "psync", 1, 32)),
                ("io_uring", "kIOPS", "fio io_uring iodepth=1", fio_kiops(scratch, size, "io_uring", 1, 1)),
                ("io_uring.qd32", "kIOPS", "fio io_uring iodepth=32", fio_kiops(scratch, size, "io_uring", 32, 1)),
            ]
        finally:
            os.unlink(scratch)
    print(f"{'id':<18} {'osml':>10} {'tool':>10} {'ratio':>6}  unit   tool")
    for id_, unit, tool, theirs in rows:
        mine = ours.get(id_, {}).get("median")
        if mine is None or theirs is None:
            print(f"{id_:<18} {'-' if mine is None else f'{mine:.2f}':>10} {'-':>10} {'':>6}  {unit:<6} {tool} (not run)")
            continue
        print(f"{id_:<18} {mine:>10.2f} {theirs:>10.2f} {mine / theirs:>6.2f}  {unit:<6} {tool}")


if __name__ == "__main__":
    main()
