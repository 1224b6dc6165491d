"""recipes/common/average_checkpoints.py (stage 5 of the WMT recipes: the last 10 epochs averaged).

The recipe tests run it end to end; here its result is checked: the mean of the N highest epochs
(by number, so checkpoint10 comes after checkpoint9), integer tensors and everything else from the
newest, no optimizer state, and too few checkpoints refused."""

from __future__ import annotations

import subprocess
import sys

import torch

from cli_helpers import REPO

AVERAGE = REPO / "recipes" / "common" / "average_checkpoints.py"


def _average(inputs, n, output):
    return subprocess.run([sys.executable, str(AVERAGE), "--inputs", str(inputs), "--num-epoch-checkpoints", str(n),
                           "--output", str(output)], capture_output=True, text=True)


def test_average_of_the_last_epochs(tmp_path):
    for epoch in range(1, 13):
        model = {"w": torch.full((2, 3), float(epoch), dtype=torch.float16), "steps": torch.tensor([epoch])}
        torch.save({"model": model, "last_optimizer_state": {"epoch": epoch}, "epoch": epoch},
                   tmp_path / f"checkpoint{epoch}.pt")
    torch.save({"model": {"w": torch.zeros(2, 3)}}, tmp_path / "checkpoint_last.pt")  # not an epoch checkpoint
    proc = _average(tmp_path, 10, tmp_path / "avg.pt")
    assert proc.returncode == 0, proc.stderr
    state = torch.load(tmp_path / "avg.pt", weights_only=False)
    mean = sum(range(3, 13)) / 10  # epochs 3..12
    assert state["model"]["w"].dtype == torch.float16 and torch.equal(state["model"]["w"], torch.full((2, 3), mean,
                                                                                                      dtype=torch.float16))
    assert torch.equal(state["model"]["steps"], torch.tensor([12])) and state["epoch"] == 12
    assert state["last_optimizer_state"] is None
    assert state["extra_state"]["averaged_from"] == [f"checkpoint{e}.pt" for e in range(12, 2, -1)]

    proc = _average(tmp_path, 13, tmp_path / "avg13.pt")
    assert proc.returncode != 0 and "has only 12 epoch checkpoints" in proc.stderr
    assert not (tmp_path / "avg13.pt").exists()
