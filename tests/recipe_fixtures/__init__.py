"""Small fake upstream downloads for the recipe tests, under their upstream names.

``make_downloads(setting, dest, seed=0)`` writes every archive of a setting
(recipes/common/datasets.py) with the upstream member layout, in a learnable
synthetic text (:mod:`.text`). Same seed, same bytes: tar, gzip and zip time
stamps are fixed. Each data set's layout and counts are in its module:
:mod:`.translation` (IWSLT14, WMT16/14/17), :mod:`.cnn_dailymail`,
:mod:`.lm` (One Billion Word, WikiText-103) and :mod:`.released` (the paper's
checkpoints and binarised test sets).
"""

from .archives import corrupt, truncate, write_checksum_file
from .cnn_dailymail import CNN_DM_LAYOUT, cnn_dailymail_stories
from .downloads import make_downloads
from .lm import gbw_lm_shards, wikitext103_lines
from .manifest import datasets
from .released import make_released_model
from .translation import corpus_lines

__all__ = ["CNN_DM_LAYOUT", "cnn_dailymail_stories", "corpus_lines", "corrupt", "datasets", "gbw_lm_shards",
           "make_downloads", "make_released_model", "truncate", "wikitext103_lines", "write_checksum_file"]
