"""osml for PyTorch: the loader's batches as torch tensors, without a copy.

>>> from osml.torch import TorchTokenLoader                              # doctest: +SKIP
>>> loader = TorchTokenLoader("train.bin", 12, 1024, device="cuda", pin_memory=True)  # doctest: +SKIP
>>> x, y = next(loader)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import collections
import warnings
from typing import Any, Deque, Iterator, Optional, Tuple

import torch
from torch.utils.data import IterableDataset

from . import Documents, TokenLoader

__all__ = ["TorchTokenLoader", "TokenIterableDataset"]


class TorchTokenLoader(TokenLoader):
    """``TokenLoader`` yielding ``(x, y)`` torch tensors that share the pool buffer.

    With ``pin_memory=True`` and CUDA available, every pool buffer is page-locked once
    (``cudaHostRegister``; regions added when the pool grows are registered as they appear)
    instead of copying each batch into pinned memory; with ``device``, batches are then sent
    there with ``non_blocking=True``. Such a copy may still be queued behind earlier kernels
    when the step returns, and PyTorch does not track the reuse of memory registered this way,
    so the loader keeps each CPU batch, with a CUDA event recorded after its copy, until the
    event has completed; only then does the buffer return to the pool. At most
    ``prefetch + 2`` copies are kept in flight: beyond that the loader waits for the oldest.
    With ``documents=True`` each batch is an ``osml.Documents`` of tensors (all fields copied
    to ``device`` when one is given).
    """

    def __init__(self, *args: Any, device: Optional[str] = None, pin_memory: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device = torch.device(device) if device is not None else None
        self.pinned = False
        self._registered: list = []
        self._in_flight: Deque[Tuple[Any, torch.Tensor]] = collections.deque()
        self._max_in_flight = int(self.stats()["prefetch"]) + 2
        if pin_memory:
            self._pin()

    def _pin(self) -> None:
        if not torch.cuda.is_available():
            warnings.warn("pin_memory=True but CUDA is not available: batches stay in pageable memory", stacklevel=3)
            return
        self.pinned = True
        self._pin_new_regions()

    def _pin_new_regions(self) -> None:
        """Registers the pool's regions not registered yet (the pool grows by regions)."""
        cudart = torch.cuda.cudart()
        for address, length in self.buffers()[len(self._registered) :]:
            err = cudart.cudaHostRegister(address, length, 0)
            if int(err) != 0:
                self._unpin()
                raise RuntimeError(f"cudaHostRegister failed with error {int(err)}")
            self._registered.append(address)

    def _unpin(self) -> None:
        """Unregisters the pool before it is unmapped: a later mapping at the same address
        could not be registered again (cudaErrorHostMemoryAlreadyRegistered)."""
        cudart = torch.cuda.cudart()
        for address in self._registered:
            cudart.cudaHostUnregister(address)
        self._registered = []
        self.pinned = False

    def _copies_are_async(self) -> bool:
        return self.pinned and self.device is not None and self.device.type == "cuda"

    def _record_copy(self) -> Any:
        """An event on the current stream, completed once the copy just queued has run."""
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        return event

    def _reap(self) -> None:
        """Returns to the pool the batches whose copies have completed (oldest first); waits
        for the oldest while too many are in flight."""
        while self._in_flight and (len(self._in_flight) > self._max_in_flight or self._in_flight[0][0].query()):
            event, _ = self._in_flight[0]
            if not event.query():
                event.synchronize()
            self._in_flight.popleft()

    def _drain(self) -> None:
        for event, _ in self._in_flight:
            event.synchronize()
        self._in_flight.clear()

    def close(self) -> None:
        """Waits for copies in flight, unpins and releases the pool now (it is released at
        garbage collection otherwise)."""
        self._drain()
        if self.pinned:
            torch.cuda.synchronize()
            self._unpin()
        self._loader = None

    def __del__(self) -> None:
        if getattr(self, "pinned", False):
            self._drain()
            self._unpin()

    def _renew(self, make: Any) -> None:
        """Runs ``make``, which replaces the loader (and so its pool), with the old pool's
        copies waited for and unpinned first and the new one pinned after."""
        was_pinned = self.pinned
        self._drain()
        if was_pinned:
            torch.cuda.synchronize()
            self._unpin()
        make()
        if was_pinned:
            self._pin()

    def load_state_dict(self, state: Any) -> None:
        self._renew(lambda: super(TorchTokenLoader, self).load_state_dict(state))

    def set_weights(self, weights: Any) -> None:
        # A reweighted loader has a new pool, as a restored one.
        self._renew(lambda: super(TorchTokenLoader, self).set_weights(weights))

    def __next__(self) -> Any:  # type: ignore[override]
        if self._in_flight:
            self._reap()
        if self.documents:
            return self._next_documents()
        batch = self._loader.next_batch()
        if self.pinned:
            self._pin_new_regions()
        if self.device is None:
            # Two from_numpy of numpy slices: cheaper than slicing a tensor twice.
            return torch.from_numpy(batch[:, :-1]), torch.from_numpy(batch[:, 1:])
        whole = torch.from_numpy(batch)
        if not self._copies_are_async():
            whole = whole.to(self.device)
            return whole[:, :-1], whole[:, 1:]
        on_device = whole.to(self.device, non_blocking=True)
        self._in_flight.append((self._record_copy(), whole))
        return on_device[:, :-1], on_device[:, 1:]

    def _next_documents(self) -> Documents:
        arrays = self._loader.next_documents()
        if self.pinned:
            self._pin_new_regions()
        if self.device is None:
            # x and y from numpy slices, as in `__next__`: cheaper than slicing a tensor.
            tokens, pos, cu, src, off = arrays
            x, y = torch.from_numpy(tokens[:, :-1]), torch.from_numpy(tokens[:, 1:])
            fields = (None if a is None else torch.from_numpy(a) for a in (pos, cu, src, off))
            return Documents(x, y, *fields)
        # position_ids is None from a loader made with position_ids=False.
        cpu = [torch.from_numpy(a) for a in arrays if a is not None]
        asynchronous = self._copies_are_async()
        moved = iter([t.to(self.device, non_blocking=asynchronous) for t in cpu])
        if asynchronous:
            self._in_flight.append((self._record_copy(), cpu))
        tokens, pos, cu, src, off = (None if a is None else next(moved) for a in arrays)
        return Documents(tokens[:, :-1], tokens[:, 1:], pos, cu, src, off)


class TokenIterableDataset(IterableDataset):
    """For code that must stay on ``torch.utils.data.DataLoader``, with ``batch_size=None``.

    ``num_workers=0`` is best: osml's own threads do the work. With ``num_workers=n > 0``,
    DataLoader worker ``w`` delivers steps ``w, w + n, w + 2n, …`` of the sequence (each with
    one loader thread unless ``workers`` is given), so DataLoader's in-order round-robin yields
    exactly the batches of one ``TorchTokenLoader``: no step twice, none missing.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._args, self._kwargs = args, kwargs

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        kwargs = dict(self._kwargs)
        info = torch.utils.data.get_worker_info()
        if info is not None and info.num_workers > 1:
            kwargs["_interleave"] = (info.id, info.num_workers)
            kwargs.setdefault("workers", 1)
        return iter(TorchTokenLoader(*self._args, **kwargs))
