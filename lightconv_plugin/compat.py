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
"""

from __future__ import annotations

import argparse
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


def quiet_root_logger():
    root = logging.getLogger()
    if root.level == logging.DEBUG:
        root.setLevel(logging.INFO)


allow_fairseq_checkpoints()
keep_last_batch()
quiet_root_logger()
