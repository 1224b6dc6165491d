"""Checkpoints written by fairseq-train with our models: resuming, and torch.load.

* Training resumes from checkpoint_last.pt (optimizer and lr-scheduler state
  included) on current PyTorch, whose torch.load defaults to weights_only=True:
  the plugin's allow-list (lightconv_plugin/compat.py) makes that work.
* Every global that torch.load would have to unpickle from those checkpoints
  is in the allow-list, so the list is complete (a new kind of object written
  by fairseq would fail here rather than at a user's resume).

fp16 checkpoints (--fp16) are not covered: fairseq trains in fp16 only on CUDA.
"""

import re

import torch

import cli_helpers as fc
from lightconv_plugin import compat

N = 6  # updates of the first run; the resumed run goes on to 2N

# dynamicconv_toy, smaller still so that a dozen updates take seconds on CPU,
# with the renorm edge, which the checkpoint must record.
ARGS = (
    "--task", "translation", "--arch", "dynamicconv_toy", "--conv-edge", "renorm",
    "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--optimizer", "adam", "--lr", "0.002", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "4",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--max-tokens", "600",
)


def _allowed():
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in compat._checkpoint_globals()}


def test_training_resumes_and_checkpoints_need_only_allowed_globals(tmp_path_factory, tmp_path):
    (data,) = fc.binarised(tmp_path_factory, "translation")
    save = tmp_path / "checkpoints"

    first = fc.run(*fc.train_job(data, save, *ARGS, "--max-update", N))
    assert "No existing checkpoint found" in first
    assert f"num_updates: {N} >= max_update: {N}" in first
    assert torch.load(save / "checkpoint_last.pt", weights_only=True)["optimizer_history"][-1]["num_updates"] == N

    second = fc.run(*fc.train_job(data, save, *ARGS, "--max-update", 2 * N))
    assert re.search(rf"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {N} updates\)", second), second
    updates = [int(u) for u in re.findall(r"\| train_inner \|.*num_updates=(\d+),", second)]
    assert updates == list(range(N + 1, 2 * N + 1)), updates  # picks up at N + 1, not at 1
    assert f"num_updates: {2 * N} >= max_update: {2 * N}" in second

    allowed = _allowed()
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        path = save / name
        found = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        assert found <= allowed, f"{name}: {sorted(found - allowed)} missing from compat's allow-list"
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state["optimizer_history"][-1]["num_updates"] == 2 * N
        assert state["cfg"]["model"].arch == "dynamicconv_toy"
        assert state["cfg"]["model"].conv_edge == "renorm"
        # The optimizer and lr-scheduler state are in the file (Adam moments, inverse_sqrt).
        assert state["last_optimizer_state"]["state"], name
        assert state["optimizer_history"][-1]["optimizer_name"] == "FairseqAdam"
        assert "lr_scheduler_state" in state["optimizer_history"][-1]
