#!/usr/bin/env bash
# make gpu-check on a GPU machine that cannot reach PyPI and already has its own
# Python with torch, Triton, numpy, Cython and the usual scientific packages
# (PyYAML, tqdm, packaging, scikit-learn, sacrebleu, matplotlib, pytest: a
# cluster's compute node with a site PyTorch module, a vendor's GPU image),
# without touching that Python. run checks for them first and names what lacks.
#
#   bash scripts/gpu_check_offline.sh bundle DIR [PYTHON_VERSION]   # with network (default 3.12)
#   bash scripts/gpu_check_offline.sh run DIR [gpu_check.py options] # there, from a copy of this checkout
#
# bundle: the few wheels such an image lacks (hydra-core, omegaconf,
#   antlr4-python3-runtime, bitarray; name more in EXTRA="pkg==ver ...") for
#   that Python on x86-64 Linux, and fairseq-fixed's source, about 11 MB.
# run: installs the wheels into a private folder (LIGHTCONV_SITE, default
#   /tmp/lightconv-site), compiles the three extensions of fairseq that
#   training and scoring import (two Cython modules and libbleu; not the CUDA
#   ones, which nothing here uses and which take nvcc minutes), puts them,
#   fairseq and this checkout on PYTHONPATH, and runs scripts/gpu_check.py
#   (its model part included: bench_models.py runs fairseq in-process).
#   A second run on the same machine skips what the first installed.
# PYTHON names the interpreter: default python3 for run; for bundle, make setup's .venv
# when there is one (reading fairseq's source archive needs torch, numpy and Cython).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd -P)
PY=${PYTHON:-python3}
if [[ -z "${PYTHON:-}" && "${1:-}" == bundle && -x "$REPO/.venv/bin/python" ]]; then
    PY=$REPO/.venv/bin/python  # make setup's, which has what reading fairseq's source archive needs
fi
FAIRSEQ=fairseq-fixed==0.12.3.1
die() { echo "gpu_check_offline.sh: $*" >&2; exit 1; }

bundle() {
    local dir=$1 pyv=${2:-3.12}
    # pip reads the archive's metadata by running fairseq's setup.py, which imports torch; build
    # isolation would instead download torch for it.
    "$PY" -c "import torch, numpy, Cython, setuptools" 2>/dev/null \
        || die "bundle runs fairseq's setup.py, which needs torch, numpy and Cython: run make setup first (its .venv is used), or set PYTHON"
    mkdir -p "$dir"
    local plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
                --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    # antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as a source archive only.
    "$PY" -m pip wheel -q --no-deps -c "$REPO/constraints.txt" -w "$dir" "antlr4-python3-runtime==4.9.3"
    # shellcheck disable=SC2086  # EXTRA is a list of requirement strings
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyv" --implementation cp \
        "${plat[@]}" -c "$REPO/constraints.txt" -d "$dir" hydra-core omegaconf bitarray ${EXTRA:-}
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary=:all: -d "$dir" "$FAIRSEQ"
    ls "$dir"/fairseq_fixed-*.tar.gz >/dev/null || die "no fairseq-fixed source archive in $dir"
    echo "bundle for Python $pyv in $dir ($(du -sh "$dir" | cut -f1)): copy it and this checkout to the GPU machine"
}

# The extensions fairseq imports on the paths used here, built in place in its source tree.
build_extensions() {
    (cd "$1" && "$PY" - <<'EOF'
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

flags = ["-std=c++11", "-O3"]
fast = [Extension(f"fairseq.data.{m}", [f"fairseq/data/{m}.pyx"], language="c++", extra_compile_args=flags,
                  include_dirs=[numpy.get_include()]) for m in ("data_utils_fast", "token_block_utils_fast")]
bleu = Extension("fairseq.libbleu", ["fairseq/clib/libbleu/libbleu.cpp", "fairseq/clib/libbleu/module.cpp"],
                 extra_compile_args=flags)
setup(name="fairseq-extensions", ext_modules=cythonize(fast, language_level=3) + [bleu],
      script_args=["-q", "build_ext", "--inplace", "-j", "4"])
EOF
    )
}

run() {
    local dir=$1 site=${LIGHTCONV_SITE:-/tmp/lightconv-site}
    shift
    # What the bundle leaves to the machine's Python: fairseq's own needs and gpu_check's.
    "$PY" - <<'EOF' || die "add what $PY lacks to the bundle (EXTRA=\"NAME==VERSION ...\" $0 bundle $dir), or set PYTHON"
import importlib
needed = {"torch": "torch", "triton": "triton", "numpy": "numpy", "Cython": "Cython", "yaml": "PyYAML",
          "tqdm": "tqdm", "packaging": "packaging", "sklearn": "scikit-learn", "sacrebleu": "sacrebleu",
          "matplotlib": "matplotlib", "pytest": "pytest"}
missing = []
for module, package in needed.items():
    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing.append(f"{package} ({exc})")
if missing:
    raise SystemExit("gpu_check_offline.sh: this Python lacks: " + "; ".join(missing))
EOF
    if [[ ! -e "$site/.ready" ]]; then
        local archive
        archive=$(ls "$dir"/fairseq_fixed-*.tar.gz 2>/dev/null | head -n 1) || true
        [[ -n "$archive" ]] || die "no fairseq-fixed source archive in $dir: make it with '$0 bundle $dir'"
        rm -rf "$site" && mkdir -p "$site/fairseq-src"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$dir"/*.whl
        tar xzf "$archive" -C "$site/fairseq-src" --strip-components=1
        build_extensions "$site/fairseq-src"
        touch "$site/.ready"
    fi
    # lightconv_plugin is imported from the checkout itself: fairseq refuses a --user-dir whose
    # module was first imported from another path (a link to it included).
    ln -sfn "$REPO/kernels" "$site/lightconv_kernels"
    export PYTHONPATH="$site:$site/fairseq-src:$REPO${PYTHONPATH:+:$PYTHONPATH}"
    "$PY" -c "import fairseq.data.data_utils_fast, fairseq.libbleu, lightconv_plugin, lightconv_kernels as k
print('gpu_check_offline.sh: fairseq from', fairseq.__file__, '| lightconv_kernels from', k.__file__,
      '| lightconv_plugin from', lightconv_plugin.__file__)" || die "the installed packages do not import (see above)"
    cd "$REPO"
    exec "$PY" scripts/gpu_check.py "$@"
}

case "${1:-}" in
    bundle) [[ $# -ge 2 ]] || die "usage: $0 bundle DIR [PYTHON_VERSION]"; shift; bundle "$@" ;;
    run) [[ $# -ge 2 ]] || die "usage: $0 run DIR [gpu_check.py options]"; shift; run "$@" ;;
    *) die "usage: $0 bundle DIR [PYTHON_VERSION] | $0 run DIR [gpu_check.py options]" ;;
esac
