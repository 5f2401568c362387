"""megatron-core's GPTDataset over a Megatron .bin/.idx, as Megatron-LM trains from it: the
document, sample and shuffle indices are built when the dataset is constructed (cached under a
temporary directory), then a torch DataLoader draws batches. Used by loaders.py."""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import DataLoader


def make_loader(prefix: str, batch_size: int, seq_len: int, seed: int, num_workers: int = 0, cache_dir: str | None = None):
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.datasets.indexed_dataset import IndexedDataset
    from megatron.core.datasets.utils import Split

    # GPTDataset reads only these attributes of the tokenizer: GPT-2's end of document.
    tokenizer = SimpleNamespace(vocab_size=50257, eod=50256, pad=50256, unique_identifiers={"class": "gpt2"})
    config = GPTDatasetConfig(
        random_seed=seed,
        sequence_length=seq_len,
        blend=([prefix], None),
        split="100,0,0",
        path_to_cache=cache_dir or tempfile.mkdtemp(prefix="megatron-cache-"),
        tokenizer=tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
    )
    indexed = IndexedDataset(prefix)
    dataset = GPTDataset(indexed, prefix, np.arange(len(indexed.document_indices) - 1, dtype=np.int32),
                         1_000_000, Split.train, config)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)

    def batches():
        for sample in loader:
            yield sample["tokens"].long(), sample["labels"].long()

    return batches()
