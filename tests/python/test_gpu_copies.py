"""GPU copies from the page-locked pool: every batch that reaches the GPU is the reference
loader's, even when each copy is queued behind a slow kernel. Needs CUDA: it runs on a machine
with a GPU and is reported as skipped elsewhere."""

import numpy as np
import pytest

import osml

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_async_copies_deliver_the_reference_batches_behind_slow_kernels(tmp_path):
    from osml.torch import TorchTokenLoader

    path = tmp_path / "tokens.bin"
    np.random.default_rng(1).integers(0, 50_000, size=8 << 20, dtype=np.uint16).tofile(path)
    loader = TorchTokenLoader(path, 8, 512, mode="epoch", seed=4, pin_memory=True, device="cuda", prefetch=4)
    reference = osml.TokenLoader(path, 8, 512, mode="epoch", seed=4)
    assert loader.pinned
    on_gpu = []
    for _ in range(300):
        # About a millisecond of GPU time queued before each copy: the copy runs long after
        # the step returned, while the workers keep filling buffers.
        torch.cuda._sleep(1_000_000)
        x, _ = next(loader)
        on_gpu.append(x.clone())  # queued after the copy on the same stream
    torch.cuda.synchronize()
    for step, x in enumerate(on_gpu):
        expected = reference.next_batch()[:, :-1]
        np.testing.assert_array_equal(x.cpu().numpy(), expected, err_msg=f"step {step}")
    loader.close()


def test_set_weights_keeps_the_new_pool_pinned(tmp_path):
    """set_weights replaces the loader and its pool, as load_state_dict does: the old pool is
    unpinned once its copies are done, and the new one is pinned whole."""
    from osml.torch import TorchTokenLoader

    paths = []
    for i in range(2):
        p = tmp_path / f"s{i}.bin"
        np.random.default_rng(i).integers(0, 50_000, size=1 << 20, dtype=np.uint16).tofile(p)
        paths.append(str(p))
    loader = TorchTokenLoader({p: 1 for p in paths}, 4, 256, seed=2, pin_memory=True, device="cuda")
    reference = osml.TokenLoader({p: 1 for p in paths}, 4, 256, seed=2)
    got, want = [], []
    for step in range(40):
        if step == 20:
            loader.set_weights([1, 3])
            reference.set_weights([1, 3])
        x, _ = next(loader)
        got.append(x.clone())
        want.append(reference.next_batch()[:, :-1])
    assert loader.pinned
    assert loader._registered == [address for address, _ in loader.buffers()]
    torch.cuda.synchronize()
    for step, (x, expected) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(x.cpu().numpy(), expected, err_msg=f"step {step}")
    loader.close()


def test_async_document_copies_deliver_the_reference_fields(tmp_path):
    """documents=True batches copied from the pinned pool behind slow kernels: every field
    on the GPU equals the numpy loader's."""
    from osml.torch import TorchTokenLoader

    paths = []
    for i in range(2):
        p = tmp_path / f"d{i}.bin"
        stream = np.random.default_rng(i).integers(1, 50_000, size=1 << 20, dtype=np.uint16)
        stream[::97] = 0  # an end-of-document token every 97 tokens
        stream.tofile(p)
        paths.append(str(p))
    args = dict(seed=3, documents=True, eod_token=0)
    loader = TorchTokenLoader({p: 1 for p in paths}, 8, 256, pin_memory=True, device="cuda", prefetch=4, **args)
    reference = osml.TokenLoader({p: 1 for p in paths}, 8, 256, **args)
    names = ("x", "y", "position_ids", "cu_seqlens", "sources", "offsets")
    on_gpu = []
    for _ in range(100):
        torch.cuda._sleep(1_000_000)
        b = next(loader)
        on_gpu.append([getattr(b, n).clone() for n in names])
    torch.cuda.synchronize()
    for step, fields in enumerate(on_gpu):
        want = next(reference)
        for name, got in zip(names, fields):
            np.testing.assert_array_equal(got.cpu().numpy(), getattr(want, name), err_msg=f"step {step} {name}")
    loader.close()
