"""Test set-up shared by every test file.

Without a GPU the Triton kernels run under the Triton interpreter, which must
be switched on before any kernel is defined, i.e. before the kernel modules
are imported; conftest is imported first, so it is done here.
"""

import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist (make test) each worker gets one thread: the workers
# already share the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(__file__))
