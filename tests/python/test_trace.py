"""`osml trace` on the real failure: a torch DataLoader whose workers copy a Python list."""

import json
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

JOB = textwrap.dedent(
    """
    import time
    import torch
    from torch.utils.data import DataLoader, Dataset

    class ListDataset(Dataset):
        # The classic mistake: samples kept as Python objects in a list.
        def __init__(self, n):
            self.items = [float(i) for i in range(n)]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    if __name__ == "__main__":
        ds = ListDataset(3_000_000)
        loader = DataLoader(ds, batch_size=4096, num_workers=2, multiprocessing_context="fork")
        total = 0.0
        for batch in loader:
            total += float(batch.sum())
        time.sleep(0.5)
    """
)


def test_dataloader_workers_copy_on_read_is_found(tmp_path, osml):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    report = tmp_path / "trace.json"
    proc = osml("trace", "--interval", "100ms", "--json", report, "--", sys.executable, script, check=False)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(report.read_text())
    workers = [p for p in r["processes"] if p["ppid"] == r["processes"][0]["pid"]]
    assert len(workers) >= 2, r["processes"]
    found = [f for f in r["findings"] if f["id"] == "mem.copy_on_read"]
    assert found, (r["findings"], [(p["pid"], p["pss_growth_bytes"]) for p in workers])
    assert "13246" in found[0]["message"]
    assert "mem.copy_on_read" in proc.stderr
