"""Archives laid out as the paper's released checkpoints and test sets."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

from .manifest import datasets

# The layout of the archives of Wu et al. (2019) as fairseq's hub loader reads
# them (fairseq/file_utils.py load_archive_file, hub_utils.from_pretrained):
# one top folder holding model.pt, dict.<src>.txt, dict.<tgt>.txt and the BPE
# codes; the binarised test sets (.tar.bz2) likewise hold one top folder with
# the test split and the same dictionaries. The top folders' names are not
# documented; the archive's name without its extension is used here.

def _top_folder(archive_name: str) -> str:
    return re.sub(r"\.tar\.(gz|bz2)$", "", archive_name)


def _tar_files(path: Path, top: str, files: dict[str, Path], mode: str):
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)
        for name, src in files.items():
            data = Path(src).read_bytes()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


def make_released_model(name: str, checkpoint: Path, bin_dir: Path, bpecodes: Path, dest: Path,
                        src: str, tgt: str) -> tuple[Path, Path]:
    """The model archive and binarised test-set archive of the release `name`
    (datasets.RELEASES), under their upstream names in dest, from a fairseq
    ``lightconv`` checkpoint and the fairseq-preprocess folder it was trained on.
    Returns (model archive, test-set archive)."""
    rel = datasets.RELEASES[name]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(bin_dir)
    dicts = {f"dict.{lang}.txt": bin_dir / f"dict.{lang}.txt" for lang in (src, tgt)}
    model = dest / rel.archive
    _tar_files(model, _top_folder(rel.archive),
               {"model.pt": checkpoint, **dicts, "bpecodes": bpecodes}, "w:gz")
    split = {f"test.{src}-{tgt}.{lang}.{ext}": bin_dir / f"test.{src}-{tgt}.{lang}.{ext}"
             for lang in (src, tgt) for ext in ("bin", "idx")}
    test_set = dest / rel.test_set
    _tar_files(test_set, _top_folder(rel.test_set), {**dicts, **split}, "w:bz2")
    return model, test_set
