"""make_downloads: every archive of a recipe setting, under its upstream name."""

from __future__ import annotations

from pathlib import Path

from .cnn_dailymail import _make_cnn_dailymail
from .lm import _make_gbw_lm, _make_wikitext103
from .manifest import datasets
from .translation import _make_iwslt, _make_wmt14, _make_wmt16, _make_wmt17

_MAKERS = {"iwslt14_de_en": _make_iwslt, "wmt16_en_de": _make_wmt16,
           "wmt14_en_fr": _make_wmt14, "wmt17_zh_en": _make_wmt17,
           "cnn_dailymail": _make_cnn_dailymail, "gbw_lm": _make_gbw_lm,
           "wikitext103_lm": _make_wikitext103}


def make_downloads(setting: str, dest: Path, *, seed: int = 0, google: bool = True) -> Path:
    """Write every archive of `setting` (optional ones included) into dest.

    google=False leaves out wmt16's wmt16_en_de.tar.gz (to test the raw route).
    """
    if setting not in _MAKERS:
        raise ValueError(f"unknown setting {setting!r} (choose from: {', '.join(_MAKERS)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if setting == "wmt16_en_de":
        _make_wmt16(dest, seed, google=google)
    else:
        _MAKERS[setting](dest, seed)
    expected = set(datasets.archive_names(setting)) - ({"wmt16_en_de.tar.gz"} if not google else set())
    written = {p.name for p in dest.iterdir()}
    assert expected <= written, f"fixture for {setting} lacks {sorted(expected - written)}"
    return dest

