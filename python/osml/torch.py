"""osml for PyTorch: the loader's batches as torch tensors, without a copy.

>>> from osml.torch import TorchTokenLoader                              # doctest: +SKIP
>>> loader = TorchTokenLoader("train.bin", 12, 1024, device="cuda", pin_memory=True)  # doctest: +SKIP
>>> x, y = next(loader)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Optional, Tuple

import torch
from torch.utils.data import IterableDataset

from . import TokenLoader

__all__ = ["TorchTokenLoader", "TokenIterableDataset"]


class TorchTokenLoader(TokenLoader):
    """``TokenLoader`` yielding ``(x, y)`` torch tensors that share the pool buffer.

    With ``pin_memory=True`` and CUDA available, every pool buffer is page-locked once
    (``cudaHostRegister``) instead of copying each batch into pinned memory; with ``device``,
    batches are then sent there with ``non_blocking=True``.
    """

    def __init__(self, *args: Any, device: Optional[str] = None, pin_memory: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.device = torch.device(device) if device is not None else None
        self.pinned = False
        if pin_memory:
            self._pin()

    def _pin(self) -> None:
        if not torch.cuda.is_available():
            warnings.warn("pin_memory=True but CUDA is not available: batches stay in pageable memory", stacklevel=3)
            return
        cudart = torch.cuda.cudart()
        self._registered = []
        for address, length in self.buffers():
            err = cudart.cudaHostRegister(address, length, 0)
            if int(err) != 0:
                self._unpin()
                raise RuntimeError(f"cudaHostRegister failed with error {int(err)}")
            self._registered.append(address)
        self.pinned = True

    def _unpin(self) -> None:
        """Unregisters the pool before it is unmapped: a later mapping at the same address
        could not be registered again (cudaErrorHostMemoryAlreadyRegistered)."""
        cudart = torch.cuda.cudart()
        for address in getattr(self, "_registered", []):
            cudart.cudaHostUnregister(address)
        self._registered = []
        self.pinned = False

    def close(self) -> None:
        """Unpins and releases the pool now (it is released at garbage collection otherwise)."""
        if self.pinned:
            torch.cuda.synchronize()
            self._unpin()
        self._loader = None

    def __del__(self) -> None:
        if getattr(self, "pinned", False):
            self._unpin()

    def load_state_dict(self, state: Any) -> None:
        was_pinned = self.pinned
        if was_pinned:
            torch.cuda.synchronize()
            self._unpin()
        super().load_state_dict(state)
        if was_pinned:  # a restored loader has a new pool
            self._pin()

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        batch = torch.from_numpy(self._loader.next_batch())
        if self.device is not None:
            batch = batch.to(self.device, non_blocking=self.pinned)
        return batch[:, :-1], batch[:, 1:]


class TokenIterableDataset(IterableDataset):
    """For code that must stay on ``torch.utils.data.DataLoader``: use it with
    ``DataLoader(dataset, batch_size=None, num_workers=0)``; osml's own threads do the work."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._args, self._kwargs = args, kwargs

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        return iter(TorchTokenLoader(*self._args, **self._kwargs))
