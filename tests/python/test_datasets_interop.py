"""osml's token datasets against the real peers: megatron-core's IndexedDataset, numpy (nanoGPT's
format) and tiktoken. Every path must see the same tokens."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="megatron-core needs torch (scripts/python-tests.sh installs it)")
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder  # noqa: E402

DOCS = [[1, 2, 3], [], [32767, 7], [42], list(range(200_000)), [], [5]]


def build_with_megatron(prefix, docs, dtype):
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=dtype)
    for doc in docs:
        builder.add_item(torch.tensor(doc, dtype=torch.int64))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.int64])
def test_megatron_built_datasets_read_identically(tmp_path, osml, show, dtype):
    limit = np.iinfo(dtype).max
    docs = [[t % (limit + 1) for t in d] for d in DOCS]
    prefix = tmp_path / "mc"
    build_with_megatron(prefix, docs, dtype)

    info = json.loads(osml("data", "inspect", prefix, "--json").stdout)
    assert info["format"] == "megatron"
    assert info["dtype"] == np.dtype(dtype).name
    assert info["documents"] == len(docs)
    assert info["tokens"] == sum(map(len, docs))
    assert show(prefix) == docs

    # Document by document against megatron-core's own reader.
    ds = IndexedDataset(str(prefix))
    assert list(ds.document_indices) == list(range(len(docs) + 1))
    for i, doc in enumerate(show(prefix)):
        assert ds[i].tolist() == doc
    osml("data", "verify", prefix)


def test_osml_packed_datasets_read_in_megatron(tmp_path, osml, gpt2):
    texts = ["Hello, world!", "", "naïve café — 東京 🚀 emoji\n\nnew paragraph", "a" * 5000, "<|endoftext|> is text here"]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    prefix = tmp_path / "packed"
    osml("data", "pack", src, "-o", prefix, "--tokenizer", "gpt2", "--workers", "2")

    ds = IndexedDataset(str(prefix))
    assert len(ds) == len(texts)
    assert ds.sequence_lengths.dtype == np.int32
    for i, text in enumerate(texts):
        assert ds[i].dtype == np.uint16
        assert ds[i].tolist() == gpt2.encode_ordinary(text) + [gpt2.eot_token], f"document {i}"


def test_cl100k_is_stored_as_int32_and_reads_in_megatron(tmp_path, osml):
    src = tmp_path / "in.txt"
    src.write_text("tokens for a large vocabulary\n", encoding="utf-8")
    osml("data", "pack", src, "-o", tmp_path / "big", "--tokenizer", "cl100k_base")
    ds = IndexedDataset(str(tmp_path / "big"))
    assert ds[0].dtype == np.int32
    assert ds[0][-1] == 100257


def test_nanogpt_bin_from_numpy_tofile(tmp_path, osml, show):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50257, size=100_003, dtype=np.uint16)
    tokens.tofile(tmp_path / "train.bin")
    info = json.loads(osml("data", "inspect", tmp_path / "train.bin", "--json").stdout)
    assert (info["format"], info["dtype"], info["tokens"]) == ("bin", "uint16", tokens.size)
    assert show(tmp_path / "train.bin") == [tokens.tolist()]
    # And osml's raw output reads back in numpy as nanoGPT reads it.
    src = tmp_path / "in.txt"
    src.write_text("to be or not to be", encoding="utf-8")
    osml("data", "pack", src, "-o", tmp_path / "mine", "--format", "bin")
    got = np.memmap(tmp_path / "mine.bin", dtype=np.uint16, mode="r")
    assert got.tolist() == show(tmp_path / "mine.bin")[0]


def test_npy_written_by_numpy(tmp_path, show):
    for dtype in (np.uint16, np.int32, np.uint32, np.int64):
        arr = np.arange(1000, dtype=dtype) * 3
        np.save(tmp_path / f"a-{np.dtype(dtype).name}.npy", arr)
        assert show(tmp_path / f"a-{np.dtype(dtype).name}.npy") == [arr.tolist()]


def test_npy_layouts_osml_refuses(tmp_path, osml):
    np.save(tmp_path / "be.npy", np.arange(10, dtype=">u2"))
    np.save(tmp_path / "2d.npy", np.zeros((2, 3), dtype=np.uint16))
    np.save(tmp_path / "f.npy", np.zeros(4, dtype=np.float32))
    for name, why in [("be.npy", "big-endian"), ("2d.npy", "2 dimensions"), ("f.npy", "integer")]:
        proc = osml("data", "inspect", tmp_path / name, check=False)
        assert proc.returncode == 1, name
        assert why in proc.stderr, proc.stderr


def test_gpt2_ids_match_tiktoken(tmp_path, osml, show, gpt2):
    texts = ["", "hello world", "Ünïcödé ✓ — “quotes” 中文 한국어 🤖🤖", " leading and trailing  ", "tabs\tand\nnewlines\r\n", "x" * 3000]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts), encoding="utf-8")
    osml("data", "pack", src, "-o", tmp_path / "t", "--field", "body", "--no-eod", "--workers", "1")
    assert show(tmp_path / "t") == [gpt2.encode_ordinary(t) for t in texts]
