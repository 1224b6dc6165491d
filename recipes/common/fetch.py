"""Stage 1 of the translation recipes: get the upstream archives.

    python recipes/common/fetch.py SETTING --downloads DIR [--skip-checksums]
        [--dry-run] [--only NAME ... | --pretrained NAME [--describe]]
        [--retries N] [--timeout S] [--checksum-file SUMS]

For each archive the setting needs (recipes/common/datasets.py): present in
DIR (or as parts NAME.00, NAME.01, ...) -> size and checksum verified;
missing and manual -> error saying what to
get, where, and where to put it; missing otherwise -> downloaded to NAME.part
(resumed with an HTTP Range request after an interruption, retried with
backoff), verified, then renamed into place.  Any failure exits 1 with one
line on stderr.

Checksum policy: an archive with no published checksum is refused while
checksums are on (the run stops before downloading anything), because a
silently wrong or truncated archive costs hours of later stages; after
checking it by other means, pass --skip-checksums (no size or checksum
checks at all), or better list its sha256 in a --checksum-file (lines
"HEX  NAME" as sha256sum writes them; md5 accepted), which replaces the
manifest's checksum and size for the archives it names (tests use it with
the fixture archives).  Problems that can be seen
without the network (manual archive missing, no checksum) are reported before
any download starts.

--pretrained NAME (a fairseq hub name of a released model of the setting,
datasets.RELEASES) fetches that model's archive and its binarised test set
instead of the training corpora, plus the setting's test archive when the
reference text must come from it.  None of the released archives has a
published checksum, so the policy above applies to them as to any other.
--describe prints the release's fields as KEY=VALUE lines (for the recipe)
and fetches nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import importlib.util
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

USER_AGENT = "lightconv-plugin-recipes/1 (python urllib)"
CHUNK = 1 << 20
# HTTP statuses worth retrying; any other 4xx is a permanent answer.
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def _load_manifest():
    # Loaded by path under a private name: "datasets" is also the name of a
    # popular PyPI package that may be installed in the same environment.
    name = "recipe_datasets"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("datasets.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


datasets = _load_manifest()


class FetchError(Exception):
    """A problem to report to the user as one line."""


def _human(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def file_digest(paths, algorithm: str) -> str:
    """Digest of a file, or of the concatenation of a list of parts."""
    h = hashlib.new(algorithm)
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
    return h.hexdigest()


def present(downloads: Path, name: str):
    """The archive's file in `downloads`, or the sorted list of its parts
    (NAME.00, NAME.01, ...: how big manual archives may be distributed), or None."""
    path = Path(downloads) / name
    if path.is_file():
        return path
    parts = sorted(Path(downloads).glob(f"{name}.[0-9][0-9]"))
    return parts or None


def verify(path, archive, *, checksums: bool = True) -> str:
    """Raise FetchError unless `path` (a file or a list of parts) has the
    archive's size and checksum.  Returns what was checked."""
    if not checksums:
        return "not verified (--skip-checksums)"
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    shown = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} parts)"
    size = sum(Path(p).stat().st_size for p in paths)
    if archive.size is not None and size != archive.size:
        raise FetchError(f"{shown}: size {size} bytes, expected {archive.size} "
                         f"(truncated or wrong file; delete it and re-run)")
    if archive.checksum is None:
        raise FetchError(_no_checksum_message(archive))
    algorithm, expected = archive.checksum
    actual = file_digest(paths, algorithm)
    if actual != expected.lower():
        raise FetchError(f"{shown}: {algorithm} mismatch: expected {expected}, got {actual} "
                         f"(expected value from {archive.source})")
    return f"{algorithm} ok"


def _no_checksum_message(archive) -> str:
    return (f"{archive.name} has no published checksum ({archive.source}); "
            f"check the file by other means, then re-run with --skip-checksums")


def _open(url: str, offset: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _download_once(archive, part: Path, timeout: float, log: Callable[[str], None]) -> None:
    """One attempt: append to `part` from where it stops (raises on failure)."""
    offset = part.stat().st_size if part.exists() else 0
    if archive.size is not None and offset > archive.size:
        part.unlink()
        offset = 0
    if archive.size is not None and offset == archive.size:
        return  # a complete .part left by an interrupted run: verify it
    # Only HTTP(S) servers can resume; an FTP transfer starts again.
    if offset and not archive.url.startswith(("http://", "https://")):
        offset = 0
    try:
        response = _open(archive.url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # The .part already holds the whole file (size not in the manifest).
            return
        raise
    with response:
        status = getattr(response, "status", None)
        if offset and status != 206:
            offset = 0  # the server ignored the Range header: start over
            log(f"{archive.name}: server does not resume, downloading from the start")
        length = response.headers.get("Content-Length")
        expected_end = offset + int(length) if length is not None else None
        written = offset
        last_report = time.monotonic()
        with open(part, "r+b" if offset else "wb") as out:
            out.seek(offset)
            out.truncate()
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                written += len(block)
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    log(f"{archive.name}: {_human(written)} of {_human(archive.size or expected_end)}")
            out.flush()
            os.fsync(out.fileno())
    if expected_end is not None and written < expected_end:
        raise ConnectionError(f"connection closed after {written} of {expected_end} bytes")


def _transient(error: Exception) -> bool:
    if isinstance(error, urllib.error.HTTPError):
        return error.code in TRANSIENT_HTTP
    return isinstance(error, (urllib.error.URLError, OSError, http.client.HTTPException))


def download(archive, downloads: Path, *, checksums: bool = True, retries: int = 3,
             timeout: float = 60.0, backoff: float = 2.0,
             log: Callable[[str], None] = print) -> Path:
    """Download `archive` into `downloads`, verify it, rename it into place."""
    final = downloads / archive.name
    part = downloads / (archive.name + ".part")
    log(f"downloading {archive.name} ({_human(archive.size)}) from {archive.url}"
        + (f", resuming at {_human(part.stat().st_size)}" if part.exists() else ""))
    for attempt in range(retries + 1):
        try:
            _download_once(archive, part, timeout, log)
            break
        except Exception as e:  # noqa: BLE001 - classified below
            reason = getattr(e, "reason", None) or e
            if attempt == retries or not _transient(e):
                kept = f"; partial data kept in {part}" if part.exists() and part.stat().st_size else ""
                raise FetchError(f"download of {archive.url} failed: {reason} "
                                 f"(after {attempt + 1} attempt(s){kept})") from None
            wait = backoff * 2 ** attempt
            log(f"{archive.name}: attempt {attempt + 1} failed ({reason}); retrying in {wait:g} s")
            time.sleep(wait)
    try:
        what = verify(part, archive, checksums=checksums)
    except FetchError as e:
        bad = downloads / (archive.name + ".bad")
        os.replace(part, bad)
        raise FetchError(f"downloaded from {archive.url}: {e} -- kept as {bad}") from None
    os.replace(part, final)
    log(f"ok {archive.name} (downloaded, {what})")
    return final


def plan(setting: str, downloads: Path, only: Iterable[str] | None = None):
    """(archives to have, note lines) for the setting, or the --only ones."""
    if only:
        names = list(dict.fromkeys(only))
        return [datasets.archive(setting, n) for n in names], []
    selection = datasets.select(setting, downloads)
    notes = []
    if selection.route == "preferred":
        notes.append(f"using {', '.join(a.name for a in selection.required)}; "
                     f"not needed: {', '.join(a.name for a in selection.optional)}")
    elif any(a.manual for a in selection.optional):
        notes.append("not present, not needed: " + ", ".join(
            a.name for a in selection.optional if a.manual) + " (the raw corpora are used)")
    return list(selection.required), notes


def fetch_archives(archives, downloads: Path, *, checksums: bool = True, dry_run: bool = False,
                   retries: int = 3, timeout: float = 60.0, backoff: float = 2.0,
                   log: Callable[[str], None] = print) -> list:
    """Make every archive present and verified in `downloads`; raise FetchError.

    Returns, per archive, its path, or the list of its parts when it is there
    in parts (NAME.00, NAME.01, ...).
    """
    downloads = Path(downloads)
    if downloads.exists() and not downloads.is_dir():
        raise FetchError(f"--downloads {downloads}: not a directory")
    found = {a.name: present(downloads, a.name) if downloads.is_dir() else None for a in archives}
    missing = [a for a in archives if found[a.name] is None]
    for a in missing:
        if a.manual:
            raise FetchError(f"missing {downloads / a.name} (not downloaded automatically) -- "
                             f"{a.how_to_get or 'get it from ' + a.url}")
    if checksums:
        for a in archives:
            if a.checksum is None:
                raise FetchError(_no_checksum_message(a))
    if dry_run:
        for a in archives:
            path = downloads / a.name
            if a in missing:
                log(f"would download {a.name} ({_human(a.size)}) from {a.url}")
            else:
                log(f"present {found[a.name] if isinstance(found[a.name], Path) else path} "
                    "(not verified in a dry run)")
        return [downloads / a.name for a in archives]
    downloads.mkdir(parents=True, exist_ok=True)
    paths = []
    for a in archives:
        path = downloads / a.name
        if a in missing:
            download(a, downloads, checksums=checksums, retries=retries, timeout=timeout,
                     backoff=backoff, log=log)
            paths.append(path)
        else:
            log(f"ok {a.name} (present, {verify(found[a.name], a, checksums=checksums)})")
            paths.append(found[a.name])
    return paths


def describe(setting: str, name: str) -> str:
    """KEY=VALUE lines of the release, in a form the recipe's `read` loop takes."""
    rel = datasets.release(setting, name)
    ref_archive, ref_member = rel.reference or ("", "")
    fields = {"model": rel.model, "archive": rel.archive, "test_set": rel.test_set,
              "in_paper": int(rel.in_paper), "ref_archive": ref_archive, "ref_member": ref_member}
    return "".join(f"{k}={v}\n" for k, v in fields.items())


def fetch(setting: str, downloads: Path, *, only=None, pretrained=None, checksum_file=None,
          **kwargs) -> list[Path]:
    if pretrained:
        archives, notes = list(datasets.release_archives(datasets.release(setting, pretrained))), []
    else:
        archives, notes = plan(setting, Path(downloads), only)
    if checksum_file is not None:
        archives = override_checksums(archives, read_checksum_file(checksum_file),
                                      f"--checksum-file {checksum_file}")
    log = kwargs.get("log", print)
    for note in notes:
        log(f"{setting}: {note}")
    return fetch_archives(archives, downloads, **kwargs)


def read_checksum_file(path: Path) -> dict[str, tuple[str, str]]:
    """{name: (algorithm, hex)} from sha256sum/md5sum-style lines."""
    sums = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise FetchError(f"--checksum-file {path}: {e.strerror}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 1)
        algorithm = {64: "sha256", 32: "md5"}.get(len(parts[0]))
        if len(parts) != 2 or algorithm is None or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            raise FetchError(f"--checksum-file {path}, line {lineno}: expected 'HEX  NAME' "
                             f"(sha256 or md5), got {line!r}")
        sums[Path(parts[1].strip().lstrip("*")).name] = (algorithm, parts[0].lower())
    return sums


def override_checksums(archives, sums: dict[str, tuple[str, str]], source: str):
    """The archives with the checksums of `sums` instead of the manifest's."""
    out = []
    for a in archives:
        if a.name in sums:
            algorithm, digest = sums[a.name]
            a = dataclasses.replace(a, size=None, sha256=digest if algorithm == "sha256" else None,
                                    md5=digest if algorithm == "md5" else None, source=source)
        out.append(a)
    return out


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="fetch.py", description="Download and verify the upstream archives of a recipe.")
    parser.add_argument("setting", choices=sorted(datasets.SETTINGS))
    parser.add_argument("--downloads", required=True, type=Path,
                        help="directory of the archives (one per setting: WMT years reuse file names)")
    parser.add_argument("--skip-checksums", action="store_true",
                        help="do not verify checksums (sizes still are)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be fetched; fetch nothing")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--only", nargs="+", metavar="NAME",
                       help="only these archives of the setting (optional ones included)")
    which.add_argument("--pretrained", metavar="NAME",
                       help="a released model of the setting (fairseq hub name): its archive and test set")
    parser.add_argument("--describe", action="store_true",
                        help="with --pretrained: print the release's fields; fetch nothing")
    parser.add_argument("--retries", type=_count, default=3, help="retries per download [3]")
    parser.add_argument("--timeout", type=_positive_float, default=60.0,
                        help="network timeout in seconds [60]")
    parser.add_argument("--checksum-file", type=Path, metavar="SUMS",
                        help="sha256sum-style file whose checksums replace the manifest's")
    args = parser.parse_args(argv)
    if args.describe and not args.pretrained:
        parser.error("--describe needs --pretrained NAME")
    try:
        if args.describe:
            print(describe(args.setting, args.pretrained), end="")
            return 0
        fetch(args.setting, args.downloads, only=args.only, pretrained=args.pretrained,
              checksum_file=args.checksum_file,
              checksums=not args.skip_checksums,
              dry_run=args.dry_run, retries=args.retries, timeout=args.timeout)
    except (FetchError, ValueError, OSError) as e:
        print(f"fetch.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fetch.py: interrupted (partial downloads are resumed next time)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
