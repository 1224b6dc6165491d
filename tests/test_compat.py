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


def _bf16_config(*flags):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, input_args=[
        "data-bin", "--arch", "dynamicconv_toy", "--optimizer", "adam", "--task", "language_modeling",
        "--cpu", *flags])
    return convert_namespace_to_omegaconf(args)


def _tpu_flags(cfg) -> dict:
    return {name: cfg[name].tpu for name in cfg if getattr(cfg[name], "tpu", None) is not None}


@pytest.mark.parametrize("xla_installed", [False, True])
def test_bf16_is_not_a_tpu_run_without_torch_xla(monkeypatch, xla_installed):
    """fairseq reads --bf16 as --tpu too (fairseq #4696): without torch_xla every group's flag is
    cleared before call_main acts on it; with torch_xla fairseq's TPU run is left alone."""
    import importlib.util

    from fairseq.distributed import utils as dist_utils

    cfg = _bf16_config("--bf16")
    flags = _tpu_flags(cfg)
    # The device (common), the data-parallel wrapper, the optimizer, the task and the model's args.
    assert {"common", "distributed_training", "optimizer", "task", "model"} <= set(flags)
    assert all(flags.values()), flags
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "torch_xla" and xla_installed else find_spec(name, *a))
    seen = []
    dist_utils.call_main(cfg, lambda c: seen.append(_tpu_flags(c)))
    assert seen == [{name: xla_installed for name in flags}]
    assert cfg.common.bf16


def test_fp32_and_explicit_tpu_runs_are_left_alone():
    from fairseq.distributed import utils as dist_utils

    for flags, expected in (((), False), (("--tpu",), True)):
        cfg = _bf16_config(*flags)
        seen = []
        dist_utils.call_main(cfg, lambda c: seen.append(c.common.tpu))
        assert seen == [expected], flags
