"""The osml Python package: batches against numpy, zero copy, resume, torch, memory, errors."""

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import osml

N = 60_000  # token i has value i (uint16): every window is recognisable by its first token


@pytest.fixture()
def arange_bin(tmp_path):
    path = tmp_path / "arange.bin"
    np.arange(N, dtype=np.uint16).tofile(path)
    return path


def rows_are_windows(batch, seq_len):
    """Each row is T+1 consecutive tokens of the stream (the naive reference: np.arange)."""
    for row in batch:
        start = int(row[0])
        assert 0 <= start and start + seq_len + 1 <= N
        np.testing.assert_array_equal(row, np.arange(start, start + seq_len + 1))


@pytest.mark.parametrize("mode", ["random", "epoch"])
@pytest.mark.parametrize("dtype, np_dtype", [("int64", np.int64), ("int32", np.int32), ("source", np.uint16)])
def test_batches_equal_the_numpy_reference(arange_bin, mode, dtype, np_dtype):
    loader = osml.TokenLoader(arange_bin, batch_size=8, seq_len=32, mode=mode, dtype=dtype, workers=2)
    raw = np.memmap(arange_bin, dtype=np.uint16, mode="r")
    for _ in range(50):
        x, y = next(loader)
        assert x.shape == y.shape == (8, 32) and x.dtype == np_dtype
        for xi, yi in zip(x, y):
            start = int(xi[0])
            np.testing.assert_array_equal(xi, raw[start : start + 32])
            np.testing.assert_array_equal(yi, raw[start + 1 : start + 33])


def test_epoch_mode_visits_every_window_once_across_ranks(arange_bin):
    t = 100
    windows = (N - 1) // t
    steps = windows // 8
    seen = []
    ranks = [osml.TokenLoader(arange_bin, 4, t, mode="epoch", rank=r, world_size=2, seed=3) for r in range(2)]
    for _ in range(steps):
        for loader in ranks:
            batch = loader.next_batch()
            rows_are_windows(batch, t)
            seen.extend(int(s) for s in batch[:, 0])
    assert len(seen) == len(set(seen)) == steps * 8
    assert all(s % t == 0 for s in seen)


def test_batches_are_views_of_the_pool_and_buffers_are_reused(arange_bin):
    loader = osml.TokenLoader(arange_bin, 4, 64, workers=1, prefetch=2)
    regions = loader.buffers()
    addresses = set()
    for step in range(200):
        x, y = next(loader)
        address = x.__array_interface__["data"][0]
        assert any(a <= address < a + n for a, n in regions), "x lies in a pool buffer"
        assert y.__array_interface__["data"][0] == address + 8, "y is the same buffer, one token on"
        assert x.base is not None and not x.flags.owndata
        if step >= 20:
            addresses.add(address)
        del x, y
    pool = 2 + 1 + 1  # prefetch + workers + the one in the consumer's hands
    assert len(addresses) <= pool, "once warm, the same buffers come back"


def test_a_held_batch_keeps_its_buffer(arange_bin):
    loader = osml.TokenLoader(arange_bin, 2, 16, workers=1, prefetch=1)
    x, _ = next(loader)
    kept = x.copy()
    for _ in range(50):
        next(loader)
    np.testing.assert_array_equal(x, kept)


def test_state_dict_resumes_exactly(arange_bin):
    whole = osml.TokenLoader(arange_bin, 4, 16, mode="epoch", seed=5)
    expected = [whole.next_batch().copy() for _ in range(12)]
    first = osml.TokenLoader(arange_bin, 4, 16, mode="epoch", seed=5)
    for _ in range(5):
        first.next_batch()
    state = json.loads(json.dumps(first.state_dict()))
    resumed = osml.TokenLoader(arange_bin, 4, 16, mode="epoch", seed=5, workers=1)
    resumed.load_state_dict(state)
    for i in range(5, 12):
        np.testing.assert_array_equal(resumed.next_batch(), expected[i])
    with pytest.raises(ValueError):
        resumed.load_state_dict({"something": 1})


def test_rank_and_world_size_come_from_the_environment(arange_bin, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    loader = osml.TokenLoader(arange_bin, 2, 8)
    assert (loader.rank, loader.world_size) == (1, 3)
    assert loader.state_dict()["osml_loader"]["global_batch"] == 6


def _loader_thread_cpus():
    """Cpus_allowed_list of this process's osml-loader-N threads, by thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/status") as f:
                allowed = next(l.split()[1] for l in f if l.startswith("Cpus_allowed_list"))
        except (FileNotFoundError, StopIteration):
            continue
        if name.startswith("osml-loader-") and name[len("osml-loader-"):].isdigit():
            out[tid] = allowed
    return out


def test_loader_cpus_come_from_osml_run(arange_bin, monkeypatch):
    cpu = max(os.sched_getaffinity(0))
    monkeypatch.setenv("OSML_LOADER_CPUS", str(cpu))
    before = _loader_thread_cpus()
    loader = osml.TokenLoader(arange_bin, batch_size=2, seq_len=8, workers=2)
    next(loader)
    # A worker names itself, then pins itself, when the OS first runs it: wait for both.
    deadline = time.monotonic() + 10
    while True:
        new = {tid: cpus for tid, cpus in _loader_thread_cpus().items() if tid not in before}
        if (len(new) == 2 and set(new.values()) == {str(cpu)}) or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert len(new) == 2 and set(new.values()) == {str(cpu)}, new
    monkeypatch.setenv("OSML_LOADER_CPUS", "x-y")
    with pytest.raises(ValueError, match="OSML_LOADER_CPUS"):
        osml.TokenLoader(arange_bin, batch_size=2, seq_len=8)


def test_errors_are_typed(tmp_path, arange_bin):
    with pytest.raises(FileNotFoundError):
        osml.TokenLoader(tmp_path / "missing.bin", 1, 1)
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(osml.InvalidDatasetError, match="whole number"):
        osml.TokenLoader(tmp_path / "odd.bin", 1, 1)
    assert issubclass(osml.InvalidDatasetError, osml.OsmlError)
    # A directory is a source of the dataset files in it; one with none is invalid.
    (tmp_path / "empty").mkdir()
    with pytest.raises(osml.InvalidDatasetError, match="holds no dataset file"):
        osml.TokenLoader(tmp_path / "empty", 1, 1, format="bin")
    with pytest.raises(ValueError, match="batch size"):
        osml.TokenLoader(arange_bin, 0, 8)
    with pytest.raises(ValueError, match="rank 2"):
        osml.TokenLoader(arange_bin, 1, 8, rank=2, world_size=2)
    with pytest.raises(ValueError, match="needs"):
        osml.TokenLoader(arange_bin, 1, N)
    with pytest.raises(ValueError, match="mode"):
        osml.TokenLoader(arange_bin, 1, 8, mode="shuffle")


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def memory_kib():
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return fields


def test_rss_stays_flat_over_a_long_iteration(tmp_path, capsys):
    """30,000 random batches from a 64 MiB file: the loader's own memory (anonymous RSS) does
    not grow past the buffer pool; mapped dataset pages (file RSS: page cache, shared and
    reclaimable) grow at most to the file's size."""
    path = tmp_path / "big.bin"
    np.random.default_rng(0).integers(0, 50_000, size=32 << 20, dtype=np.uint16).tofile(path)
    loader = osml.TokenLoader(path, 8, 256, workers=1)
    for _ in range(2_000):
        x, y = next(loader)
    del x, y
    gc.collect()
    before = memory_kib()
    for _ in range(30_000):
        x, y = next(loader)
    del x, y
    gc.collect()
    after = memory_kib()
    anon = (after["RssAnon"] - before["RssAnon"]) * 1024
    file = (after["RssFile"] - before["RssFile"]) * 1024
    with capsys.disabled():
        print(f"\nover 30,000 batches after warm-up: anonymous RSS {anon / 2**20:+.1f} MiB, file-mapped RSS {file / 2**20:+.1f} MiB (file: 64 MiB)")
    assert anon < 2 << 20
    assert file <= 64 << 20


def test_doctor_returns_the_cli_json():
    report = osml.doctor()
    assert report["schema_version"] == 1
    # Every check the CLI lists, in its order.
    listed = subprocess.run([os.environ.get("OSML_BIN", "osml"), "doctor", "--list"], check=True,
                            capture_output=True, text=True).stdout.split("\n")
    ids = [line.split()[0] for line in listed if line.strip()]
    # The watch.* checks judge a window (`osml doctor --watch`), which a snapshot has not.
    watch = [i for i in ids if i.startswith("watch.")]
    assert watch == ["watch.pci_link", "watch.kernel_log", "watch.pressure"]
    assert [f["id"] for f in report["findings"]] == [i for i in ids if i not in watch]
    assert report["profile"]["name"] == "training"
    with pytest.raises(ValueError, match="unknown profile"):
        osml.doctor("gaming")


torch = pytest.importorskip("torch")


def test_torch_tensors_share_the_buffer(arange_bin):
    from osml.torch import TorchTokenLoader

    loader = TorchTokenLoader(arange_bin, 4, 32)
    x, y = next(loader)
    assert x.dtype == torch.int64 and x.shape == (4, 32)
    assert y.data_ptr() == x.data_ptr() + 8
    assert any(a <= x.data_ptr() < a + n for a, n in loader.buffers())
    torch.testing.assert_close(y[:, :-1], x[:, 1:])


def test_pin_memory_without_cuda_warns_and_works(arange_bin):
    from osml.torch import TorchTokenLoader

    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by the GPU check (benchmarks/gpu_pin.py)")
    with pytest.warns(UserWarning, match="CUDA is not available"):
        loader = TorchTokenLoader(arange_bin, 2, 8, pin_memory=True)
    x, _ = next(loader)
    assert not loader.pinned and x.shape == (2, 8)


def test_iterable_dataset_in_a_dataloader(arange_bin):
    from torch.utils.data import DataLoader

    from osml.torch import TokenIterableDataset

    dl = DataLoader(TokenIterableDataset(arange_bin, 4, 16, mode="epoch"), batch_size=None, num_workers=0)
    for i, (x, y) in enumerate(dl):
        assert x.shape == (4, 16)
        torch.testing.assert_close(y[:, :-1], x[:, 1:])
        if i == 5:
            break


def test_nanogpt_style_training_loop(tmp_path, osml_bin):
    """A tiny GPT-like model trains a few CPU steps on a dataset made by `osml data pack`."""
    text = "".join(f"The {i % 7} quick brown foxes jump over {i % 5} lazy dogs.\n" for i in range(2000))
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    subprocess.run([osml_bin, "data", "pack", tmp_path / "corpus.txt", "-o", tmp_path / "train", "--tokenizer", "bytes", "--txt-documents", "line"], check=True)
    from osml.torch import TorchTokenLoader

    torch.manual_seed(0)
    vocab, width, t = 257, 32, 64
    model = torch.nn.Sequential(torch.nn.Embedding(vocab, width), torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, vocab))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loader = TorchTokenLoader(tmp_path / "train", batch_size=16, seq_len=t, seed=1)
    losses = []
    for _ in range(40):
        x, y = next(loader)
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses


def test_torchrun_two_ranks_disjoint_and_resumable(tmp_path, arange_bin):
    worker = Path(__file__).with_name("torchrun_worker.py")
    out = tmp_path / "out"
    out.mkdir()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(worker), str(arange_bin), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    first = [set(r["first_run"]) for r in ranks]
    assert first[0] and first[1] and not first[0] & first[1], "ranks see disjoint samples"
    for r in ranks:
        assert r["resumed"] == r["first_run"][r["stop"] * 4 :], "resumed batches equal the uninterrupted ones"
