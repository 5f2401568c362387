from typing import List, Optional, Tuple

import numpy as np

__version__: str
DEFAULT_MAX_BUFFERS: int

class OsmlError(Exception): ...
class InvalidDatasetError(OsmlError): ...
class LoaderError(OsmlError): ...
class PoolExhaustedError(LoaderError): ...
class ForkedLoaderError(LoaderError): ...

class Batch:
    @property
    def step(self) -> int: ...

class Loader:
    def __init__(
        self,
        paths: List[str],
        batch_size: int,
        seq_len: int,
        *,
        mode: str,
        seed: int,
        rank: int,
        world_size: int,
        workers: int,
        prefetch: int,
        dtype: str,
        cpus: List[int],
        format: Optional[str],
        raw_dtype: str,
        column: Optional[str],
        eod_token: Optional[int],
        block: Optional[int],
        state_json: Optional[str],
        max_buffers: int,
        interleave: Tuple[int, int],
        sources: Optional[List[Tuple[str, List[str], str]]] = None,
        schedule: List[Tuple[int, List[str]]] = ...,
        split: Optional[str] = None,
        subset: Optional[str] = None,
        documents: bool = False,
        positions: bool = True,
        reweight: Optional[List[str]] = None,
        fault: Optional[Tuple[str, int]] = None,
    ) -> None: ...
    def next_batch(self) -> np.ndarray: ...
    def next_documents(self) -> Tuple[np.ndarray, Optional[np.ndarray], np.ndarray, np.ndarray, np.ndarray]: ...
    def plan_json(self, samples: int) -> str: ...
    def global_batch(self) -> int: ...
    def source_names(self) -> List[str]: ...
    def weights_rounding(self) -> Optional[float]: ...
    def state_json(self) -> str: ...
    def stats_json(self) -> str: ...
    def buffers(self) -> List[Tuple[int, int]]: ...

class SyscallCounter:
    def __init__(self) -> None: ...
    def read(self) -> int: ...

def doctor_json(profile: str = "training", root: Optional[str] = None) -> str: ...
