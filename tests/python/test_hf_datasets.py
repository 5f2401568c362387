"""Hugging Face `datasets` on disk, built by the real library: `save_to_disk` directories and a
`.map`ped dataset's cache `.arrow` file, read by osml document for document against
`ds["input_ids"]`, and every epoch window of them delivered once by `TokenLoader`.
"""

import json
import os
import tempfile

import numpy as np
import pytest

# datasets reads its cache location when imported: keep it, and any download attempt, off
# the user's home (tests touch nothing outside the checkout and temporary directories).
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="osml-hf-home-")
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

datasets = pytest.importorskip("datasets", reason="scripts/venv.sh installs datasets")
pa = pytest.importorskip("pyarrow")
datasets.disable_progress_bars()

from datasets import Dataset, Features, Value  # noqa: E402

# `List` replaced `Sequence` for lists in datasets 4; `LargeList` exists since 2.20.
ListFeature = getattr(datasets, "List", None) or datasets.Sequence
LargeList = datasets.LargeList

ROWS = 2600  # > datasets' 1000-row writer batches: several record batches per file


def documents(n=ROWS, seed=0):
    """Documents of 0 to 11 tokens (every fifth empty) whose tokens count up, so every epoch
    window of their concatenation is distinct."""
    rng = np.random.default_rng(seed)
    out, t = [], 1
    for i in range(n):
        k = 0 if i % 5 == 0 else int(rng.integers(1, 12))
        out.append(list(range(t, t + k)))
        t += k
    return out


def token_lists(ds):
    """`ds["input_ids"]` as lists (datasets 4+ returns a lazy `Column`)."""
    return [list(d) for d in ds["input_ids"]]


def record_batches(path):
    with pa.memory_map(str(path)) as m:
        return list(pa.ipc.open_stream(m))


def data_files(directory):
    state = json.loads((directory / "state.json").read_text())
    return [directory / f["filename"] for f in state["_data_files"]]


@pytest.fixture(params=["int32", "int64", "large_int32"])
def saved(request, tmp_path):
    """A save_to_disk directory of two shards, several record batches each."""
    value = "int64" if request.param == "int64" else "int32"
    feature = LargeList(Value(value)) if request.param.startswith("large") else ListFeature(Value(value))
    ds = Dataset.from_dict({"input_ids": documents()}, features=Features({"input_ids": feature}))
    out = tmp_path / f"saved-{request.param}"
    ds.save_to_disk(str(out), num_shards=2)
    files = data_files(out)
    assert len(files) == 2 and all(len(record_batches(f)) >= 2 for f in files)
    arrow_type = record_batches(files[0])[0].schema.field("input_ids").type
    assert str(arrow_type.value_type) == value
    assert pa.types.is_large_list(arrow_type) == request.param.startswith("large")
    return out, datasets.load_from_disk(str(out))


@pytest.fixture()
def mapped(tmp_path):
    """A `.map`ped dataset whose cache file (small writer batches, the integer lists `datasets`
    infers from Python ints, a text column beside) is in tmp_path."""
    ds = Dataset.from_dict({"text": [str(d) for d in documents(700, seed=1)]})
    cache = tmp_path / "cache-tokenized.arrow"
    tokenized = ds.map(
        lambda b: {"input_ids": [[int(t) for t in s.strip("[]").split(", ") if t] for s in b["text"]]},
        batched=True,
        batch_size=64,
        writer_batch_size=50,
        cache_file_name=str(cache),
    )
    assert [f["filename"] for f in tokenized.cache_files] == [str(cache)]
    assert len(record_batches(cache)) >= 10
    arrow_type = record_batches(cache)[0].schema.field("input_ids").type
    assert pa.types.is_list(arrow_type) and pa.types.is_integer(arrow_type.value_type)
    return cache, tokenized


def show_json(osml, path, *extra):
    return json.loads(osml("data", "show", "--json", path, *extra).stdout)


def test_save_to_disk_directories_read_like_datasets(osml, saved):
    path, ds = saved
    want = token_lists(ds)
    assert want == documents()
    for extra in [(), ("--column", "input_ids")]:
        out = show_json(osml, path, *extra)
        assert out["documents"] == want
        assert len(out["documents"]) == ROWS
    info = json.loads(osml("data", "inspect", "--json", path).stdout)
    assert info["documents"] == len(ds)
    assert info["tokens"] == sum(map(len, want))
    assert info["dtype"] == ("int64" if "int64" in path.name else "int32")


def test_a_mapped_cache_file_reads_like_datasets(osml, mapped):
    cache, ds = mapped
    want = token_lists(ds)
    for extra in [(), ("--format", "arrow"), ("--format", "arrow", "--column", "input_ids")]:
        assert show_json(osml, cache, *extra)["documents"] == want
    # A window of documents, as `show --from --count` gives it.
    out = show_json(osml, cache, "--from", "123", "--count", "7")
    assert out["documents"] == want[123:130]


def test_the_text_column_is_refused_as_text(osml, mapped):
    cache, _ = mapped
    proc = osml("data", "show", cache, "--column", "text", check=False)
    assert proc.returncode == 1
    assert "text" in proc.stderr and "osml data pack" in proc.stderr
    proc = osml("data", "show", cache, "--column", "tokens", check=False)
    assert proc.returncode == 1
    assert '"text", "input_ids"' in proc.stderr and "--column" in proc.stderr


def test_a_dataset_dict_directory_is_refused_naming_its_splits(osml, tmp_path):
    dd = datasets.DatasetDict(
        {"train": Dataset.from_dict({"input_ids": [[1, 2]]}), "test": Dataset.from_dict({"input_ids": [[3]]})}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    proc = osml("data", "show", tmp_path / "dd", check=False)
    assert proc.returncode == 1
    assert '"train"' in proc.stderr and '"test"' in proc.stderr
    assert show_json(osml, tmp_path / "dd" / "train")["documents"] == [[1, 2]]


def epoch_windows(stream, seq_len):
    """The loader's epoch windows of a stream: window w is tokens [w*T, w*T + T + 1)."""
    return [tuple(stream[w * seq_len : w * seq_len + seq_len + 1]) for w in range((len(stream) - 1) // seq_len)]


def loader_covers_every_window_once(path, ds):
    osml_py = pytest.importorskip("osml")
    stream = [t for d in token_lists(ds) for t in d]
    seq_len, batch = 16, 4
    windows = epoch_windows(stream, seq_len)
    steps = len(windows) // batch
    loader = osml_py.TokenLoader(str(path), batch_size=batch, seq_len=seq_len, mode="epoch", column="input_ids", seed=3)
    seen = [tuple(int(t) for t in row) for _ in range(steps) for row in loader.next_batch()]
    assert len(seen) == len(set(seen)) == steps * batch
    assert set(seen) <= set(windows)
    # Every window but the remainder of the last incomplete batch.
    assert len(set(windows) - set(seen)) == len(windows) % batch


def test_token_loader_epoch_covers_every_window_of_a_saved_dataset_once(saved):
    loader_covers_every_window_once(*saved)


def test_token_loader_epoch_covers_every_window_of_a_cache_file_once(mapped):
    loader_covers_every_window_once(*mapped)
