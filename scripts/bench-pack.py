#!/usr/bin/env python3
"""Benchmark: `osml data pack` against tiktoken's encode_ordinary_batch + numpy writes, the same
JSONL in the same run, interleaved, per core (1 thread each) and with 2 threads; then the same
rows as Parquet (zstd, row groups of 1,000 rows): `osml data pack x.parquet --workers 1` against
pyarrow's iter_batches + tiktoken (1 thread) + numpy writes, interleaved, with the load average.

Run: make bench-pack (needs the .venv of scripts/python-tests.sh and a release build).
Corpus: every .py file of this Python's standard library, one JSON document per file, read in
sorted order (real English and code, identical on every run of the same Python).
"""

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
REPS = 3


def corpus(dst: Path, limit_bytes: int) -> int:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    with dst.open("w", encoding="utf-8") as out:
        for p in sorted(stdlib.rglob("*.py")):
            if "site-packages" in p.parts:
                continue
            try:
                text = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            out.write(json.dumps({"text": text}) + "\n")
            total += len(text.encode())
            if total >= limit_bytes:
                break
    return total


def tiktoken_pack(enc, src: Path, dst: Path, threads: int) -> int:
    """What a Python user writes: json.loads per line, batch-encode, append EOT, numpy tofile."""
    eot = enc.eot_token
    tokens = 0
    with src.open(encoding="utf-8") as f, dst.open("wb") as out:
        batch = []
        def flush():
            nonlocal tokens
            ids = enc.encode_ordinary_batch(batch, num_threads=threads)
            arr = np.fromiter((t for doc in ids for t in (*doc, eot)), dtype=np.uint16)
            arr.tofile(out)
            tokens += arr.size
            batch.clear()
        for line in f:
            batch.append(json.loads(line)["text"])
            if len(batch) == 1000:
                flush()
        if batch:
            flush()
    return tokens


def tiktoken_pack_parquet(enc, src: Path, dst: Path) -> int:
    """What a Python user writes for Parquet: iter_batches over the text column, batch-encode
    on one thread, append EOT, numpy tofile."""
    import pyarrow.parquet as pq

    eot = enc.eot_token
    tokens = 0
    with dst.open("wb") as out:
        for batch in pq.ParquetFile(src).iter_batches(batch_size=1000, columns=["text"]):
            docs = [t for t in batch.column(0).to_pylist() if t is not None]
            ids = enc.encode_ordinary_batch(docs, num_threads=1)
            arr = np.fromiter((t for doc in ids for t in (*doc, eot)), dtype=np.uint16)
            arr.tofile(out)
            tokens += arr.size
    return tokens


def parquet_rows(osml, enc, src_jsonl: Path, work: Path, mb: float):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with src_jsonl.open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    src = work / "corpus.parquet"
    pq.write_table(pa.table({"text": texts}), src, row_group_size=1000, compression="zstd")
    src.read_bytes()
    t_osml, t_py = [], []
    for _ in range(REPS):
        t = time.perf_counter()
        subprocess.run([osml, "data", "pack", src, "-o", work / "po", "--format", "bin", "--workers", "1"],
                       check=True, capture_output=True)
        t_osml.append(time.perf_counter() - t)
        t = time.perf_counter()
        tiktoken_pack_parquet(enc, src, work / "pt.bin")
        t_py.append(time.perf_counter() - t)
    same = (work / "po.bin").read_bytes() == (work / "pt.bin").read_bytes()
    pm, om = statistics.median(t_py), statistics.median(t_osml)
    print()
    print(f"Parquet: {src.stat().st_size / 1e6:.1f} MB file (zstd, 1,000 rows a row group) of the same rows; 1 thread each; load average before {LOAD_BEFORE}, after {os.getloadavg()[0]:.2f}")
    print("| input | pyarrow + tiktoken + numpy MB/s (min–max) | osml data pack MB/s (min–max) | osml ÷ python | same bytes |")
    print("|---|---|---|---|---|")
    print(f"| Parquet, 1 thread | {mb / pm:.1f} ({mb / max(t_py):.1f}–{mb / min(t_py):.1f}) | {mb / om:.1f} ({mb / max(t_osml):.1f}–{mb / min(t_osml):.1f}) | {pm / om:.2f}× | {'yes' if same else 'NO'} |")


LOAD_BEFORE = ""


def main():
    global LOAD_BEFORE
    LOAD_BEFORE = " ".join(f"{x:.2f}" for x in os.getloadavg())
    osml = Path(sys.argv[1] if len(sys.argv) > 1 else "target/release/osml").resolve()
    assets = Path(os.environ["OSML_TIKTOKEN_ASSETS"])
    work = Path(tempfile.mkdtemp(prefix="osml-bench-pack-"))
    try:
        cache = work / "tiktoken"
        cache.mkdir()
        shutil.copy(assets / "r50k_base.tiktoken", cache / hashlib.sha1(R50K_URL.encode()).hexdigest())
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
        import tiktoken

        enc = tiktoken.get_encoding("r50k_base")
        src = work / "corpus.jsonl"
        text_bytes = corpus(src, 40 << 20)
        src.read_bytes()  # warm the page cache for both sides
        rows = []
        for threads in (1, 2):
            t_osml, t_tik = [], []
            for _ in range(REPS):
                t = time.perf_counter()
                subprocess.run([osml, "data", "pack", src, "-o", work / "o", "--format", "bin", "--workers", str(threads)],
                               check=True, capture_output=True)
                t_osml.append(time.perf_counter() - t)
                t = time.perf_counter()
                n = tiktoken_pack(enc, src, work / "t.bin", threads)
                t_tik.append(time.perf_counter() - t)
            same = (work / "o.bin").read_bytes() == (work / "t.bin").read_bytes()
            rows.append((threads, statistics.median(t_tik), min(t_tik), max(t_tik), statistics.median(t_osml), min(t_osml), max(t_osml), n, same))
        mb = text_bytes / 1e6
        print(f"corpus: {mb:.1f} MB of text, {rows[0][7]:,} GPT-2 tokens; {REPS} runs each, interleaved; {os.cpu_count()} CPUs")
        print("| threads | tiktoken + numpy MB/s (min–max) | osml data pack MB/s (min–max) | osml ÷ tiktoken | same bytes |")
        print("|---|---|---|---|---|")
        for threads, tm, tlo, thi, om, olo, ohi, _, same in rows:
            print(f"| {threads} | {mb / tm:.1f} ({mb / thi:.1f}–{mb / tlo:.1f}) | {mb / om:.1f} ({mb / ohi:.1f}–{mb / olo:.1f}) | {tm / om:.2f}× | {'yes' if same else 'NO'} |")
        if os.environ.get("OSML_BENCH_PARQUET", "1") != "0":
            parquet_rows(osml, enc, src, work, mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
