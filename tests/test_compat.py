"""The fairseq fixes the plugin applies when imported (lightconv_plugin/compat.py)."""

import logging

import numpy as np
import pytest
from fairseq.data import data_utils

import lightconv_plugin  # noqa: F401  (applies the fixes)


@pytest.mark.parametrize("n,mult,max_sentences", [(12, 8, 8), (5, 8, 8), (16, 8, 8), (23, 4, 6), (7, 1, 3)])
def test_batch_by_size_keeps_every_sample(n, mult, max_sentences):
    indices = np.arange(n, dtype=np.int64)[::-1].copy()
    batches = data_utils.batch_by_size(indices, lambda i: 10, max_sentences=max_sentences,
                                       required_batch_size_multiple=mult)
    assert np.array_equal(np.concatenate(batches), indices)  # all of them, in order
    assert all(len(b) <= max_sentences for b in batches)


def test_import_leaves_root_logger_out_of_debug():
    assert logging.getLogger().level != logging.DEBUG


def test_checkpoint_copies_are_atomic(tmp_path, monkeypatch):
    """A copy that dies half-way (a preempted job) leaves the old checkpoint_last.pt whole."""
    import shutil

    from fairseq.file_io import PathManager

    src, dst = tmp_path / "checkpoint_1_4.pt", tmp_path / "checkpoint_last.pt"
    src.write_bytes(b"new" * 1000)
    dst.write_bytes(b"old checkpoint")
    assert PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == src.read_bytes()

    dst.write_bytes(b"old checkpoint")

    def dies_half_way(fsrc, fdst, length=0):
        fdst.write(fsrc.read(100))
        raise KeyboardInterrupt("preempted")

    monkeypatch.setattr(shutil, "copyfileobj", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        PathManager.copy(str(src), str(dst), overwrite=True)
    assert dst.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_1_4.pt", "checkpoint_last.pt"]
