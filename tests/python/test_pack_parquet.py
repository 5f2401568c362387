"""`osml data pack` of Parquet written by pyarrow, against the same texts packed from a .jsonl
(which test_datasets_interop.py holds to tiktoken) and against tiktoken itself; and llm.c's
shard format read back by a reader that follows llm.c's documented header."""

import json
import random

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is in tests/python/requirements.txt")
pq = pytest.importorskip("pyarrow.parquet")


def texts():
    rows = []
    for i in range(400):
        k = i % 6
        if k == 0:
            rows.append(None)
        elif k == 1:
            rows.append("")
        elif k == 2:
            rows.append(f"Grüße, 東京 {i} 🚀 naïve café\n\n  indented")
        else:
            rows.append(f"document {i}: " + "lorem ipsum dolor " * (i % 17))
    rng = random.Random(20240520)
    words = ["alpha ", "beta ", "γάμμα ", "delta\n", "1234 ", "東京 ", "zeta, ", "<|endoftext|> "]
    big = []
    size = 0
    while size < 20 << 20:
        w = rng.choice(words)
        big.append(w)
        size += len(w.encode())
    rows.insert(200, "".join(big))
    return rows


@pytest.mark.parametrize("string_type", ["string", "large_string"])
def test_parquet_packs_like_the_same_jsonl_and_tiktoken(tmp_path, osml, gpt2, string_type):
    rows = texts()
    table = pa.table({"id": pa.array(range(len(rows)), pa.int64()), "body": pa.array(rows, getattr(pa, string_type)())})
    src = tmp_path / "in.parquet"
    pq.write_table(table, src, row_group_size=64, compression="zstd")
    assert pq.ParquetFile(src).metadata.num_row_groups > 5

    jsonl = tmp_path / "in.jsonl"
    with jsonl.open("w", encoding="utf-8") as f:
        for t in rows:
            if t is not None:
                f.write(json.dumps({"body": t}) + "\n")

    out = json.loads(osml("data", "pack", src, "-o", tmp_path / "p", "--format", "bin", "--field", "body", "--workers", "2", "--json").stdout)
    assert out["null_rows"] == rows.count(None)
    osml("data", "pack", jsonl, "-o", tmp_path / "j", "--format", "bin", "--field", "body", "--workers", "1")
    got = np.fromfile(tmp_path / "p.bin", dtype=np.uint16)
    assert np.array_equal(got, np.fromfile(tmp_path / "j.bin", dtype=np.uint16))

    want = []
    for ids in gpt2.encode_ordinary_batch([t for t in rows if t is not None]):
        want.extend(ids)
        want.append(gpt2.eot_token)
    assert got.tolist() == want


def read_llmc(path):
    """llm.c's shard, as dev/data/data_common.py writes it: 256 little-endian int32 (magic,
    version, token count), then uint16 tokens (magic 20240520, version 1) or uint32 (20240801,
    version 7)."""
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(256 * 4), dtype="<i4")
        dtype = {(20240520, 1): "<u2", (20240801, 7): "<u4"}[(int(header[0]), int(header[1]))]
        tokens = np.frombuffer(f.read(), dtype=dtype)
    assert not header[3:].any()
    assert len(tokens) == header[2]
    return int(header[0]), int(header[1]), tokens


def test_llmc_output_is_what_llm_c_writes(tmp_path, osml, gpt2):
    rows = ["first document", "", "naïve café 東京", "third one\nwith lines"] * 50
    pq.write_table(pa.table({"text": rows}), tmp_path / "in.parquet", row_group_size=30)
    out = json.loads(osml("data", "pack", tmp_path / "in.parquet", "-o", tmp_path / "s", "--format", "llmc", "--shard-tokens", "300", "--json").stdout)
    # llm.c's fineweb.py: each document is [eot] + encode_ordinary(text).
    want = []
    for t in rows:
        want.append(gpt2.eot_token)
        want.extend(gpt2.encode_ordinary(t))
    got = []
    for i, shard in enumerate(out["shards"]):
        magic, version, tokens = read_llmc(tmp_path / f"s_{i:06d}.bin")
        assert (magic, version) == (20240520, 1)
        assert len(tokens) == shard["tokens"] <= 300
        assert tokens[0] == gpt2.eot_token, "every shard starts at a document"
        got.extend(tokens.tolist())
    assert len(out["shards"]) > 1
    assert got == want

    osml("data", "pack", tmp_path / "in.parquet", "-o", tmp_path / "big", "--format", "llmc", "--tokenizer", "cl100k_base")
    magic, version, tokens = read_llmc(tmp_path / "big.bin")
    assert (magic, version) == (20240801, 7)
    assert tokens.dtype == np.dtype("<u4")
