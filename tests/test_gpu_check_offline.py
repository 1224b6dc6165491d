"""scripts/gpu_check_offline.sh: bundle here, then run with another Python's own torch.

The bundle is made for this interpreter's version (it downloads from PyPI, as
``make setup`` does), and ``run`` uses this interpreter as the machine's own
Python. fairseq is installed here too, so the test checks that ``run`` imports
the copy it built, not that one, and that a second run reuses the first's
installation. The GPU part is gpu_check's smoke mode (CPU, Triton interpreter).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check_offline.sh"


def _sh(*args, env=None):
    proc = subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_bundle_then_run_uses_its_own_fairseq(tmp_path):
    bundle, site = tmp_path / "bundle", tmp_path / "site"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONWARNINGS="ignore")
    env.pop("TRITON_INTERPRET", None)
    rc, log = _sh("bundle", bundle, f"{sys.version_info.major}.{sys.version_info.minor}", env=env)
    assert rc == 0, log
    names = sorted(p.name.split("-")[0] for p in bundle.iterdir())
    assert names == ["antlr4_python3_runtime", "bitarray", "fairseq_fixed", "hydra_core", "omegaconf"], names

    env["LIGHTCONV_SITE"] = str(site)
    rc, log = _sh("run", bundle, "--device", "cpu", "--interpret", "--parts", "bench", "--out", tmp_path / "out",
                  env=env)
    assert rc == 0, log
    origin = next(line for line in log.splitlines() if line.startswith("gpu_check_offline.sh: fairseq from"))
    assert f"fairseq from {site / 'fairseq-src' / 'fairseq'}" in origin, origin
    assert f"lightconv_kernels from {site / 'lightconv_kernels'}" in origin, origin
    assert f"lightconv_plugin from {REPO / 'lightconv_plugin'}" in origin, origin
    kernels = (tmp_path / "out" / "kernels.csv").read_text()
    assert "fairseq" in kernels and "failed" not in kernels, kernels

    for archive in bundle.glob("fairseq_fixed-*"):  # a second run reuses the first's installation
        archive.unlink()
    rc, log = _sh("run", bundle, "--help", env=env)  # gpu_check's help: the import check above it ran
    assert rc == 0 and "gpu_check_offline.sh: fairseq from" in log and "--parts" in log, log


def test_run_without_a_bundle_says_how_to_make_one(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, LIGHTCONV_SITE=str(tmp_path / "site"))
    rc, log = _sh("run", tmp_path / "empty", env=env)
    assert rc == 1 and "no fairseq-fixed source archive" in log and "bundle" in log, log


def _bare_python(tmp_path) -> str:
    bare = tmp_path / "python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # -S: no site-packages, so no torch
    bare.chmod(0o755)
    return str(bare)


def test_run_names_what_the_machine_python_lacks(tmp_path):
    """The bundle holds only what a PyTorch image usually lacks; the rest must be there, and run says
    which is not, before installing anything."""
    env = dict(os.environ, PYTHON=_bare_python(tmp_path), LIGHTCONV_SITE=str(tmp_path / "site"))
    rc, log = _sh("run", tmp_path / "bundle", env=env)
    assert rc == 1 and "this Python lacks: torch (" in log and "scikit-learn (" in log and "EXTRA=" in log, log
    assert not (tmp_path / "site").exists()


def test_bundle_needs_a_python_with_torch(tmp_path):
    """pip reads fairseq's archive by running its setup.py, which imports torch: say so first."""
    rc, log = _sh("bundle", tmp_path / "bundle", env=dict(os.environ, PYTHON=_bare_python(tmp_path)))
    assert rc == 1 and "needs torch, numpy and Cython" in log and "make setup" in log, log
    assert not (tmp_path / "bundle").exists()
