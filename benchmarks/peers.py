"""The peers of loaders.py in their own formats, built from its token file before any timing.

Each format lies under the run's temporary directory; each loader here returns the peer's
own loader object (iterable, and with ``state_dict``/``load_state_dict`` where the peer has
them) and ``xy`` turns its batches into the int64 ``x, y`` of shape ``[B, T]``.

- ``litdata/``: ``litdata.optimize`` with ``TokensLoader``, read as blocks of ``T + 1`` tokens.
- ``mds/``: MosaicML Streaming MDS, one column ``tokens`` of ``ndarray:uint16:T+1``.
- ``arrow/``: HF datasets ``save_to_disk``, one column ``input_ids`` of ``T + 1`` tokens.
- ``mix_a``, ``mix_b``, ``mix_c`` (``.bin``/``.idx``): the file's documents cut in three
  parts of about equal tokens, as Megatron prefixes; ``litdata_mix/{a,b,c}/`` their litdata
  form.

The peers store samples, not a token stream: litdata, MDS and Arrow hold the file's
consecutive, non-overlapping windows of ``T + 1`` tokens (the tail shorter than a window is
dropped), each chunk of litdata's holding ``CHUNK_WINDOWS`` whole windows.
"""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np

#: Windows per litdata chunk: 2 MiB of uint16 tokens when T = 1024, a few chunks per worker
#: even on the small files of --resume-check.
CHUNK_WINDOWS = 1024
MIX_PARTS = ("a", "b", "c")
MIX_WEIGHTS = (0.7, 0.2, 0.1)


# --------------------------------------------------------------------------- formats


def _litdata_chunk(path: str, window: int, per_chunk: int, windows: int, k: int) -> np.ndarray:
    """Chunk ``k`` of ``path`` for ``litdata.optimize``: ``per_chunk`` windows as one 1-D array
    (a module-level function: optimize's workers are spawned and unpickle it)."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    stop = min((k + 1) * per_chunk, windows)
    return np.array(data[k * per_chunk * window : stop * window])


def _windows(path: str, window: int) -> np.ndarray:
    """The consecutive windows of ``window`` tokens of a uint16 file, ``[n, window]`` (a view)."""
    data = np.memmap(path, dtype=np.uint16, mode="r")
    n = len(data) // window
    return data[: n * window].reshape(n, window)


def build_litdata(path: str, out: Path, seq_len: int) -> None:
    from litdata import TokensLoader, optimize

    window = seq_len + 1
    windows = len(np.memmap(path, dtype=np.uint16, mode="r")) // window
    chunks = math.ceil(windows / CHUNK_WINDOWS)
    optimize(
        fn=functools.partial(_litdata_chunk, path, window, CHUNK_WINDOWS, windows),
        inputs=list(range(chunks)),
        output_dir=str(out),
        chunk_size=CHUNK_WINDOWS * window,
        item_loader=TokensLoader(),
        num_workers=1,  # the machine's other cores are not ours to take, and order is kept
        reorder_files=False,
        verbose=False,
    )


def build_mds(path: str, out: Path, seq_len: int) -> None:
    from streaming import MDSWriter

    with MDSWriter(out=str(out), columns={"tokens": f"ndarray:uint16:{seq_len + 1}"}) as writer:
        for row in _windows(path, seq_len + 1):
            writer.write({"tokens": np.asarray(row)})


def build_arrow(path: str, out: Path, seq_len: int) -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"input_ids": np.asarray(_windows(path, seq_len + 1))}).save_to_disk(str(out))


def read_lengths(prefix: str) -> np.ndarray:
    """The document lengths of a Megatron ``.idx`` (version 1)."""
    with open(prefix + ".idx", "rb") as f:
        head = f.read(34)
        count = int(np.frombuffer(head[18:26], dtype="<u8")[0])
        return np.frombuffer(f.read(4 * count), dtype="<i4").astype(np.int64)


def write_megatron(prefix: str, tokens: np.ndarray, lengths: np.ndarray) -> None:
    """uint16 ``tokens`` as ``prefix.bin`` and the Megatron ``.idx`` of their documents."""
    tokens.tofile(prefix + ".bin")
    s = len(lengths)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(np.array([1], dtype="<u8").tobytes())
        f.write(np.array([8], dtype="<u1").tobytes())
        f.write(np.array([s, s + 1], dtype="<u8").tobytes())
        f.write(lengths.astype("<i4").tobytes())
        f.write((np.concatenate([[0], np.cumsum(lengths)[:-1]]) * 2).astype("<i8").tobytes())
        f.write(np.arange(s + 1, dtype="<i8").tobytes())


def mix_prefixes(work: Path) -> list[str]:
    return [str(work / f"mix_{p}") for p in MIX_PARTS]


def build_mix(prefix: str, work: Path) -> None:
    """The documents of ``prefix`` cut into three Megatron prefixes of about equal tokens."""
    data = np.memmap(prefix + ".bin", dtype=np.uint16, mode="r")
    lengths = read_lengths(prefix)
    ends = np.cumsum(lengths)
    cuts = [0, *(int(np.searchsorted(ends, len(data) * k // 3)) + 1 for k in (1, 2)), len(lengths)]
    for out, lo, hi in zip(mix_prefixes(work), cuts, cuts[1:]):
        start = int(ends[lo - 1]) if lo else 0
        write_megatron(out, np.asarray(data[start : int(ends[hi - 1])]), lengths[lo:hi])


def build_litdata_mix(work: Path, seq_len: int) -> None:
    for part, prefix in zip(MIX_PARTS, mix_prefixes(work)):
        build_litdata(prefix + ".bin", work / "litdata_mix" / part, seq_len)


def build(fmt: str, prefix: str, work: Path, seq_len: int) -> None:
    """Builds format ``fmt`` (a key of ``FORMATS``) under ``work``."""
    if fmt == "mix":
        build_mix(prefix, work)
    elif fmt == "litdata_mix":
        build_litdata_mix(work, seq_len)
    else:
        {"litdata": build_litdata, "mds": build_mds, "arrow": build_arrow}[fmt](prefix + ".bin", work / fmt, seq_len)


#: Each format and the formats it is built from.
FORMATS: dict[str, tuple[str, ...]] = {"litdata": (), "mds": (), "arrow": (), "mix": (), "litdata_mix": ("mix",)}


# --------------------------------------------------------------------------- loaders


def xy_windows(windows: Any) -> tuple[Any, Any]:
    """``x, y`` int64 of a ``[B, T + 1]`` tensor of windows."""
    w = windows.long()
    return w[:, :-1], w[:, 1:]


def litdata_dataset(input_dir: Path, seq_len: int) -> Any:
    from litdata import StreamingDataset, TokensLoader

    return StreamingDataset(str(input_dir), item_loader=TokensLoader(block_size=seq_len + 1), shuffle=True,
                            drop_last=True, seed=1)


def litdata_loader(input_dir: Path, batch: int, seq_len: int, workers: int) -> Any:
    """litdata's StreamingDataLoader over its TokensLoader format: batches of windows."""
    from litdata import StreamingDataLoader

    return StreamingDataLoader(litdata_dataset(input_dir, seq_len), batch_size=batch, num_workers=workers)


def litdata_combined_loader(work: Path, batch: int, seq_len: int, workers: int) -> Any:
    """litdata's CombinedStreamingDataset of the three parts, weights 0.7 / 0.2 / 0.1."""
    from litdata import CombinedStreamingDataset, StreamingDataLoader

    parts = [litdata_dataset(work / "litdata_mix" / p, seq_len) for p in MIX_PARTS]
    combined = CombinedStreamingDataset(parts, weights=list(MIX_WEIGHTS), seed=1, iterate_over_all=False)
    return StreamingDataLoader(combined, batch_size=batch, num_workers=workers)


def mosaic_loader(mds: Path, batch: int, workers: int) -> Any:
    """MosaicML Streaming's StreamingDataLoader over the MDS shards, shuffled: batches are
    dicts with ``tokens``. Its shared memory is named by prefix in /dev/shm and its file locks
    lie in the temporary directory, shared by every process of the host: leftovers of a killed
    run are cleaned first."""
    from streaming import StreamingDataLoader, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    dataset = StreamingDataset(local=str(mds), shuffle=True, batch_size=batch, shuffle_seed=1)
    return StreamingDataLoader(dataset, batch_size=batch, num_workers=workers)


def hf_loader(arrow: Path, batch: int) -> Any:
    """An Arrow dataset (``load_from_disk``, torch format) through a shuffling DataLoader:
    ``Dataset.__getitems__`` reads each batch's rows in one call."""
    import datasets
    import torch
    from torch.utils.data import DataLoader

    dataset = datasets.load_from_disk(str(arrow)).with_format("torch")
    return DataLoader(dataset, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(1))


def megatron_process_group() -> None:
    """The one-rank gloo process group Megatron-LM trains in (BlendedDataset asks
    torch.distributed for the rank before it writes its index cache), through a file store
    in the temporary directory: no TCP port to collide with another run's."""
    import torch.distributed as dist

    store = Path(tempfile.mkdtemp(prefix="megatron-store-")) / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)


def megatron_blend_loader(work: Path, batch: int, seq_len: int, seed: int, size: int = 1_000_000) -> Any:
    """megatron-core's BlendedDataset of one GPTDataset per part, built by
    BlendedMegatronDatasetBuilder as Megatron-LM builds it (each part sized to its share of
    ``size`` samples plus ``mid_level_dataset_surplus``; the GPTDatasets' indices, then the
    blending indices, written to a fresh cache), read by a DataLoader in order. Needs
    ``megatron_process_group()`` first."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from torch.utils.data import DataLoader

    tokenizer = SimpleNamespace(vocab_size=50257, eod=50256, pad=50256, unique_identifiers={"class": "gpt2"})
    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_len,
        blend=(mix_prefixes(work), list(MIX_WEIGHTS)),
        split="100,0,0",
        path_to_cache=tempfile.mkdtemp(prefix="megatron-cache-"),
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [size, 0, 0], lambda: True, config).build()
    return DataLoader(train, batch_size=batch, shuffle=False, num_workers=0)


def forever(loader: Any, xy: Callable[[Any], tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """``x, y`` batches of ``loader``, epoch after epoch, as a training loop reads them."""
    while True:
        for batch in loader:
            yield xy(batch)


def megatron_xy(sample: dict[str, Any]) -> tuple[Any, Any]:
    return sample["tokens"].long(), sample["labels"].long()


class SimulatedRank:
    """A litdata loader as rank ``rank`` of ``world_size`` in this one process.

    litdata takes the rank from torch.distributed (``_DistributedEnv.detect``), when the
    dataset is made and again in ``StreamingDataLoader.load_state_dict``; ``install`` makes
    ``detect`` answer with the rank whose loader is being called, and every call into the
    loader goes through this wrapper. Dataloader workers are forked on the first batch, inside
    such a call, and keep that rank.
    """

    current: ClassVar[list[Any]] = []

    def __init__(self, make: Callable[[], Any], rank: int, world_size: int) -> None:
        from litdata.utilities.env import _DistributedEnv

        self.env = _DistributedEnv(world_size, rank, 1)
        self.loader = self._call(make)

    @classmethod
    def install(cls) -> None:
        from litdata.utilities.env import _DistributedEnv

        original = _DistributedEnv.detect.__func__  # type: ignore[attr-defined]
        _DistributedEnv.detect = classmethod(lambda klass: cls.current[-1] if cls.current else original(klass))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        SimulatedRank.current.append(self.env)
        try:
            return fn(*args)
        finally:
            SimulatedRank.current.pop()

    def __iter__(self) -> Iterator[Any]:
        it = self._call(iter, self.loader)
        while True:
            try:
                yield self._call(next, it)
            except StopIteration:
                return

    def state_dict(self) -> dict[str, Any]:
        return self._call(self.loader.state_dict)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._call(self.loader.load_state_dict, state)

