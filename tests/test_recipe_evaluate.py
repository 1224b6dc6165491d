"""recipes/common/evaluate.py's raw-reference route: sacreBLEU for a released model whose binarised
test set holds tokenised references only (the WMT17 Zh-En releases), against the reference SGM
read where it lies inside the upstream archive. The end-to-end recipe tests score with stage 2's
prepared references instead, so only this test reaches that route."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import tarfile

import pytest
from sacremoses import MosesDetokenizer

from recipe_fixtures import datasets, make_downloads

from cli_helpers import REPO

EVALUATE = REPO / "recipes" / "common" / "evaluate.py"


def _segments(archive, member) -> list:
    """The <seg> texts of the SGM member, read here with tarfile and a regex."""
    with tarfile.open(archive) as tar:
        name = next(n for n in tar.getnames() if n.rsplit("/", 1)[-1] == member)
        text = tar.extractfile(name).read().decode("utf-8")
    return [html.unescape(s).strip() for s in re.findall(r"<seg id=\"\d+\">(.*?)</seg>", text)]


def _score(tmp_path, archive, member, lines) -> subprocess.CompletedProcess:
    out = tmp_path / "generate-test.txt"
    out.write_text("".join(lines))
    cmd = [sys.executable, str(EVALUATE), "--generate-output", str(out), "--src", "zh", "--tgt", "en",
           "--metrics", "sacrebleu", "--raw-ref-archive", str(archive), "--raw-ref-member", member,
           "--json-out", str(tmp_path / "r.json"), "--text-out", str(tmp_path / "r.txt")]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("name", ["lightconv.glu.wmt17.zh-en", "dynamicconv.glu.wmt17.zh-en"])
def test_sacrebleu_against_the_raw_reference_inside_the_archive(tmp_path, name):
    release = datasets.RELEASES[name]
    archive_name, member = release.reference
    archive = make_downloads(release.setting, tmp_path / "downloads") / archive_name
    refs = _segments(archive, member)
    # Hypotheses that detokenise to the references exactly: the references' own words. (Moses
    # tokenisation would not round-trip: it splits the typographic apostrophe of "doesn’t".)
    hyps = [" ".join(r.split()) for r in refs]
    assert [MosesDetokenizer("en").detokenize(h.split()) for h in hyps] == refs

    def generate(order):
        return [f"T-{i}\t{hyps[i]}\nH-{i}\t-0.5\t{hyps[j]}\n" for i, j in enumerate(order)]

    proc = _score(tmp_path, archive, member, generate(range(len(refs))))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())["metrics"]["sacrebleu"]
    assert result["score"] == 100.0 and "tok:13a" in result["signature"], result

    proc = _score(tmp_path, archive, member, generate(reversed(range(len(refs)))))  # paired by id, not by text
    assert proc.returncode == 0 and json.loads((tmp_path / "r.json").read_text())["metrics"]["sacrebleu"]["score"] < 50

    proc = _score(tmp_path, archive, member, generate(range(len(refs)))[:-1])
    assert proc.returncode != 0
    assert f"{len(refs) - 1} hypotheses for {len(refs)} reference segments" in proc.stderr, proc.stderr
