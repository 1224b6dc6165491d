# Two entry points do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# fairseq 0.12.2 does not import on Python >= 3.11; fairseq-fixed is upstream with that fix.
FAIRSEQ := $(shell $(PYTHON) -c 'import sys; print("fairseq-fixed==0.12.3.1" if sys.version_info >= (3, 11) else "fairseq==0.12.2")')
STAMP := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test bench gpu-check kernel-report clean-venv

setup: $(STAMP)

# torch goes first and everything after it runs with --no-deps or against the
# installed torch, so pip never resolves torch itself (that pulls CUDA wheels).
# fairseq is built without isolation so that it compiles against this torch.
# A CUDA build of torch brings the Triton it was built with: that one is kept
# (the kernels need >= 3.3). A CPU build brings none: the pinned Triton runs
# the kernels under its interpreter in the tests.
$(STAMP): pyproject.toml requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -c constraints.txt cython numpy setuptools wheel
	$(PIP) install -q -c constraints.txt --no-build-isolation --no-deps $(FAIRSEQ)
	$(PIP) install -q -c constraints.txt -r requirements.txt
	$(PY) -c "import triton" 2>/dev/null || $(PIP) install -q -c constraints.txt triton
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) -c "import fairseq, lightconv_plugin, lightconv_kernels"
	touch $@

demo: $(STAMP)
	bash recipes/toy/run.sh

# Two processes (the CI machine's cores); tests that share one resource (the
# local SLURM cluster) are grouped onto one process (xdist_group).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup tests

# Layer and model benchmarks on this machine (about 30 minutes on 2 cores):
# CSV, PNG and summary.md under bench_out/<date>-<host>/. Pass options with
# BENCH_ARGS, e.g. BENCH_ARGS="--threads 8".
BENCH_ARGS ?=
bench: $(STAMP)
	$(PY) scripts/bench_all.py $(BENCH_ARGS)

# On a machine with a CUDA GPU (under 10 minutes on an H100/H200): every kernel
# against its reference in fp32/fp16/bf16, the autotuner's choices, the kernel
# benchmark against the roofline and the model-level throughput. Writes
# bench_out/gpu-check-<date>-<host>/gpu_check.md; exits 1 on any mismatch,
# 2 without a GPU or without Triton >= 3.3.
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

kernel-report: $(STAMP)
	$(PY) scripts/kernel_report.py

clean-venv:
	rm -rf $(VENV)
