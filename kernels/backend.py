"""Choice between the Triton kernels and the PyTorch reference path.

``LIGHTCONV_BACKEND`` is read at every call so that tests and users can switch
without re-importing:

* ``auto`` (default): CUDA tensors use Triton, everything else PyTorch.
* ``triton``: always Triton. CPU tensors then need ``TRITON_INTERPRET=1`` set
  before the kernels are first imported (the Triton interpreter).
* ``torch``: always the PyTorch reference path (on any device).

``LIGHTCONV_CONV_BODY`` restricts which body of the lightweight/dynamic conv
kernels the autotuner may pick (``auto``, ``taps`` or ``band``; see
:mod:`lightconv_kernels.conv.triton_band`). It is read when a shape is first
tuned, and checked at every call.
"""

from __future__ import annotations

import importlib
import os
import re

import torch

ENV_VAR = "LIGHTCONV_BACKEND"
CHOICES = ("auto", "triton", "torch")


BODY_VAR = "LIGHTCONV_CONV_BODY"
BODIES = ("auto", "taps", "band")


def _env_choice(var: str, choices) -> str:
    """The value of ``var``, lower-cased, ``choices[0]`` when unset; anything else raises."""
    value = os.environ.get(var, choices[0]).strip().lower() or choices[0]
    if value not in choices:
        raise ValueError(f"{var}={value!r}: expected one of {', '.join(choices)}")
    return value


def requested() -> str:
    return _env_choice(ENV_VAR, CHOICES)


def conv_body() -> str:
    return _env_choice(BODY_VAR, BODIES)


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(x: torch.Tensor) -> bool:
    """True when the call on ``x`` must go to the Triton kernels."""
    choice = requested()
    if choice == "torch":
        return False
    if choice == "auto":
        return x.is_cuda
    if not x.is_cuda and not interpreter_enabled():
        raise ValueError(
            f"{ENV_VAR}=triton with a tensor on device {x.device}: Triton runs CPU tensors only "
            "under TRITON_INTERPRET=1 (set before lightconv_kernels is imported)"
        )
    return True


# Triton 3.3 added tl.gather (TaLK's backward). Every kernel compiles for
# sm_80/sm_90 with Triton 3.3, 3.4, 3.6 and 3.7 (scripts/kernel_report.py);
# under 3.0-3.1 the conv kernels fail (a tl.arange of a computed size).
MIN_TRITON = (3, 3)


def check_triton() -> None:
    """Raise one clear error when Triton is missing or older than MIN_TRITON."""
    want = ".".join(map(str, MIN_TRITON))
    try:
        import triton
    except ImportError as e:
        raise ImportError(
            f"the Triton kernels need triton >= {want} (installed with PyTorch >= 2.7 on Linux): {e}; "
            f"or set {ENV_VAR}=torch for the PyTorch path"
        ) from e
    version = tuple(int(part) for part in re.findall(r"\d+", triton.__version__)[:2])
    if version < MIN_TRITON:
        raise RuntimeError(
            f"triton.__version__={triton.__version__!r}: the Triton kernels need triton >= {want} "
            f"(PyTorch >= 2.7 installs it); upgrade, or set {ENV_VAR}=torch for the PyTorch path"
        )


_MODULES: dict = {}


def implementation(x: torch.Tensor, op_package: str):
    """The module that runs an op on ``x``: ``<op_package>.triton_impl`` or
    ``<op_package>.reference``. The Triton one is imported only when first used,
    so that TRITON_INTERPRET can still be set before the kernels are defined."""
    key = (op_package, "triton_impl" if use_triton(x) else "reference")
    module = _MODULES.get(key)
    if module is None:  # import_module costs microseconds at every call; this is on every op's path
        if key[1] == "triton_impl":
            check_triton()
        module = _MODULES[key] = importlib.import_module(".".join(key))
    return module
