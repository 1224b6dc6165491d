"""Fixes for fairseq 0.12 on current PyTorch, applied when the plugin is imported.

1. Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, which
   refuses the Python objects fairseq writes into every checkpoint (the
   training arguments as an ``argparse.Namespace``, and a few more), so
   ``fairseq-generate`` and training resume fail. Those exact types are added
   to torch's allow-list of safe globals; nothing else is unpickled, so a
   checkpoint carrying any other object still fails loudly.
2. ``fairseq.data.data_utils.batch_by_size`` discards the last batch when its
   size is not a multiple of ``--required-batch-size-multiple`` (default 8):
   ``fairseq-generate`` then silently translates and scores only part of the
   test set, and training never sees the same few sentences (fairseq issue
   #5036, open). The batches are consecutive slices of the sorted indices, so
   the discarded ones are exactly the tail: it is put back as a last batch.
3. ``import fairseq`` runs ``logging.basicConfig(level=DEBUG)`` in one of its
   wav2vec modules, which floods any script with debug messages. The root
   logger is put back to INFO (fairseq's command-line tools' own level).
4. A distributed training that resumes from a checkpoint loads it on rank 0
   and sends the loaded state, its OmegaConf config included, to the other
   ranks as a pickle, which they read with ``torch.load`` and its new
   ``weights_only=True`` default: every rank but 0 crashes on the config
   classes, so no multi-GPU (or multi-node) run can resume. Those bytes come
   from rank 0 of the same job, not from a file, so the receiving side loads
   them in full; the same protocol (length, then bytes) is kept.
5. fairseq writes a checkpoint atomically (a temporary file, then a rename)
   but then copies it to ``checkpoint_last.pt`` (and the other names) with a
   plain ``shutil.copyfile``: a job preempted during that copy leaves a
   truncated ``checkpoint_last.pt``, and the requeued job, which resumes from
   it, dies. Local copies now go to a temporary file in the destination's
   folder and are renamed into place, so the old file stays whole until the
   new one is complete.
6. fairseq 0.12 reads ``--bf16`` as a TPU run: it sets ``--tpu`` too
   (fairseq issue #4696, open), so without torch_xla every bf16 training
   dies at start (``'NoneType' object has no attribute 'xla_device'``) and
   GPUs cannot train in bf16 at all. Where torch_xla is not installed no TPU
   run was possible, so the implied ``tpu`` is cleared before fairseq acts on
   it: bf16 then trains on the GPUs (or the CPU) the way ``--fp16`` does,
   with fairseq's FP16Optimizer keeping float32 master weights, and no loss
   scaling.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging

import numpy as np
import torch


def _checkpoint_globals():
    # Found with torch.serialization.get_unsafe_globals_in_checkpoint on
    # checkpoints written by fairseq-train 0.12 (tests/test_checkpoints.py
    # keeps the list complete).
    return [argparse.Namespace]


def allow_fairseq_checkpoints():
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is not None:  # torch < 2.4 loads with weights_only=False anyway
        add(_checkpoint_globals())


def keep_last_batch():
    from fairseq.data import data_utils

    original = data_utils.batch_by_size
    if getattr(original, "keeps_last_batch", False):
        return

    def batch_by_size(indices, *args, fixed_shapes=None, **kwargs):
        batches = original(indices, *args, fixed_shapes=fixed_shapes, **kwargs)
        if fixed_shapes is not None:
            return batches
        batches = list(batches)
        covered = sum(len(b) for b in batches)
        if covered < len(indices):
            batches.append(np.asarray(indices)[covered:])
        return batches

    batch_by_size.keeps_last_batch = True
    data_utils.batch_by_size = batch_by_size


def trust_broadcast_objects():
    from fairseq.distributed import utils as dist_utils

    if getattr(dist_utils._broadcast_object_slow, "trusts_peers", False):
        return

    def broadcast_object_slow(obj, src_rank, group, dist_device):
        import io

        if dist_utils.get_rank(group) == src_rank:
            raw = io.BytesIO()
            torch.save(obj, raw)
            data = torch.ByteTensor(raw.getbuffer()).to(dist_device)
            dist_utils.broadcast(torch.LongTensor([len(data)]).to(dist_device), src=src_rank, group=group)
            dist_utils.broadcast(data, src=src_rank, group=group)
            return obj
        length = torch.LongTensor([0]).to(dist_device)
        dist_utils.broadcast(length, src=src_rank, group=group)
        data = torch.ByteTensor(int(length.item())).to(dist_device)
        dist_utils.broadcast(data, src=src_rank, group=group)
        return torch.load(io.BytesIO(data.cpu().numpy()), map_location="cpu", weights_only=False)

    broadcast_object_slow.trusts_peers = True
    dist_utils._broadcast_object_slow = broadcast_object_slow


def atomic_checkpoint_copies():
    import os
    import shutil
    import tempfile

    from fairseq import file_io

    manager = file_io.PathManager
    if getattr(manager.copy, "atomic", False) or file_io.IOPathManager:
        return  # iopath's managers copy remote paths their own way

    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if os.path.exists(dst_path) and not overwrite:
            raise FileExistsError(f"{dst_path} exists and overwrite is False")
        fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=os.path.dirname(os.path.abspath(dst_path)))
        try:
            with os.fdopen(fd, "wb") as out, open(src_path, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
            os.replace(tmp, dst_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True

    copy.atomic = True
    manager.copy = staticmethod(copy)


def bf16_without_xla_is_not_tpu():
    from fairseq.distributed import utils as dist_utils

    original = dist_utils.call_main
    if getattr(original, "bf16_off_tpu", False):
        return

    # Every fairseq command line hands its config to call_main before anything
    # reads a tpu flag: the device and process spawning (common), the
    # data-parallel wrapper (distributed_training), the optimizer, some tasks.
    # Each group holds its own copy of the flag.
    def call_main(cfg, main, **kwargs):
        common = cfg.common
        if common.bf16 and common.tpu and importlib.util.find_spec("torch_xla") is None:
            for name in cfg:
                group = cfg[name]
                if getattr(group, "tpu", False):
                    group.tpu = False
            where = "GPU" if torch.cuda.is_available() and not common.cpu else "CPU"
            logging.getLogger(__name__).info(
                "--bf16 without torch_xla: training in bfloat16 on the %s (fairseq 0.12 reads --bf16 as --tpu)",
                where)
        return original(cfg, main, **kwargs)

    call_main.bf16_off_tpu = True
    dist_utils.call_main = call_main


def quiet_root_logger():
    root = logging.getLogger()
    if root.level == logging.DEBUG:
        root.setLevel(logging.INFO)


allow_fairseq_checkpoints()
keep_last_batch()
trust_broadcast_objects()
atomic_checkpoint_copies()
bf16_without_xla_is_not_tpu()
quiet_root_logger()
