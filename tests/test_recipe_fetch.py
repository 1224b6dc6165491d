"""recipes/common/fetch.py against a local HTTP server serving fixture archives."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import importlib.util
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

import recipe_fixtures as rf

_spec = importlib.util.spec_from_file_location(
    "recipe_fetch", Path(__file__).resolve().parent.parent / "recipes" / "common" / "fetch.py")
fetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch)
Archive = fetch.datasets.Archive


class _Server:
    """Serves `files` ({path: bytes}) with Range support; `fail` injects faults.

    fail[path] is a list of faults used one per request: "503" answers 503,
    "drop" sends half of the body then closes the connection.
    """

    def __init__(self):
        self.files, self.fail, self.requests = {}, {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                faults = server.fail.get(self.path) or []
                fault = faults.pop(0) if faults else None
                data = server.files.get(self.path)
                if fault == "503":
                    self.send_error(503)
                    return
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def iwslt_archive(tmp_path_factory):
    src = rf.make_downloads("iwslt14_de_en", tmp_path_factory.mktemp("fixture"))
    return (src / "de-en.tgz").read_bytes()


def _archive(server, data, **changes):
    server.files["/de-en.tgz"] = data
    a = Archive(name="de-en.tgz", url=server.url + "/de-en.tgz", size=len(data),
                sha256=hashlib.sha256(data).hexdigest(), source="test")
    return dataclasses.replace(a, **changes)


def _run(archives, downloads, **kw):
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    lines = []
    paths = fetch.fetch_archives(archives, downloads, log=lines.append, **kw)
    return paths, lines


def test_download_verifies_and_renames(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    paths, lines = _run([a], tmp_path / "dl")
    assert paths == [tmp_path / "dl" / "de-en.tgz"]
    assert paths[0].read_bytes() == iwslt_archive
    assert not (tmp_path / "dl" / "de-en.tgz.part").exists()
    assert lines[-1].startswith("ok de-en.tgz (downloaded, sha256 ok")


def test_resumes_from_part_file(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    half = len(iwslt_archive) // 2
    (tmp_path / "de-en.tgz.part").write_bytes(iwslt_archive[:half])
    _run([a], tmp_path)
    assert server.requests == [("/de-en.tgz", f"bytes={half}-")]
    assert (tmp_path / "de-en.tgz").read_bytes() == iwslt_archive


def test_retries_after_transient_failures(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    server.fail["/de-en.tgz"] = ["503", "drop"]
    _, lines = _run([a], tmp_path, retries=3)
    assert (tmp_path / "de-en.tgz").read_bytes() == iwslt_archive
    # The attempt after the dropped connection resumes where it stopped.
    assert [r for _, r in server.requests] == [None, None, f"bytes={len(iwslt_archive) // 2}-"]
    assert sum("retrying" in line for line in lines) == 2


def test_gives_up_after_retries(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    server.fail["/de-en.tgz"] = ["503"] * 5
    with pytest.raises(fetch.FetchError, match=r"download of http://127\.0\.0\.1:\d+/de-en\.tgz failed"):
        _run([a], tmp_path, retries=1)
    assert len(server.requests) == 2


def test_checksum_mismatch_is_one_line_and_not_renamed(server, iwslt_archive, tmp_path, monkeypatch,
                                                        capsys):
    a = _archive(server, iwslt_archive, sha256="0" * 64)
    monkeypatch.setattr(fetch, "plan", lambda setting, downloads, only=None: ([a], []))
    assert fetch.main(["iwslt14_de_en", "--downloads", str(tmp_path), "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256 mismatch" in err and "0" * 64 in err
    assert hashlib.sha256(iwslt_archive).hexdigest() in err
    assert not (tmp_path / "de-en.tgz").exists()
    assert (tmp_path / "de-en.tgz.bad").exists()


def test_present_archive_with_bad_checksum(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    (tmp_path / "de-en.tgz").write_bytes(iwslt_archive)
    rf.corrupt(tmp_path / "de-en.tgz")
    with pytest.raises(fetch.FetchError, match="sha256 mismatch"):
        _run([a], tmp_path)
    (tmp_path / "de-en.tgz").write_bytes(iwslt_archive)
    rf.truncate(tmp_path / "de-en.tgz")
    with pytest.raises(fetch.FetchError, match="expected %d" % len(iwslt_archive)):
        _run([a], tmp_path)
    assert server.requests == []


def test_no_network_names_the_url(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/de-en.tgz"
    a = Archive(name="de-en.tgz", url=url, sha256="0" * 64, source="test")
    monkeypatch.setattr(fetch, "plan", lambda setting, downloads, only=None: ([a], []))
    assert fetch.main(["iwslt14_de_en", "--downloads", str(tmp_path), "--retries", "1",
                       "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and url in err


def test_manual_archive_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    assert fetch.main(["wmt17_zh_en", "--downloads", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(tmp_path / "UNv1.0.en-zh.tar.gz") in err          # the file and where to put it
    assert "https://conferences.unite.un.org/uncorpus" in err     # where to get it
    assert list(tmp_path.iterdir()) == []


def _no_network(*args, **kwargs):
    raise AssertionError("network used")


def test_dry_run_fetches_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    downloads = tmp_path / "dl"
    assert fetch.main(["wmt14_en_fr", "--downloads", str(downloads), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would download training-giga-fren.tar" in out
    assert not downloads.exists()


def test_no_published_checksum_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    a = Archive(name="x.tgz", url="http://127.0.0.1:9/x.tgz", source="no public checksum found")
    monkeypatch.setattr(fetch, "plan", lambda setting, downloads, only=None: ([a], []))
    assert fetch.main(["iwslt14_de_en", "--downloads", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "x.tgz has no published checksum" in err and "--skip-checksums" in err


def test_present_archive_is_not_downloaded_again(server, iwslt_archive, tmp_path):
    a = _archive(server, iwslt_archive)
    (tmp_path / "de-en.tgz").write_bytes(iwslt_archive)
    _, lines = _run([a], tmp_path)
    assert server.requests == []
    assert lines == ["ok de-en.tgz (present, sha256 ok)"]


def test_wmt16_uses_google_tarball_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    archives, _ = fetch.plan("wmt16_en_de", tmp_path)
    assert "wmt16_en_de.tar.gz" not in [a.name for a in archives]
    assert "training-parallel-nc-v11.tgz" in [a.name for a in archives]
    rf.make_downloads("wmt16_en_de", tmp_path / "google")
    archives, _ = fetch.plan("wmt16_en_de", tmp_path / "google")
    assert [a.name for a in archives] == ["wmt16_en_de.tar.gz"]


def test_checksum_file_with_fixtures(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    dl = rf.make_downloads("wmt17_zh_en", tmp_path / "dl")
    sums = rf.write_checksum_file(dl)
    assert fetch.main(["wmt17_zh_en", "--downloads", str(dl), "--checksum-file", str(sums)]) == 0
    rf.corrupt(dl / "test.tgz")
    assert fetch.main(["wmt17_zh_en", "--downloads", str(dl), "--checksum-file", str(sums)]) == 1


def test_manual_archive_in_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    whole = b"0123456789" * 1000
    (tmp_path / "UN.tgz.00").write_bytes(whole[:6000])
    (tmp_path / "UN.tgz.01").write_bytes(whole[6000:])
    a = Archive(name="UN.tgz", url="https://example.org/un", size=len(whole), manual=True,
                sha256=hashlib.sha256(whole).hexdigest(), source="test")
    paths, lines = _run([a], tmp_path)
    assert paths == [[tmp_path / "UN.tgz.00", tmp_path / "UN.tgz.01"]]
    assert lines == ["ok UN.tgz (present, sha256 ok)"]
    rf.corrupt(tmp_path / "UN.tgz.01")
    with pytest.raises(fetch.FetchError, match=r"UN\.tgz\.00 \(\+1 parts\): sha256 mismatch"):
        _run([a], tmp_path)
