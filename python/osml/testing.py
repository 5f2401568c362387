"""Checks a loader's resume: does stopping and restoring (with another world size or worker
count) drop, repeat or reorder a sample?

>>> from osml.testing import resume_check                                    # doctest: +SKIP
>>> make = lambda rank, world_size, workers: osml.TokenLoader(               # doctest: +SKIP
...     mix, 48 // world_size, 1024, rank=rank, world_size=world_size, workers=workers,
...     mode="epoch", documents=True)
>>> resume_check(make, steps=200, cycles=4, world_sizes=[1, 2, 4], workers=[1, 3])  # doctest: +SKIP
{'duplicates': 0, 'drops': 0, 'diverged': 0, ...}

It works on any loader that is iterable and has ``state_dict()`` / ``load_state_dict()``:
point it at other libraries' loaders to see what their resume does.
"""

from __future__ import annotations

import collections
import hashlib
import random
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence

__all__ = ["resume_check", "sample_ids"]

MakeLoader = Callable[..., Any]


def _numpy(a: Any) -> Any:
    """A numpy view of a numpy array or a (CPU) torch tensor."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return a


def sample_ids(batch: Any) -> List[Hashable]:
    """One identifier per row of ``batch``: ``(source, offset)`` for an ``osml.Documents``
    (what names a sample exactly), else a digest of the row's tokens (``x`` and the last
    target, the whole window) for an ``(x, y)`` pair, a dict with ``input_ids``, or one array
    of windows."""
    if hasattr(batch, "sources") and hasattr(batch, "offsets"):
        return list(zip(_numpy(batch.sources).tolist(), _numpy(batch.offsets).tolist()))
    if isinstance(batch, dict):
        batch = batch.get("input_ids", next(iter(batch.values())))
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        x, y = (_numpy(b) for b in batch)
        rows = [x[r].tobytes() + y[r][-1:].tobytes() for r in range(len(x))]
    else:
        a = _numpy(batch)
        if a.ndim == 1:
            a = a.reshape(1, -1)
        rows = [a[r].tobytes() for r in range(len(a))]
    return [hashlib.blake2b(r, digest_size=16).hexdigest() for r in rows]


def _global_steps(loaders: Sequence[Any], steps: int, identify: Callable[[Any], List[Hashable]]) -> List[Hashable]:
    """``steps`` global steps: at each, one batch from every rank, ranks in order."""
    its = [iter(loader) for loader in loaders]
    out: List[Hashable] = []
    for _ in range(steps):
        for it in its:
            out.extend(identify(next(it)))
    return out


def _states(loaders: Sequence[Any]) -> List[Any]:
    return [loader.state_dict() for loader in loaders]


def _restore(make_loader: MakeLoader, world: int, workers: int, states: Optional[List[Any]]) -> List[Any]:
    """A fresh loader per rank; each restores its own rank's state when the world size is the
    one the states were taken with, else rank 0's (a loader whose state is global, as osml's,
    continues; one whose state is per rank has no defined way to change world size)."""
    loaders = []
    for rank in range(world):
        loader = make_loader(rank=rank, world_size=world, workers=workers)
        if states is not None:
            loader.load_state_dict(states[rank] if len(states) == world else states[0])
        loaders.append(loader)
    return loaders


def resume_check(
    make_loader: MakeLoader,
    *,
    steps: int = 100,
    cycles: int = 3,
    world_sizes: Sequence[int] = (1, 2, 4),
    workers: Sequence[int] = (1, 2),
    seed: int = 0,
    identify: Callable[[Any], List[Hashable]] = sample_ids,
    examples: int = 5,
) -> Dict[str, Any]:
    """Runs ``steps`` global steps uninterrupted (world size ``world_sizes[0]``, workers
    ``workers[0]``), then the same steps again stopped and restored ``cycles`` times at random
    steps, each stretch with the next world size and worker count of the lists (cycling), and
    compares the two sequences of samples.

    ``make_loader(rank=, world_size=, workers=)`` returns a new loader for that rank; keep
    the global batch (per-rank batch × world size) fixed across world sizes, as a resumed
    run does. Each stop takes every rank's ``state_dict()`` and drops the loaders without
    closing them, as a killed job does; the new ranks are made fresh and ``load_state_dict``
    it. ``identify(batch)`` names each row's sample (``sample_ids``).

    Returns ``duplicates`` (samples seen more often than in the reference), ``drops`` (seen
    less often), ``diverged`` (positions where the sequence differs from the reference), with
    ``examples`` of each, ``samples`` (reference length), ``stops`` (step, world size and
    workers of each stretch) and ``seed``. A loader whose resume is exact reports 0 / 0 / 0.
    """
    if steps < 2 or cycles < 1 or cycles >= steps:
        raise ValueError("need steps >= 2 and 1 <= cycles < steps")
    if not world_sizes or not workers:
        raise ValueError("world_sizes and workers need at least one entry each")
    reference = _global_steps(_restore(make_loader, world_sizes[0], workers[0], None), steps, identify)

    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, steps), cycles))
    bounds = [0, *cuts, steps]
    resumed: List[Hashable] = []
    stops = []
    states: Optional[List[Any]] = None
    for k in range(len(bounds) - 1):
        world = world_sizes[k % len(world_sizes)]
        nworkers = workers[k % len(workers)]
        loaders = _restore(make_loader, world, nworkers, states)
        resumed.extend(_global_steps(loaders, bounds[k + 1] - bounds[k], identify))
        stops.append({"step": bounds[k], "world_size": world, "workers": nworkers})
        states = _states(loaders)
        del loaders  # a killed job: nothing closed, nothing drained

    want = collections.Counter(reference)
    got = collections.Counter(resumed)
    dup = {s: got[s] - want[s] for s in got if got[s] > want[s]}
    drop = {s: want[s] - got[s] for s in want if want[s] > got[s]}
    diverged = [i for i, (a, b) in enumerate(zip(reference, resumed)) if a != b]
    diverged += list(range(min(len(reference), len(resumed)), max(len(reference), len(resumed))))
    return {
        "duplicates": sum(dup.values()),
        "drops": sum(drop.values()),
        "diverged": len(diverged),
        "duplicate_examples": list(dup)[:examples],
        "drop_examples": list(drop)[:examples],
        "diverged_examples": [
            {"position": i, "reference": reference[i] if i < len(reference) else None,
             "resumed": resumed[i] if i < len(resumed) else None}
            for i in diverged[:examples]
        ],
        "samples": len(reference),
        "stops": stops,
        "seed": seed,
    }
