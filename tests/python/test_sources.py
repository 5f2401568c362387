"""Sources of many shards through the Python package: llm.c shards written as llm.c's
dev/data/data_common.py writes them, given as a glob, a directory, a list of paths and PathLike
objects, read by TokenLoader as one stream."""

import json
from pathlib import Path

import numpy as np
import pytest

import osml
from osml import TokenLoader

SHARDS = 20


def write_llmc(path, tokens, wide=False):
    """An llm.c shard: 256 little-endian int32 (magic, version, token count), then the tokens."""
    header = np.zeros(256, dtype="<i4")
    header[0] = 20240801 if wide else 20240520
    header[1] = 7 if wide else 1
    header[2] = len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u4" if wide else "<u2").tobytes())


def read_llmc(path):
    """The tokens of an llm.c shard, checked as llm.c's loader checks them."""
    raw = Path(path).read_bytes()
    header = np.frombuffer(raw[:1024], dtype="<i4")
    assert header[0] in (20240520, 20240801), header[0]
    dtype = "<u2" if header[0] == 20240520 else "<u4"
    assert header[1] == (1 if header[0] == 20240520 else 7)
    tokens = np.frombuffer(raw[1024:], dtype=dtype)
    assert len(tokens) == header[2]
    return tokens


@pytest.fixture()
def arange_shards(tmp_path):
    """20 shards of uneven length holding 0, 1, 2, … in order (uint32: a token is its position)."""
    sizes = [300 + 37 * i for i in range(SHARDS)]
    start = 0
    for i, n in enumerate(sizes):
        write_llmc(tmp_path / f"fineweb_train_{i:06d}.bin", np.arange(start, start + n), wide=True)
        start += n
    return tmp_path, start


@pytest.mark.parametrize("form", ["glob", "directory", "list", "pathlike-list", "pathlike"])
def test_every_form_of_a_source_reads_one_stream(arange_shards, form):
    root, total = arange_shards
    files = sorted(root.glob("fineweb_train_*.bin"))
    source = {
        "glob": str(root / "fineweb_train_*.bin"),
        "directory": str(root),
        "list": [str(p) for p in files],
        "pathlike-list": files,
        "pathlike": root,
    }[form]
    t = 50
    loader = osml.TokenLoader(source, 4, t, mode="epoch", seed=1, workers=2)
    windows = (total - 1) // t
    seen = []
    for _ in range(windows // 4):
        batch = loader.next_batch()
        for row in batch:
            start = int(row[0])
            # Rows crossing a shard boundary are windows of the stream like any other.
            np.testing.assert_array_equal(row, np.arange(start, start + t + 1))
            seen.append(start)
    assert len(seen) == len(set(seen)) == (windows // 4) * 4
    assert all(s % t == 0 for s in seen)


def test_inspect_lists_shards_in_path_order(arange_shards, osml):
    root, total = arange_shards
    info = json.loads(osml("data", "inspect", "--json", root / "fineweb_train_*.bin").stdout)
    assert info["format"] == "llmc" and info["dtype"] == "uint32"
    assert info["tokens"] == total
    starts = [s["first_token"] for s in info["shards"]]
    assert starts == sorted(starts) and len(starts) == SHARDS
    # Each shard's first token is its offset in the stream: the shards are in path order.
    for s in info["shards"]:
        assert int(read_llmc(s["path"])[0]) == s["first_token"]


def test_end_of_document_tokens_split_documents(tmp_path, osml):
    eot = 50256
    docs = [[1, 2, 3], [4], [5, 6, 7, 8], [9, 10]]
    # llm.c's convention: the token opens every document; the third document spans two shards.
    stream = [t for d in docs for t in [eot, *d]]
    write_llmc(tmp_path / "a_000000.bin", stream[:9])
    write_llmc(tmp_path / "a_000001.bin", stream[9:])
    out = osml("data", "show", "--eod-token", eot, tmp_path / "a_*.bin").stdout
    got = [json.loads(line) for line in out.splitlines()]
    assert got == [[eot, *d] for d in docs]
    # The fixture `osml` (the CLI) shadows the package here.
    loader = TokenLoader(str(tmp_path / "a_*.bin"), 1, 4, mode="epoch", eod_token=eot)
    assert loader.next_batch().shape == (1, 5)


def test_bad_sources_raise_clear_errors(tmp_path):
    with pytest.raises(osml.InvalidDatasetError, match="matches no file"):
        osml.TokenLoader(str(tmp_path / "none_*.bin"), 1, 4)
    write_llmc(tmp_path / "a.bin", list(range(100)))
    np.save(tmp_path / "b.npy", np.arange(100, dtype=np.uint16))
    with pytest.raises(osml.InvalidDatasetError, match="share one format"):
        osml.TokenLoader(tmp_path, 1, 4)
    with pytest.raises(osml.InvalidDatasetError, match="twice"):
        osml.TokenLoader([tmp_path / "a.bin", tmp_path / "a.bin"], 1, 4)
    with pytest.raises(ValueError, match="at least one path"):
        osml.TokenLoader([], 1, 4)
    with pytest.raises(TypeError):
        osml.TokenLoader(42, 1, 4)
    with pytest.raises(ValueError, match="format must be"):
        osml.TokenLoader(tmp_path / "a.bin", 1, 4, format="parquet")
    # A shard whose header count disagrees with its size names that shard.
    raw = (tmp_path / "a.bin").read_bytes()
    (tmp_path / "a.bin").write_bytes(raw[:-2])
    with pytest.raises(osml.InvalidDatasetError, match=r"a\.bin.*truncated"):
        osml.TokenLoader([tmp_path / "a.bin"], 1, 4)
