"""Mixtures through the Python package: every way of writing one reads the same sequence;
shares stay within one sample of the weights; document fields equal a reference computed with
megatron-core's reader and with numpy; splits cover the documents megatron-core's builder
gives each split; resume_check finds no duplicate, drop or divergence across kill/resume
cycles with changing world size and workers, and does find them in a loader that resumes
wrong; bad weights, sources, subsets and mixture files are clear errors."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

import osml
from osml import Mixture, TokenLoader
from osml.testing import resume_check, sample_ids

torch = pytest.importorskip("torch", reason="megatron-core needs torch (scripts/python-tests.sh installs it)")
from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder  # noqa: E402

T = 16


def megatron(prefix, tag, n_tokens, seed):
    """A Megatron dataset built by megatron-core: documents of 1..60 tokens, token values
    tag*10000 + position (a row names its source, and no two windows are alike, so a digest
    of a row's tokens names the sample)."""
    rng = np.random.default_rng(seed)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    at = 0
    while at < n_tokens:
        n = int(rng.integers(1, 61))
        assert at + n < 10_000
        doc = tag * 10_000 + np.arange(at, at + n)
        builder.add_item(torch.tensor(doc, dtype=torch.int64))
        builder.end_document()
        at += n
    builder.finalize(f"{prefix}.idx")
    return str(prefix)


@pytest.fixture()
def sources(tmp_path):
    return [megatron(tmp_path / name, i + 1, n, i) for i, (name, n) in enumerate([("web", 6000), ("code", 9000), ("books", 2500)])]


def origins(loader, steps):
    out = []
    for _ in range(steps):
        b = next(loader)
        out.extend(zip(b.sources.tolist(), b.offsets.tolist()))
    return out


def test_every_form_of_a_mixture_reads_the_same_sequence(sources, tmp_path):
    web, code, books = sources
    weights = [0.5, 0.3, 0.2]
    forms = {
        "dict": {web: 0.5, code: 0.3, books: 0.2},
        "Mixture": Mixture([(web, 0.5), (code, 0.3), (books, 0.2)]),
        "blend string": f"0.5 {web} 0.3 {code} 0.2 {books}",
    }
    (tmp_path / "mix.json").write_text(
        json.dumps({"sources": [{"path": p, "weight": w} for p, w in zip(sources, weights)]})
    )
    (tmp_path / "mix.toml").write_text(
        "".join(f'[[sources]]\npath = "{p}"\nweight = {w}\n' for p, w in zip(sources, weights))
    )
    forms["json file"] = str(tmp_path / "mix.json")
    forms["toml file"] = str(tmp_path / "mix.toml")
    seqs = {k: origins(TokenLoader(v, 4, T, mode="epoch", seed=3, documents=True), 50) for k, v in forms.items()}
    first = seqs.pop("dict")
    for name, seq in seqs.items():
        assert seq == first, name
    # Every row holds its source's tokens.
    loader = TokenLoader(forms["dict"], 4, T, documents=True)
    b = next(loader)
    assert ((b.x // 10_000) == (b.sources[:, None] + 1)).all()


def test_shares_stay_within_one_sample_of_the_weights(sources):
    weights = [0.5, 0.3, 0.2]
    loader = TokenLoader(Mixture(list(zip(sources, weights))), 7, T, documents=True, mode="epoch")
    counts = np.zeros(3)
    n = 0
    for _ in range(400):
        for s in next(loader).sources:
            counts[s] += 1
            n += 1
            assert np.all(np.abs(counts - np.array(weights) * n) < 1), (n, counts)
    stats = loader.stats()["sources"]
    assert [s["samples"] for s in stats] == counts.astype(int).tolist()
    assert [s["weight"] for s in stats] == weights


def test_plan_says_how_often_each_source_repeats(sources, osml):
    loader = TokenLoader({p: 1 for p in sources}, 4, T, mode="epoch")
    plan = loader.plan(tokens=3_000_000)
    samples = 3_000_000 // T
    assert sum(p["samples"] for p in plan) == samples
    for p in plan:
        windows = (p["tokens"] - 1) // T
        assert p["windows"] == windows
        assert p["epochs"] == pytest.approx(p["samples"] / windows)
    # The smallest source repeats the most.
    assert max(plan, key=lambda p: p["epochs"])["name"] == sources[2]
    # The CLI says the same.
    blend = " ".join(f"1 {p}" for p in sources)
    info = json.loads(osml("data", "inspect", blend, "--tokens", "3M", "--seq-len", T, "--json").stdout)
    assert [s["epochs"] for s in info["run"]["sources"]] == [p["epochs"] for p in plan]


def reference_fields(starts, off):
    """position_ids and cu_seqlens of the window at `off` from the document starts."""
    cut = [0] + [int(s - off) for s in starts if off < s < off + T] + [T]
    pos = np.concatenate([np.arange(b - a) for a, b in zip(cut, cut[1:])])
    cu = np.full(T + 1, -1, dtype=np.int32)
    cu[: len(cut)] = cut
    return pos, cu


def test_document_fields_equal_megatron_cores_boundaries(sources):
    starts = []
    for prefix in sources:
        ds = IndexedDataset(prefix)
        lengths = ds.sequence_lengths.astype(np.int64)
        starts.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    loader = TokenLoader({p: 1 for p in sources}, 6, T, documents=True, seed=2)
    on_boundary = 0
    for _ in range(100):
        b = next(loader)
        assert b.position_ids.dtype == np.int32 and b.cu_seqlens.dtype == np.int32
        for r in range(6):
            s, off = int(b.sources[r]), int(b.offsets[r])
            pos, cu = reference_fields(starts[s], off)
            np.testing.assert_array_equal(b.position_ids[r], pos)
            np.testing.assert_array_equal(b.cu_seqlens[r], cu)
            on_boundary += off in starts[s] or off + T in starts[s]
        packed = b.packed_cu_seqlens()
        rows = [r * T + c[c >= 0][:-1] for r, c in enumerate(b.cu_seqlens)]
        np.testing.assert_array_equal(packed, np.concatenate(rows + [[6 * T]]))
    assert on_boundary > 0


def test_cu_seqlens_stay_right_after_callers_write_into_them(sources):
    """The loader keeps each buffer's -1 padding from one use to the next and resets only
    the slots that held boundaries. A caller who writes into a batch's cu_seqlens in place
    (flattening, or padding with T) must not see that in later batches from the same buffer:
    over many more steps than the pool has buffers, every batch equals the reference."""
    starts = []
    for prefix in sources:
        ds = IndexedDataset(prefix)  # its lengths view its mapping: keep it while copying them
        lengths = ds.sequence_lengths.astype(np.int64)
        starts.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    rows = 10  # more than the loader prepares ahead of the row it writes
    loader = TokenLoader({p: 1 for p in sources}, rows, T, documents=True, seed=5, prefetch=2)
    appended = 0
    for step in range(300):
        b = next(loader)
        for r in range(rows):
            pos, cu = reference_fields(starts[int(b.sources[r])], int(b.offsets[r]))
            np.testing.assert_array_equal(b.cu_seqlens[r], cu, err_msg=f"step {step} row {r}")
            np.testing.assert_array_equal(b.position_ids[r], pos)
        if step % 4 == 0:
            b.cu_seqlens += np.arange(rows, dtype=np.int32)[:, None] * T
        elif step % 4 == 1:
            b.cu_seqlens[b.cu_seqlens < 0] = T
        elif step % 4 == 2:
            # A boundary appended in the first padding slot, the last one left at -1.
            for r in range(rows):
                k = int((b.cu_seqlens[r] >= 0).sum())
                if k + 1 < T + 1:
                    b.cu_seqlens[r, k] = T
                    appended += 1
        del b
    assert appended > 0


def test_document_fields_from_an_eod_token(tmp_path):
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 500, int(rng.integers(1, 40))) for _ in range(300)]
    stream = np.concatenate([np.append(d, 0) for d in docs]).astype(np.uint16)
    stream.tofile(tmp_path / "r.bin")
    starts = np.concatenate([[0], np.flatnonzero(stream == 0)[:-1] + 1])
    loader = TokenLoader(str(tmp_path / "r.bin"), 4, T, documents=True, eod_token=0, mode="epoch", dtype="int32")
    for _ in range(30):
        b = next(loader)
        assert b.position_ids.dtype == np.int32
        for r in range(4):
            pos, cu = reference_fields(starts, int(b.offsets[r]))
            np.testing.assert_array_equal(b.position_ids[r], pos)
            np.testing.assert_array_equal(b.cu_seqlens[r], cu)


def test_splits_cover_the_documents_megatron_core_gives_each_split(sources, osml):
    """megatron-core's own split functions, and the rounding its builder applies
    (BlendedMegatronDatasetBuilder._build_megatron_dataset_splits: round(bookend * number of
    sequences)); the builder itself needs a process group and a cache on rank 0."""
    from megatron.core.datasets.blended_megatron_dataset_config import (
        convert_split_vector_to_split_matrix,
        parse_and_normalize_split,
    )

    prefix = sources[1]
    n = len(IndexedDataset(prefix).sequence_lengths)
    covered = []
    for text in ["969,30,1", "98,2", "1,1,1", "100,0,0"]:
        matrix = convert_split_vector_to_split_matrix(parse_and_normalize_split(text))
        for subset, bookends in zip(["train", "valid", "test"], matrix):
            theirs = [] if bookends is None else list(range(int(round(bookends[0] * n)), int(round(bookends[1] * n))))
            proc = osml("data", "inspect", prefix, "--split", text, "--subset", subset, "--json", check=False)
            if not theirs:
                assert proc.returncode == 2 and "holds none" in proc.stderr, (text, subset)
                continue
            src = json.loads(proc.stdout)["sources"][0]
            ours = list(range(src["first_document"], src["first_document"] + src["documents"]))
            assert ours == theirs, (text, subset)
            if text == "969,30,1":
                covered += ours
                # The loader reads only that subset's tokens, the same on every run.
                a = origins(TokenLoader(prefix, 2, T, split=text, subset=subset, documents=True), 20)
                b = origins(TokenLoader(prefix, 2, T, split=text, subset=subset, documents=True), 20)
                assert a == b
    assert covered == list(range(n))


def make_factory(mix, global_batch=8, **kw):
    def make(rank, world_size, workers):
        return TokenLoader(mix, global_batch // world_size, T, rank=rank, world_size=world_size, workers=workers, **kw)

    return make


@pytest.mark.parametrize("documents", [True, False])
def test_resume_check_finds_nothing_wrong_with_osml(sources, documents):
    mix = Mixture(list(zip(sources, [0.5, 0.3, 0.2])))
    report = resume_check(
        make_factory(mix, mode="epoch", documents=documents),
        steps=80,
        cycles=4,
        world_sizes=[1, 2, 4, 8],
        workers=[1, 2, 3, 4],
        seed=7,
    )
    assert (report["duplicates"], report["drops"], report["diverged"]) == (0, 0, 0), report
    assert report["samples"] == 80 * 8
    assert [s["world_size"] for s in report["stops"]] == [1, 2, 4, 8, 1]


def test_resume_is_exact_after_a_weight_change(sources):
    mix = Mixture(list(zip(sources, [0.5, 0.3, 0.2])))
    a = TokenLoader(mix, 4, T, documents=True, mode="epoch")
    seq = origins(a, 5)
    a.set_weights({sources[0]: 0, sources[1]: 1, sources[2]: 1})
    state = a.state_dict()
    seq += origins(a, 10)
    assert all(s != 0 for s, _ in seq[20:])
    b = TokenLoader(mix, 2, T, documents=True, mode="epoch", world_size=2, rank=0, workers=3)
    c = TokenLoader(mix, 2, T, documents=True, mode="epoch", world_size=2, rank=1, workers=1)
    # The record's weights win over the configured 0.5/0.3/0.2, and the loader says so.
    for loader in (b, c):
        with pytest.warns(osml.RestoredWeightsWarning, match="sample 20 with weights 0:1:1 .* configured 5:3:2"):
            loader.load_state_dict(state)
    resumed = []
    for _ in range(10):
        resumed += origins(b, 1) + origins(c, 1)
    assert resumed == seq[20:]
    history = state["osml_loader"]["mixture"]["weights"]
    assert history == [{"start": 0, "shares": [5, 3, 2]}, {"start": 20, "shares": [0, 1, 1]}]
    # A schedule written in the mixture gives the same sequence as the call.
    scheduled = TokenLoader(
        Mixture(list(zip(sources, [0.5, 0.3, 0.2])), schedule=[(5, [0, 1, 1])]), 4, T, documents=True, mode="epoch"
    )
    assert origins(scheduled, 15) == seq
    # Configured with that schedule, the same state restores without a warning (pytest
    # turns warnings into errors).
    quiet = TokenLoader(
        Mixture(list(zip(sources, [0.5, 0.3, 0.2])), schedule=[(5, [0, 1, 1])]), 4, T, documents=True, mode="epoch"
    )
    quiet.load_state_dict(state)
    assert origins(quiet, 10) == seq[20:]


class OffByOne:
    """A loader whose restore skips one batch: what resume_check must catch."""

    def __init__(self, inner):
        self.inner = inner

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.inner)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)
        next(self.inner)


def test_resume_check_reports_drops_and_divergence_in_a_loader_that_resumes_wrong(sources):
    inner = make_factory({p: 1 for p in sources})
    report = resume_check(lambda **kw: OffByOne(inner(**kw)), steps=30, cycles=2, world_sizes=[1], workers=[1])
    assert report["drops"] > 0 and report["diverged"] > 0, report
    assert report["drop_examples"]
    # Identity from token contents, for loaders without document fields.
    x = np.arange(12).reshape(3, 4)
    assert len(set(sample_ids((x[:, :-1], x[:, 1:])))) == 3


def test_torch_loader_delivers_document_fields_as_tensors(sources):
    from osml.torch import TorchTokenLoader

    loader = TorchTokenLoader({p: 1 for p in sources}, 4, T, documents=True)
    b = next(loader)
    assert isinstance(b.x, torch.Tensor) and b.x.dtype == torch.int64
    assert b.position_ids.shape == (4, T) and b.cu_seqlens.dtype == torch.int32
    assert b.sources.shape == (4,)
    packed = b.packed_cu_seqlens()
    cu = b.cu_seqlens.numpy()
    rows = [r * T + c[c >= 0][:-1] for r, c in enumerate(cu)]
    np.testing.assert_array_equal(packed.numpy(), np.concatenate(rows + [[4 * T]]))
    x, y = next(loader)  # a Documents unpacks as (x, y)
    assert torch.equal(x[:, 1:], y[:, :-1])
    # Every field equals the numpy loader's, batch for batch.
    tensors = TorchTokenLoader({p: 1 for p in sources}, 4, T, documents=True, seed=3)
    arrays = TokenLoader({p: 1 for p in sources}, 4, T, documents=True, seed=3)
    for _ in range(20):
        t, a = next(tensors), next(arrays)
        for name in ("x", "y", "position_ids", "cu_seqlens", "sources", "offsets"):
            np.testing.assert_array_equal(getattr(t, name).numpy(), getattr(a, name), err_msg=name)


def test_position_ids_can_be_left_out(sources):
    """position_ids=False: the same batches with the other fields, positions None, from
    numpy and torch (on a device too: the copy path skips the missing field)."""
    from osml.torch import TorchTokenLoader

    mix = {p: 1 for p in sources}
    full = TokenLoader(mix, 5, T, documents=True, seed=4)
    loaders = [
        TokenLoader(mix, 5, T, documents=True, position_ids=False, seed=4),
        TorchTokenLoader(mix, 5, T, documents=True, position_ids=False, seed=4),
        TorchTokenLoader(mix, 5, T, documents=True, position_ids=False, seed=4, device="cpu"),
    ]
    for _ in range(30):
        want = next(full)
        for loader in loaders:
            b = next(loader)
            assert b.position_ids is None
            for name in ("x", "y", "cu_seqlens", "sources", "offsets"):
                got = getattr(b, name)
                got = got.numpy() if isinstance(got, torch.Tensor) else got
                np.testing.assert_array_equal(got, getattr(want, name), err_msg=name)
    # The state resumes such a loader as any other.
    state = loaders[0].state_dict()
    again = TokenLoader(mix, 5, T, documents=True, position_ids=False, seed=4)
    again.load_state_dict(state)
    np.testing.assert_array_equal(next(again).cu_seqlens, next(loaders[0]).cu_seqlens)
    with pytest.raises(ValueError, match="needs documents=True"):
        TokenLoader(mix, 5, T, position_ids=False)


@pytest.mark.parametrize(
    "weights, want",
    [
        ([-1, 1, 1], "is negative"),
        ([0, 0, 0], "are all zero"),
        ([float("nan"), 1, 1], "not a finite number"),
        ([float("inf"), 1, 1], "not a finite number"),
    ],
)
def test_bad_weights_are_value_errors_naming_the_source(sources, weights, want):
    with pytest.raises(ValueError, match=want) as e:
        TokenLoader(Mixture(list(zip(sources, weights))), 2, T)
    if want != "are all zero":
        assert "source " + sources[0] in str(e.value)


def test_numpy_weights_are_their_values(sources):
    """Weights computed with numpy (``counts / counts.sum()``) are numpy scalars."""
    counts = np.array([3, 2, 1], dtype=np.int64)
    def drawn(weights, steps):
        loader = TokenLoader(Mixture(list(zip(sources, weights))), 6, T, seed=1, documents=True)
        return [tuple(next(loader).sources) for _ in range(steps)]

    want = drawn([3, 2, 1], 5)
    assert drawn(list(counts), 5) == want
    assert drawn(list(counts.astype(np.float32)), 5) == want
    # 1/2, 1/3 and 1/6 as doubles: shares rounded to the longest period, each moved by about
    # 10^-5 of itself (no warning), still within 1 sample.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = np.array(drawn(list(counts / counts.sum()), 100)).ravel()
    assert np.all(np.abs(np.bincount(rows, minlength=3) - np.array([300, 200, 100])) <= 1)


def test_rounded_weights_are_said_and_exact_ones_are_not(sources):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader = TokenLoader({sources[0]: 0.7, sources[1]: 0.2, sources[2]: 0.1}, 2, T)
        loader.set_weights([1, 2, 3])
        # Rounded, but by far less than the tolerance: token counts as weights.
        loader.set_weights([123_456_789, 987_654_321, 55_555_555])
        assert 0 < loader._loader.weights_rounding() < osml.ROUNDING_TOLERANCE
    # 1e-9 beside 1 keeps one share of 2^18: 2^18·10^-9 was asked for.
    with pytest.warns(osml.RoundedWeightsWarning, match=r"by up to 7628\d\d\.\d\d% of itself"):
        loader.set_weights([1, 1e-9, 1])
    with pytest.warns(osml.RoundedWeightsWarning, match="rounded"):
        TokenLoader({sources[0]: 1, sources[1]: 1e-9}, 2, T)
    # A third off: 1.5 shares of 2^18 asked for, 1 given (the tie of halves goes to the first).
    with pytest.warns(osml.RoundedWeightsWarning, match="by up to 33.33%"):
        TokenLoader({sources[0]: 2**18 - 1.5, sources[1]: 1.5}, 2, T)


def test_bad_sources_subsets_and_files_are_clear_errors(sources, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        TokenLoader({sources[0]: 1, str(tmp_path / "missing"): 1}, 2, T)
    with pytest.raises(ValueError, match="'train', 'valid' or 'test'"):
        TokenLoader(sources[0], 2, T, split="9,1", subset="dev")
    with pytest.raises(ValueError, match="needs a split"):
        TokenLoader(sources[0], 2, T, subset="valid")
    with pytest.raises(ValueError, match="holds none"):
        TokenLoader(sources[0], 2, T, split="100,0,0", subset="valid")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sources]]\npath = 3\n")
    with pytest.raises(osml.InvalidDatasetError, match="bad.toml: not a valid mixture"):
        TokenLoader(str(bad), 2, T)
    with pytest.raises(TypeError):
        Mixture([(sources[0], True)])
    with pytest.raises(TypeError):
        Mixture([(sources[0], np.True_)])
    for bad_schedule, why in [([(-1, [1, 1])], "from 1 on"), ([(0, [1, 1])], "from 1 on"), ([(5, [1, 1]), (5, [1, 2])], "must increase")]:
        with pytest.raises(ValueError, match=why):
            Mixture([(sources[0], 1), (sources[1], 1)], schedule=bad_schedule)
    with pytest.raises(ValueError, match="0 or more tokens"):
        TokenLoader({p: 1 for p in sources}, 2, T).plan(-5)
    unordered = tmp_path / "unordered.toml"
    unordered.write_text(
        "".join(f'[[sources]]\npath = "{p}"\nweight = 1\n' for p in sources)
        + "[[schedule]]\nstep = 9\nweights = [1, 1, 1]\n[[schedule]]\nstep = 3\nweights = [1, 2, 1]\n"
    )
    with pytest.raises(osml.InvalidDatasetError, match="unordered.toml.*step 3 follows step 9"):
        TokenLoader(str(unordered), 2, T)
    with pytest.raises(ValueError, match="given twice"):
        TokenLoader(Mixture([(sources[0], 1), (sources[0], 1)]), 2, T)
    loader = TokenLoader({p: 1 for p in sources}, 2, T)
    with pytest.raises(ValueError, match="no source named 'nope'"):
        loader.set_weights({"nope": 1})
    import pathlib

    loader.set_weights({pathlib.Path(p): 1 for p in sources})  # paths as keys
    with pytest.raises(ValueError, match="one source has no weights"):
        TokenLoader(sources[0], 2, T).set_weights([1])


def test_state_of_a_mixture_refuses_other_sources(sources):
    a = TokenLoader({p: 1 for p in sources}, 2, T)
    next(a)
    state = a.state_dict()
    with pytest.raises(ValueError, match="cannot restore it here"):
        TokenLoader({p: 1 for p in sources[:2]}, 2, T).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot restore it here"):
        TokenLoader(sources[0], 2, T).load_state_dict(state)


def test_resume_across_real_processes_with_torchrun(sources, tmp_path):
    """Two ranks under torchrun take a state at step 7; two new processes restore it with
    one rank each of a world of 2 (other worker counts) and continue: together, the sequence
    one process reads uninterrupted."""
    script = tmp_path / "rank.py"
    script.write_text(
        "import json, os, sys\n"
        "import osml\n"
        "mix = json.loads(sys.argv[1]); out = sys.argv[2]; state = sys.argv[3] if len(sys.argv) > 3 else None\n"
        "rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])\n"
        "l = osml.TokenLoader(mix, 8 // world, 16, documents=True, mode='epoch', workers=1 + rank)\n"
        "if state: l.load_state_dict(json.load(open(state)))\n"
        "rows = []\n"
        "for _ in range(7):\n"
        "    b = next(l); rows.append(list(zip(b.sources.tolist(), b.offsets.tolist())))\n"
        "json.dump({'rows': rows, 'state': l.state_dict()}, open(f'{out}.{rank}', 'w'))\n"
    )
    mix = json.dumps({p: w for p, w in zip(sources, [0.5, 0.3, 0.2])})
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "0", str(script), mix]
    subprocess.run([*run, str(tmp_path / "first")], check=True, capture_output=True)
    first = [json.loads((tmp_path / f"first.{r}").read_text()) for r in range(2)]
    (tmp_path / "state.json").write_text(json.dumps(first[0]["state"]))
    subprocess.run([*run, str(tmp_path / "second"), str(tmp_path / "state.json")], check=True, capture_output=True)
    second = [json.loads((tmp_path / f"second.{r}").read_text()) for r in range(2)]
    got = []
    for part in (first, second):
        for step in range(7):
            for r in range(2):
                got += [tuple(x) for x in part[r]["rows"][step]]
    ref = origins(TokenLoader(json.loads(mix), 8, 16, documents=True, mode="epoch"), 14)
    assert got == ref
