"""Writers of archives with fixed time stamps (same seed, same bytes), and what damages them."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], compress=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(_gz(buf.getvalue()) if compress else buf.getvalue())


def _zip(path: Path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def _lines(lines) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")





def _tar_with_dirs(path: Path, dirs, members: dict[str, bytes]):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(_gz(buf.getvalue()))


def corrupt(path: Path) -> Path:
    """Flip a few bytes in place; the size stays the same."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if not data:
        raise ValueError(f"corrupt: {path} is empty")
    for pos in {0, len(data) // 2, len(data) - 1}:
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to `keep` of its size (as an interrupted download leaves it)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fixture_checksums(dest: Path) -> dict[str, str]:
    """{file name: sha256} of every file in dest."""
    return {p.name: sha256_of(p) for p in sorted(Path(dest).iterdir()) if p.is_file()}


def write_checksum_file(dest: Path, path: Path | None = None) -> Path:
    """sha256sum-style file of dest's archives, for fetch.py --checksum-file.

    Written to `path` (default: dest/../SHA256SUMS.<dest name>, outside dest
    so that it is not taken for an archive).
    """
    dest = Path(dest)
    path = Path(path) if path else dest.parent / f"SHA256SUMS.{dest.name}"
    path.write_text("".join(f"{h}  {n}\n" for n, h in fixture_checksums(dest).items()))
    return path

