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
