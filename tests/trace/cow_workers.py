"""Forks workers, one after the other, that read a large list shared from the parent.

Reading a Python object writes its reference count, so each page of objects a worker reads
becomes a private copy (copy-on-read). Each worker records its own PSS from
/proc/self/smaps_rollup before and after reading, and writes `pid start_pss end_pss` (bytes)
to the file named by argv[1]. The sleeps give a sampler time to see each phase.
"""
import os
import sys
import time


def pss():
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no Pss in smaps_rollup")


def main():
    out, workers, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = [float(i) for i in range(n)]
    time.sleep(0.3)
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            time.sleep(1.0)
            start = pss()
            total = 0.0
            for x in data:
                total += x
            end = pss()
            with open(out, "a") as f:
                f.write(f"{os.getpid()} {start} {end}\n")
            time.sleep(1.0)
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
