"""Fixes for fairseq 0.12 on current PyTorch, applied when the plugin is imported.

1. Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``, which
   refuses the Python objects fairseq writes into every checkpoint (the
   training arguments as an ``argparse.Namespace``, and a few more), so
   ``fairseq-generate`` and training resume fail. Those exact types are added
   to torch's allow-list of safe globals; nothing else is unpickled, so a
   checkpoint carrying any other object still fails loudly.
2. ``import fairseq`` runs ``logging.basicConfig(level=DEBUG)`` in one of its
   wav2vec modules, which floods any script with debug messages. The root
   logger is put back to INFO (fairseq's command-line tools' own level).
"""

from __future__ import annotations

import argparse
import logging

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


def quiet_root_logger():
    root = logging.getLogger()
    if root.level == logging.DEBUG:
        root.setLevel(logging.INFO)


allow_fairseq_checkpoints()
quiet_root_logger()
