"""The package as a user installs it (a wheel, not this checkout): complete, and a working --user-dir.

``make setup`` installs the checkout in editable mode, so nothing else would
notice a subpackage left out of pyproject.toml's list: the wheel would then
lack it, and ``import lightconv_plugin`` fail for everyone who installs it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cli_helpers as fc

REPO = Path(__file__).resolve().parent.parent
# Where each import package's sources live in the checkout (pyproject's package-dir).
SOURCES = {"lightconv_kernels": REPO / "kernels", "lightconv_plugin": REPO / "lightconv_plugin"}


def _pip(*args):
    subprocess.run([sys.executable, "-m", "pip", "-q", *map(str, args)], check=True, capture_output=True, text=True)


def _packages(root: Path, name: str) -> set:
    return {".".join((name, *d.relative_to(root).parts)) for d in [root, *root.rglob("*")]
            if d.is_dir() and (d / "__init__.py").exists()}


def test_wheel_holds_every_package_and_trains_from_an_outside_folder(tmp_path, tmp_path_factory):
    _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp_path / "wheel", REPO)
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--no-index", "--target", site, *(tmp_path / "wheel").glob("*.whl"))

    for name, src in SOURCES.items():
        assert _packages(site / name, name) == _packages(src, name), name

    # Elsewhere, with the installed copy first on the path (ahead of make setup's editable install).
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = dict(fc.env(), PYTHONPATH=str(site))
    py = [sys.executable, "-c", "import lightconv_plugin, lightconv_kernels; "
          "print(lightconv_plugin.__file__); print(lightconv_kernels.__file__)"]
    files = subprocess.run(py, cwd=outside, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(f.startswith(str(site)) for f in files), files
    user_dir = subprocess.run([sys.executable, "-m", "lightconv_plugin", "--user-dir"], cwd=outside, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()
    assert user_dir == str(site / "lightconv_plugin")

    data = fc.translation_data(tmp_path_factory)
    train = [str(fc.BIN / "fairseq-train"), str(data), "--save-dir", str(tmp_path / "ckpt"), "--user-dir", user_dir,
             *fc.TRAIN_COMMON, "--arch", "dynamicconv_toy", "--optimizer", "adam", "--lr", "1e-3",
             "--max-tokens", "500", "--max-update", "2"]
    proc = subprocess.run(train, cwd=outside, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ConvSeq2SeqModel" in proc.stdout + proc.stderr and (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_kernels_import_and_run_without_fairseq():
    """``lightconv_kernels`` is usable on its own: every module imports, and the ops run, with fairseq
    made unimportable."""
    code = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['fairseq'] = None  # any import of fairseq now raises ImportError\n"
        "import torch, lightconv_kernels as k\n"
        "names = [m.name for m in pkgutil.walk_packages(k.__path__, 'lightconv_kernels.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "x = torch.randn(2, 10, 8)\n"
        "k.lightweight_conv(x, torch.randn(4, 3), 1)\n"
        "k.dynamic_conv(x, torch.randn(2, 10, 4, 3), 2)\n"
        "k.talk_conv(x, torch.rand(2, 10, 4), torch.rand(2, 10, 4), 2, 2)\n"
        "print(len(names))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=dict(fc.env(), TRITON_INTERPRET="1"),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(proc.stdout.split()[-1]) >= 20
