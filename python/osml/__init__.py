"""osml: the operating-system layer for machine learning.

The loader: ``TokenLoader`` reads a token dataset (Megatron ``.bin``/``.idx``, nanoGPT's raw
``.bin``, llm.c shards, ``.npy``, Hugging Face Arrow), or a weighted ``Mixture`` of them, and
yields ``(x, y)`` numpy arrays of shape ``[B, T]`` that view one reusable, huge-page-backed
buffer of shape ``[B, T+1]``: no copy, no worker processes, no ``/dev/shm``. With
``documents=True`` each batch is a ``Documents`` that also carries ``position_ids``,
``cu_seqlens`` and each row's source. ``osml.torch`` gives the same as torch tensors;
``osml.testing.resume_check`` proves a loader's resume neither drops nor repeats a sample.

>>> loader = TokenLoader("train.bin", batch_size=12, seq_len=1024)   # doctest: +SKIP
>>> x, y = next(loader)                                              # doctest: +SKIP
>>> mix = TokenLoader({"web/*.bin": 0.7, "code/": 0.3}, 12, 1024)    # doctest: +SKIP
"""

from __future__ import annotations

import json
import numbers
import os
import sys
import warnings
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
    "Mixture",
    "Documents",
    "OsmlError",
    "InvalidDatasetError",
    "LoaderError",
    "PoolExhaustedError",
    "ForkedLoaderError",
    "RestoredWeightsWarning",
    "RoundedWeightsWarning",
    "ROUNDING_TOLERANCE",
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


def _weight_text(weight: Any, where: str) -> str:
    """A weight as the exact decimal it was written as: a float's shortest repr (``0.7``, not
    the double nearest it), an int, or a string such as ``"1e-3"``. Other real numbers
    (numpy's scalars, ``Fraction``) are taken as the int or float they convert to."""
    if isinstance(weight, str):
        return weight
    if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, numbers.Real):
        raise TypeError(f"{where}: a weight is a number, not {type(weight).__name__}")
    if isinstance(weight, numbers.Integral):
        return repr(int(weight))
    return repr(float(weight))


def _weight_texts(names: List[str], weights: Any) -> List[str]:
    """``weights`` for the sources ``names`` (a list in their order, or a dict by name) as
    exact decimals."""
    if isinstance(weights, dict):
        # Keys as the sources were given: a name, or a path (``pathlib.Path`` too).
        weights = {k if isinstance(k, str) else _source_name(k): w for k, w in weights.items()}
        unknown = [k for k in weights if k not in names]
        if unknown:
            raise ValueError(f"no source named {unknown[0]!r} (sources: {', '.join(names)})")
        missing = [n for n in names if n not in weights]
        if missing:
            raise ValueError(f"no weight for source {missing[0]!r}")
        return [_weight_text(weights[n], f"source {n}") for n in names]
    weights = list(weights)
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} weights for a mixture of {len(names)} sources")
    return [_weight_text(w, f"source {n}") for w, n in zip(weights, names)]


def _source_name(source: Source) -> str:
    return " ".join(_source_paths(source))


class RestoredWeightsWarning(UserWarning):
    """``load_state_dict`` restored a mixture state whose recorded weights at its cursor are
    not the ones this loader was configured with: the record is followed, so the resumed run
    draws what the interrupted one would have."""


class RoundedWeightsWarning(UserWarning):
    """The weights' exact shares would need a schedule longer than 2^18 samples, so they were
    rounded to shares of 2^18 (each positive weight keeping at least one), and that moved some
    source's share by more than ``ROUNDING_TOLERANCE`` (0.1%) of itself: a weight of ``1e-9``
    beside ``1`` is given one share of 2^18, about 3,800 times its weight. Every source's
    count stays within 1 sample of the rounded weights, not of the given ones. Rounding that
    moves no share that far (``1/3`` as ``0.3333333333333333``: about 10^-5 of itself, or
    weights proportional to token counts) passes without a warning; ``osml data inspect``
    prints the change for any mixture."""


ROUNDING_TOLERANCE = 1e-3
"""How far rounding may move a source's share, relative to it, before
``RoundedWeightsWarning`` is raised."""


def _warn_if_rounded(loader: Any) -> None:
    change = loader.weights_rounding()
    if change is not None and change > ROUNDING_TOLERANCE:
        warnings.warn(
            "the mixture's weights need a schedule period above 2^18 samples and were rounded "
            "to shares of 2^18 (each positive weight keeps at least one), which moved a "
            f"source's share by up to {change:.2%} of itself (a schedule of 2^18 samples "
            "cannot give a source less than one of them; see osml.RoundedWeightsWarning)",
            RoundedWeightsWarning,
            stacklevel=3,
        )


class Mixture:
    """Sources read by weight: each global sample is drawn from one source by a schedule that
    keeps every source's share within one sample of its weight at every step, and each source
    walks its own epochs (a small one repeats; a large one is read without replacement).

    ``sources``: a dict ``{source: weight}``, or a list of ``(source, weight)`` or
    ``(source, weight, name)`` tuples, where a source is anything ``TokenLoader`` takes as one
    (a path, glob, directory or list). Weights are relative (normalised) and exact as written:
    ``0.7, 0.2, 0.1`` repeat every 10 samples. A source's name is its path unless given; it is
    how ``set_weights`` and ``stats()`` refer to it. ``schedule``: ``[(step, weights), …]``
    changes the weights from those global steps on (a curriculum), ``weights`` a list in
    source order or a dict by name.
    """

    def __init__(self, sources: Any, schedule: Sequence[Tuple[int, Any]] = ()) -> None:
        if isinstance(sources, dict):
            items = [(src, w, None) for src, w in sources.items()]
        elif isinstance(sources, (list, tuple)):
            items = []
            for entry in sources:
                if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
                    raise TypeError("a mixture entry is (source, weight) or (source, weight, name)")
                items.append((entry[0], entry[1], entry[2] if len(entry) == 3 else None))
        else:
            raise TypeError(f"a mixture is a dict or a list of (source, weight), not {type(sources).__name__}")
        if not items:
            raise ValueError("a mixture needs at least one source")
        self.sources: List[Tuple[str, List[str], str]] = []
        for src, w, name in items:
            label = name if name is not None else _source_name(src)
            self.sources.append((label, _source_paths(src), _weight_text(w, f"source {label}")))
        self.names = [n for n, _, _ in self.sources]
        self.schedule = []
        for step, w in schedule:
            if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
                raise ValueError(f"a schedule's steps are integers from 1 on (the weights hold from step 0), not {step!r}")
            if self.schedule and step <= self.schedule[-1][0]:
                raise ValueError(f"a schedule's steps must increase: step {step} follows step {self.schedule[-1][0]}")
            self.schedule.append((int(step), self.weight_texts(w)))

    def weight_texts(self, weights: Any) -> List[str]:
        """``weights`` (a list in source order, or a dict by name) as exact decimals."""
        return _weight_texts(self.names, weights)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {w}" for n, _, w in self.sources)
        return f"Mixture({{{inner}}})"


class Documents:
    """A batch with its document boundaries (``documents=True``), all views of one buffer.

    - ``x``, ``y``: ``[B, T]`` inputs and targets, as without documents.
    - ``position_ids``: ``[B, T]`` int32, each input's position in its document, restarting
      at 0 where a document starts inside the window (the window's first token is position 0);
      ``None`` from a loader made with ``position_ids=False``.
    - ``cu_seqlens``: ``[B, T + 1]`` int32, per row the boundaries ``0 < … < T`` of its
      documents (no empty segment), then ``-1`` padding: row ``r``'s segments are
      ``cu_seqlens[r, :k + 1]`` with ``k + 1 = (cu_seqlens[r] >= 0).sum()``. The shape never
      depends on the documents. ``packed_cu_seqlens()`` gives the 1-D form FlashAttention's
      varlen functions take for the whole batch flattened to ``B * T`` tokens.
    - ``sources``: ``[B]`` int32, the mixture source of each row; ``offsets``: ``[B]`` int64,
      the first token of each row's window in that source (together they identify a sample).
    """

    __slots__ = ("x", "y", "position_ids", "cu_seqlens", "sources", "offsets")

    def __init__(self, x: Any, y: Any, position_ids: Any, cu_seqlens: Any, sources: Any, offsets: Any) -> None:
        self.x, self.y = x, y
        self.position_ids, self.cu_seqlens = position_ids, cu_seqlens
        self.sources, self.offsets = sources, offsets

    def packed_cu_seqlens(self) -> Any:
        """The boundaries of every segment of the batch flattened to ``B * T`` tokens, int32,
        starting at 0 (a new array; a torch tensor when the fields are tensors)."""
        cu = self.cu_seqlens
        t = cu.shape[1] - 1
        if isinstance(cu, np.ndarray):
            rows = [cu[r][1:][cu[r][1:] >= 0] + r * t for r in range(cu.shape[0])]
            return np.concatenate([np.zeros(1, dtype=np.int32), *rows]).astype(np.int32)
        import torch  # noqa: PLC0415 - only for tensors

        keep = cu[:, 1:] >= 0
        base = (torch.arange(cu.shape[0], device=cu.device, dtype=torch.int32) * t).unsqueeze(1)
        flat = (cu[:, 1:] + base)[keep]
        return torch.cat([torch.zeros(1, dtype=torch.int32, device=cu.device), flat.to(torch.int32)])

    def __iter__(self) -> Iterator[Any]:
        """``x, y = batch`` works as without documents."""
        return iter((self.x, self.y))


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

    Mixtures: ``source`` may be a ``Mixture``, a dict ``{source: weight}``, Megatron's blend
    string ``"0.7 web 0.2 code 0.1 books"`` or a mixture file (``.json``/``.toml``, as the
    CLI reads). ``set_weights`` changes the weights from the next step on; the state records
    every change, so resuming reproduces the sequence. ``split="969,30,1"`` with
    ``subset="train"|"valid"|"test"`` reads that part of every source's documents, cut as
    megatron-core cuts them. ``documents=True`` makes each batch a ``Documents``
    (``x, y, position_ids, cu_seqlens, sources, offsets``) written into the same buffer;
    ``position_ids=False`` leaves the positions out (``None``), for models that take
    ``cu_seqlens`` alone: they are 4 bytes per token, most of what the fields cost.
    ``plan(tokens)`` says how many epochs of each source a run of that many tokens reads.
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
        split: Optional[str] = None,
        subset: str = "train",
        documents: bool = False,
        position_ids: bool = True,
        _interleave: Tuple[int, int] = (0, 1),
        _fault: Optional[Tuple[str, int]] = None,
    ) -> None:
        if isinstance(source, dict):
            source = Mixture(source)
        self.mixture: Optional[Mixture] = source if isinstance(source, Mixture) else None
        if self.mixture is not None:
            self.paths = [p for _, paths, _ in self.mixture.sources for p in paths]
        else:
            self.paths = _source_paths(source)
        self.path = " ".join(self.paths)
        if not position_ids and not documents:
            raise ValueError("position_ids=False needs documents=True: without it a batch has no document fields")
        self.documents = documents
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
            sources=self.mixture.sources if self.mixture is not None else None,
            schedule=self.mixture.schedule if self.mixture is not None else [],
            split=split,
            subset=subset,
            documents=documents,
            positions=position_ids,
            fault=_fault,
        )
        self._source_paths = self.paths if self.mixture is None else []
        self._loader = _Loader(self._source_paths, batch_size, seq_len, state_json=None, **self._args)
        _warn_if_rounded(self._loader)
        self.names: List[str] = self._loader.source_names()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.documents:
            tokens, pos, cu, src, off = self._loader.next_documents()
            return Documents(tokens[:, :-1], tokens[:, 1:], pos, cu, src, off)
        batch = self._loader.next_batch()
        return batch[:, :-1], batch[:, 1:]

    def next_batch(self) -> np.ndarray:
        """The next ``[batch_size, seq_len + 1]`` array (x and y are its column slices)."""
        return self._loader.next_batch()

    def state_dict(self) -> Dict[str, Any]:
        """Where the loader is: restore it with ``load_state_dict``."""
        return {"osml_loader": json.loads(self._loader.state_json())}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Continue exactly after the batches that ``state`` had seen. It replaces the loader:
        call it between steps, not while another thread is in ``next()``."""
        if "osml_loader" not in state:
            raise ValueError("not an osml.TokenLoader state_dict (no 'osml_loader' key)")
        self._loader = _Loader(
            self._source_paths,
            self.batch_size,
            self.seq_len,
            state_json=json.dumps(state["osml_loader"]),
            **self._args,
        )
        restored = self._loader.weights_restored_json()
        if restored is not None:
            r = json.loads(restored)
            warnings.warn(
                f"the restored state continues at sample {r['cursor']} with weights "
                f"{':'.join(map(str, r['restored']))} (its record), not the configured "
                f"{':'.join(map(str, r['configured']))}; call set_weights() to change them "
                "from here",
                RestoredWeightsWarning,
                stacklevel=2,
            )

    def set_weights(self, weights: Any) -> None:
        """New weights from the next step on: a list in source order, or a dict by name
        (``self.names``, or the paths as given). Batches already prepared under the old
        weights are dropped and prepared again; the change is recorded in ``state_dict()``.
        Like ``load_state_dict``, it replaces the loader: call it between steps, not while
        another thread is in ``next()``."""
        if len(self.names) < 2:
            raise ValueError("one source has no weights to change: give the loader a mixture")
        texts = _weight_texts(self.names, weights)
        state = self._loader.state_json()
        args = dict(self._args, reweight=texts)
        self._loader = _Loader(self._source_paths, self.batch_size, self.seq_len, state_json=state, **args)
        _warn_if_rounded(self._loader)

    def plan(self, tokens: int) -> List[Dict[str, Any]]:
        """What a run of ``tokens`` input tokens (from the start) reads of each source, with
        this loader's weights and schedule: per source its tokens, windows, weight, samples
        and ``epochs`` (above 1, the source repeats)."""
        if int(tokens) < 0:
            raise ValueError(f"a run reads 0 or more tokens, not {tokens}")
        samples = int(tokens) // self.seq_len
        return json.loads(self._loader.plan_json(samples))

    def stats(self) -> Dict[str, Any]:
        """Batches, tokens, waits, faults, context switches and buffer facts since the start,
        and ``sources``: per source its tokens, weight, the samples the global sequence has
        drawn from it so far and the epochs of it they make."""
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
