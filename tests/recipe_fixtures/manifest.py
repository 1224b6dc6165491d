"""The recipes' data-set manifest (recipes/common/datasets.py), loaded as fetch.py loads it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

def _load_manifest():
    # Same private module name as fetch.py uses, so both see one manifest.
    name = "recipe_datasets"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "recipes" / "common" / "datasets.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


datasets = _load_manifest()
