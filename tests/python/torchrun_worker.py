"""Run by test_package.py under `torchrun --nproc-per-node 2`: each rank loads batches (gloo, CPU),
saves its state halfway, resumes from it in a new loader, and writes what it saw."""

import json
import sys

import torch.distributed as dist

import osml

path, out = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")
rank = dist.get_rank()
epoch = dict(mode="epoch", seed=11)

loader = osml.TokenLoader(path, batch_size=4, seq_len=50, **epoch)  # rank and world from torch
assert (loader.rank, loader.world_size) == (rank, 2)
first_run, state, stop = [], None, 6
for step in range(12):
    if step == stop:
        state = loader.state_dict()
    first_run.extend(int(s) for s in loader.next_batch()[:, 0])
    dist.barrier()

resumed_loader = osml.TokenLoader(path, batch_size=4, seq_len=50, **epoch)
resumed_loader.load_state_dict(state)
resumed = [int(s) for _ in range(12 - stop) for s in resumed_loader.next_batch()[:, 0]]
with open(f"{out}/rank{rank}.json", "w") as f:
    json.dump({"first_run": first_run, "resumed": resumed, "stop": stop}, f)
dist.destroy_process_group()
