"""osml: the operating-system layer for machine learning.

The loader: ``TokenLoader`` reads a token dataset (Megatron ``.bin``/``.idx``, nanoGPT's raw
``.bin``, ``.npy``) and yields ``(x, y)`` numpy arrays of shape ``[B, T]`` that view one
reusable, huge-page-backed buffer of shape ``[B, T+1]``: no copy, no worker processes, no
``/dev/shm``. ``osml.torch`` gives the same as torch tensors.

>>> loader = TokenLoader("train.bin", batch_size=12, seq_len=1024)   # doctest: +SKIP
>>> x, y = next(loader)                                              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._osml import (
    DEFAULT_MAX_BUFFERS,
    ForkedLoaderError,
    InvalidDatasetError,
    LoaderError,
    OsmlError,
    PoolExhaustedError,
    __version__,
)
from ._osml import Loader as _Loader
from ._osml import doctor_json as _doctor_json

__all__ = [
    "TokenLoader",
    "OsmlError",
    "InvalidDatasetError",
    "LoaderError",
    "PoolExhaustedError",
    "ForkedLoaderError",
    "doctor",
    "DEFAULT_MAX_BUFFERS",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
#: A source: one path (a file, a Megatron prefix, a glob, a directory) or a list of them.
Source = Union[PathLike, Sequence[PathLike]]


def _source_paths(source: Source) -> List[str]:
    """The entries of a source as strings; a str or path-like is one entry, not a sequence."""
    if isinstance(source, (str, bytes, os.PathLike)):
        entries: List[Any] = [source]
    elif isinstance(source, Sequence):
        entries = list(source)
    else:
        raise TypeError(f"a source is a path or a list of paths, not {type(source).__name__}")
    if not entries:
        raise ValueError("a source needs at least one path")
    out = []
    for e in entries:
        p = os.fspath(e)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        out.append(p)
    return out


def _distributed_defaults(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    """torch.distributed when initialised, else RANK / WORLD_SIZE, else 0 and 1."""
    if rank is not None and world_size is not None:
        return rank, world_size
    # A process group exists only if torch was imported; importing it here just to ask would
    # cost seconds and hundreds of MB for users without torch.
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is not None and dist.is_available() and dist.is_initialized():
        return (
            dist.get_rank() if rank is None else rank,
            dist.get_world_size() if world_size is None else world_size,
        )
    env_rank = int(os.environ.get("RANK", "0"))
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    return (env_rank if rank is None else rank, env_world if world_size is None else world_size)


def _loader_cpus(cpus: Optional[Sequence[int]]) -> List[int]:
    """``cpus`` as given, else ``OSML_LOADER_CPUS`` (set by ``osml run --bind auto``), else none."""
    if cpus is not None:
        return list(cpus)
    text = os.environ.get("OSML_LOADER_CPUS", "").strip()
    out: List[int] = []
    bad = ValueError(f"OSML_LOADER_CPUS={text!r} is not a CPU list such as 1-3,8")
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise bad from None
        if first < 0 or last < first:
            raise bad
        out.extend(range(first, last + 1))
    return out


class TokenLoader:
    """Batches of token windows, deterministic, resumable and sharded across ranks.

    Each step yields ``(x, y)``: ``x[i]`` is a window of ``seq_len`` tokens and ``y[i]`` the
    same window shifted by one token. Both are views of one ``[batch_size, seq_len + 1]``
    array in a buffer pool; the buffer goes back to the pool once neither is referenced.

    ``mode="random"`` draws windows at uniformly random offsets (nanoGPT's semantics);
    ``mode="epoch"`` visits every window once per epoch in a seeded order (``block`` keeps the
    order local to blocks of that many consecutive windows). Rank ``r`` of ``world_size``
    takes its contiguous share of each global batch of ``batch_size * world_size`` samples.
    ``state_dict()`` / ``load_state_dict()`` resume exactly, also with another number of
    workers or ranks as long as the global batch is the same. ``workers`` defaults to the CPUs
    this process may use less one (the training loop keeps a core).
    ``cpus`` pins loader worker ``k`` to ``cpus[k % len(cpus)]``;
    by default it comes from ``OSML_LOADER_CPUS``, which ``osml run --bind auto`` sets to the
    CPUs it planned for this rank's loader threads.

    Batches may be kept (in a list, for logging, while a GPU copy runs): the pool starts with
    ``prefetch + workers + 1`` buffers and grows by as many again whenever the caller holds
    them all, up to ``max_buffers`` (default ``DEFAULT_MAX_BUFFERS``); past that,
    ``PoolExhaustedError`` says how many are held. A failure in a worker raises
    ``LoaderError`` naming the step, once; the iterator then stops. Waits release the GIL and
    Ctrl-C interrupts them within about 50 ms. Calls from several threads are serialised
    (each batch goes to one caller). A loader used in a process forked after it was made
    raises ``ForkedLoaderError``: create loaders in the process that uses them.
    ``source`` is a path (a file, a Megatron prefix, a glob such as ``"data/shard_*.bin"``, a
    directory of shards or a Hugging Face ``save_to_disk`` directory), an ``os.PathLike``, or a
    list of them: the shards are read as one stream (globs and directories in sorted order,
    lists in their order; one format and dtype for all). ``format`` forces a format
    (``megatron``, ``bin``, ``npy``, ``llmc``, ``arrow``); ``column`` names an Arrow dataset's
    list-of-integers column; ``eod_token`` splits the documents of formats that record none.
    ``prefetch`` defaults to as many batches as fill 4 MiB (between 4 and 64): enough to keep
    the workers busy while the consumer waits for a CPU on a busy host. ``workers`` is at most
    256 and ``prefetch`` at most 1024.
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        seq_len: int,
        *,
        mode: str = "random",
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        workers: Optional[int] = None,
        prefetch: Optional[int] = None,
        dtype: str = "int64",
        cpus: Optional[Sequence[int]] = None,
        format: Optional[str] = None,  # noqa: A002 - the name users know from osml data
        block: Optional[int] = None,
        raw_dtype: str = "uint16",
        column: str = "input_ids",
        eod_token: Optional[int] = None,
        max_buffers: int = DEFAULT_MAX_BUFFERS,
        _interleave: Tuple[int, int] = (0, 1),
        _fault: Optional[Tuple[str, int]] = None,
    ) -> None:
        self.paths = _source_paths(source)
        self.path = " ".join(self.paths)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rank, self.world_size = _distributed_defaults(rank, world_size)
        self._args: Dict[str, Any] = dict(
            mode=mode,
            seed=seed,
            rank=self.rank,
            world_size=self.world_size,
            workers=0 if workers is None else workers,
            prefetch=0 if prefetch is None else prefetch,
            dtype=dtype,
            cpus=_loader_cpus(cpus),
            format=format,
            raw_dtype=raw_dtype,
            column=column,
            eod_token=eod_token,
            block=block,
            max_buffers=max_buffers,
            interleave=_interleave,
            fault=_fault,
        )
        self._loader = _Loader(self.paths, batch_size, seq_len, state_json=None, **self._args)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> Tuple[np.ndarray, np.ndarray]:
        batch = self._loader.next_batch()
        return batch[:, :-1], batch[:, 1:]

    def next_batch(self) -> np.ndarray:
        """The next ``[batch_size, seq_len + 1]`` array (x and y are its column slices)."""
        return self._loader.next_batch()

    def state_dict(self) -> Dict[str, Any]:
        """Where the loader is: restore it with ``load_state_dict``."""
        return {"osml_loader": json.loads(self._loader.state_json())}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue exactly after the batches that ``state`` had seen."""
        if "osml_loader" not in state:
            raise ValueError("not an osml.TokenLoader state_dict (no 'osml_loader' key)")
        self._loader = _Loader(
            self.paths, self.batch_size, self.seq_len, state_json=json.dumps(state["osml_loader"]), **self._args
        )

    def stats(self) -> Dict[str, Any]:
        """Batches, tokens, waits, faults, context switches and buffer facts since the start."""
        return json.loads(self._loader.stats_json())

    def buffers(self) -> List[Tuple[int, int]]:
        """``(address, length)`` of every pool buffer (fixed for the loader's life)."""
        return self._loader.buffers()


def doctor(profile: str = "training", root: Optional[PathLike] = None) -> Dict[str, Any]:
    """The JSON of ``osml doctor --json`` as a dict.

    ``root``: a captured host, as a directory or a capture archive (``.tar``, ``.tar.gz``,
    ``.tar.bz2``), read as ``osml doctor --root`` reads it. A missing path raises
    ``FileNotFoundError``, a FIFO or device ``NotADirectoryError``, and a file that is not a
    capture (or an archive past osml's unpacking limits) ``osml.OsmlError``.
    """
    return json.loads(_doctor_json(profile, None if root is None else os.fspath(root)))
