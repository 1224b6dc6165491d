"""Correctness part of ``scripts/gpu_check.py``: the Triton kernels against the tests' references.

The grids, inputs and references are the interpreter tests' own
(``tests/test_conv_triton.py``, ``tests/test_talk_triton.py`` and the float64
loops they use), imported, not copied, so that this check and the tests
cannot drift apart. Every buffer the launchers allocate is poisoned (NaN, or
an out-of-range integer) as in the tests.

Each shape runs in float32, float16 and bfloat16. Tolerance, per output and
gradient: twice the error of the same computation written in plain PyTorch
in that dtype, both against the float64 loop; never below the tests'
float32 bound (1e-5); where plain PyTorch is exact in a low-precision dtype,
one rounding to that dtype. The import of this module must follow the
choice of TRITON_INTERPRET (the kernels are defined at import).
"""

from __future__ import annotations

import contextlib
import sys
import time

import pytest
import torch

import bench_common as bc

sys.path.insert(0, str(bc.REPO / "tests"))

import ref_talk_loop as rtl  # noqa: E402
import test_conv_triton as tct  # noqa: E402
import test_talk_reference as ttr  # noqa: E402
import test_talk_triton as ttt  # noqa: E402
from lightconv_kernels import talk_conv, triton_common  # noqa: E402
from lightconv_kernels.conv import triton_backward  # noqa: E402
from lightconv_kernels.conv import triton_impl as conv_impl  # noqa: E402
from lightconv_kernels.talk import triton_impl as talk_impl  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FP32_TOL = tct.FP32_TOL


def interpreter_truncates_bf16() -> bool:
    """True where the Triton interpreter stores float32 as bfloat16 by truncation.

    Triton 3.7's interpreter does (round toward zero instead of to nearest),
    so under it a bfloat16 result can be two units of roundoff off, not one.
    Probed, not assumed: a GPU, or a fixed interpreter, gets the strict bound.
    """
    import os

    import triton
    import triton.language as tl

    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        return False

    @triton.jit
    def store_bf16(x_ptr, y_ptr, N: tl.constexpr):
        offs = tl.arange(0, N)
        tl.store(y_ptr + offs, tl.load(x_ptr + offs).to(tl.bfloat16))

    x = torch.randn(256, generator=torch.Generator().manual_seed(0))
    y = torch.empty(256, dtype=torch.bfloat16)
    store_bf16[(1,)](x, y, N=256)
    return not torch.equal(y, x.to(torch.bfloat16))


TRUNCATING_BF16 = interpreter_truncates_bf16()


def tolerance(dtype, base_err: float) -> float:
    if dtype == torch.float32:
        return max(2 * base_err, FP32_TOL)
    one_rounding = torch.finfo(dtype).eps / 2
    if dtype == torch.bfloat16 and TRUNCATING_BF16:
        return max(2 * base_err, 2 * one_rounding + FP32_TOL)
    return 2 * base_err if base_err > 0 else one_rounding + FP32_TOL


def _rows(kernel, case_id, dtype_name, names, got, base, ref, config=""):
    rows = []
    for name, a, b, r in zip(names, got, base, ref):
        if r is None:
            continue
        err = tct._rel_error(a, r)
        base_err = tct._rel_error(b, r) if b is not None else 0.0
        tol = tolerance(DTYPES[dtype_name], base_err)
        nan = bool(torch.isnan(a.float()).any())
        ok = (not nan) and err <= tol
        rows.append({"kernel": kernel, "case": case_id, "dtype": dtype_name, "config": config, "output": name,
                     "error": err, "torch_error": base_err, "tolerance": tol, "nan": nan,
                     "status": "ok" if ok else "MISMATCH"})
    return rows


def _guarded(kernel, case_id, dtype_name, config, fn):
    try:
        return fn()
    except Exception as exc:  # a crash is a mismatch, and the other cases still run
        return [{"kernel": kernel, "case": case_id, "dtype": dtype_name, "config": config, "output": "-",
                 "status": f"MISMATCH: {type(exc).__name__}: {str(exc)[:120]}"}]


def _conv_case(op, case, dtype, config=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIGHTCONV_BACKEND", "triton")
        mp.setattr(conv_impl, "empty", tct._poisoned)
        if config is not None:
            mp.setattr(triton_common, "FORCE_CONFIG", config)
            mp.setattr(triton_backward, "LIGHT_SPLIT", 16)
        torch.manual_seed(0)  # the DropConnect seed, as in the tests' fixture
        x, w, g = tct._inputs(op, case, dtype, seed=config or 0)
        got = tct._run_kernels(mp, op, case, x, w, g)
        ref = tct._reference(case, x, w, g, got[3])
        base = tct._torch_in_dtype(case, x, w, g, got[3])  # plain PyTorch in the dtype of x
        return got[:3], base, ref


def _talk_case(shape, dtype, config=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIGHTCONV_BACKEND", "triton")
        mp.setattr(talk_impl, "empty", ttt._poisoned)
        if config is not None:
            mp.setattr(triton_common, "FORCE_CONFIG", config)
        ml, mr = shape[4:6]
        x, left, right, grad = ttt.inputs(shape, dtype)
        got = rtl.with_grads(talk_conv, x, left, right, ml, mr, grad)
        base = rtl.with_grads(rtl.talk_in_dtype, x, left, right, ml, mr, grad)
        ref = rtl.loop_with_grads(x, left, right, ml, mr, grad)
        return got, base, ref


def jobs(smoke: bool) -> list:
    """The grid as plain tuples (picklable, so that worker processes can share it out).

    ("conv", op, case index, dtype name, config or None) and
    ("talk", case index, dtype name, config or None); case indices point
    into :func:`_conv_cases` and :func:`_talk_cases`.
    """
    n_conv, n_talk = tct.N_CONFIGS, ttt.N_CONFIGS
    ops, kinds = ("light", "dynamic"), {d: ("conv", "talk") for d in DTYPES}
    conv_idx, talk_idx = range(len(tct.CASES) + len(tct.LOWP_CASES)), range(len(ttt.CASES))
    if smoke:  # the interpreter is slow: one shape, one configuration, each dtype on one op only
        conv_idx, talk_idx, n_conv, n_talk = range(1), range(1), 1, 0
        ops, kinds = ("dynamic",), {"fp32": ("conv", "talk"), "fp16": ("conv",), "bf16": ("talk",)}
    out = []
    for dname in DTYPES:
        out += [("conv", op, i, dname, None) for i in (conv_idx if "conv" in kinds[dname] else []) for op in ops]
        out += [("talk", i, dname, None) for i in (talk_idx if "talk" in kinds[dname] else [])]
    # The band body of the conv kernels on the tests' own grid: the autotuner
    # may not pick it for these shapes, and only a GPU runs its TF32 products.
    n_fp32 = 1 if smoke else len(tct.CASES)
    band = [(i, "fp32") for i in range(n_fp32)]
    if not smoke:
        band += [(i, d) for i in range(n_fp32, n_fp32 + len(tct.LOWP_CASES)) for d in ("fp16", "bf16")]
    out += [("conv", op, i, dname, tct.BAND_CONFIG) for i, dname in band for op in ops]
    # Every configuration of every kernel once, in float32, on the tests' multi-tile shapes
    # (the last entries of the case lists).
    out += [("conv", op, -1, "fp32", i) for i in range(n_conv) for op in ops]
    out += [("talk", -1, "fp32", i) for i in range(n_talk)]
    return out


def _conv_cases() -> list:
    return tct.CASES + tct.LOWP_CASES + [tct.Case(2, 70, 128, 2, 5, "centre", dropout=0.2)]


def _talk_cases(smoke: bool) -> list:
    multi_tile = (1, 140, 192, 3, 40, 9, False)
    return [*zip(ttt.CASES, ttt.IDS), (ttt.CASES[0] if smoke else multi_tile, "multi-tile")]


def run_job(job, smoke: bool) -> list:
    """Rows of (kernel, case, dtype, config, output, error, tolerance, status) of one job."""
    if job[0] == "conv":
        _, op, i, dname, cfg = job
        case = _conv_cases()[i]
        label = "autotuned" if cfg is None else f"config {cfg}" + (" (band)" if cfg == tct.BAND_CONFIG else "")
        return _guarded(f"{op}_conv", case.id, dname, label, lambda: _rows(
            f"{op}_conv", case.id, dname, tct.NAMES, *_conv_case(op, case, DTYPES[dname], cfg), label))
    _, i, dname, cfg = job
    shape, sid = _talk_cases(smoke)[i]
    label, case_id = ("autotuned", sid) if cfg is None else (f"config {cfg}", str(shape))
    return _guarded("talk_conv", case_id, dname, label, lambda: _rows(
        "talk_conv", case_id, dname, ttr.NAMES, *_talk_case(shape, DTYPES[dname], cfg), label))


def _run_share(share: list, smoke: bool) -> list:
    with quick_autotuning():
        return [row for job in share for row in run_job(job, smoke)]


def run_grid(smoke: bool, workers: int = 1) -> list:
    """The whole grid; with ``workers`` > 1, shared out over that many fresh processes.

    On a GPU most of the grid's time is Triton compiling (every shape, dtype
    and configuration is a new specialisation, one at a time in a process),
    so processes side by side cut it by about their number. They start by
    ``spawn``: a forked child cannot use a CUDA context its parent made.
    """
    todo = jobs(smoke)
    if workers <= 1:
        return _run_share(todo, smoke)
    import concurrent.futures
    import multiprocessing

    shares = [todo[k::workers] for k in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(_run_share, share, smoke) for share in shares if share]
        rows = []
        for share, fut in zip(shares, futures):
            try:
                rows += fut.result()
            except Exception as exc:  # a worker that died: its jobs are mismatches, not silence
                rows += [{"kernel": str(job[:2]), "case": str(job), "dtype": "", "config": "", "output": "-",
                          "status": f"MISMATCH: worker failed: {type(exc).__name__}: {str(exc)[:120]}"}
                         for job in share]
    return rows


AUTOTUNED_MODULES = ("lightconv_kernels.conv.triton_conv", "lightconv_kernels.conv.triton_backward",
                     "lightconv_kernels.talk.triton_fwd", "lightconv_kernels.talk.triton_bwd")


def autotuners() -> list:
    """(name, autotuner) of every autotuned kernel of the ops."""
    import importlib

    found = []
    for module in AUTOTUNED_MODULES:
        for name, obj in sorted(vars(importlib.import_module(module)).items()):
            if isinstance(getattr(obj, "cache", None), dict) and hasattr(obj, "configs"):
                found.append((name, obj))
    return found


def one_timed_run(kernel_call, quantiles=None):
    """An autotuner's benchmark that times one run of a configuration, after one that compiles it."""
    kernel_call()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        kernel_call()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
    else:
        t0 = time.perf_counter()
        kernel_call()
        ms = 1e3 * (time.perf_counter() - t0)
    return [ms] * len(quantiles) if quantiles else ms


@contextlib.contextmanager
def quick_autotuning():
    """Within it, every autotuner times each configuration by :func:`one_timed_run`.

    Triton's own benchmark warms up for 25 ms and times for 100 ms, flushing
    a 256 MB cache before every run: about 0.6 s of GPU time to autotune one
    kernel over five configurations. The grid's autotuned cases autotune two
    kernels for every conv shape in every dtype (about 100 cases; TaLK's
    on top), each in a new key, on the one GPU that the worker processes
    share: over two minutes of the GPU's time by that arithmetic, where the
    whole grid took 159 s in the first GPU run (with three configurations
    then). The grid asks whether the autotuned launch gives right results,
    not which configuration is fastest, and every configuration is checked
    on its own as well. On the way out the choices made from one run are
    dropped, so that the kernel benchmark autotunes with Triton's benchmark.
    """
    tuners = [tuner for _, tuner in autotuners()]
    saved = [tuner.__dict__.get("do_bench") for tuner in tuners]
    for tuner in tuners:
        tuner.__dict__["do_bench"] = one_timed_run  # shadows the class's cached_property
    try:
        yield
    finally:
        for tuner, before in zip(tuners, saved):
            tuner.cache.clear()
            if before is None:
                tuner.__dict__.pop("do_bench", None)
            else:
                tuner.__dict__["do_bench"] = before


def autotune_choices() -> list:
    """(kernel, key, chosen configuration) of every autotuned kernel, from the autotuners' caches."""
    rows = []
    for name, tuner in autotuners():
        for key, cfg in tuner.cache.items():
            rows.append({"kernel": name, "key": str(key), "config": str(cfg)})
        if not tuner.cache:
            rows.append({"kernel": name, "key": "-", "config": f"not tuned ({len(tuner.configs)} configs)"})
    return rows
