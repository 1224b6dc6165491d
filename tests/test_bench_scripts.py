"""The benchmark scripts in their smallest configurations: complete outputs, not timings.

bench_layers.py, bench_models.py (--smoke) and gpu_check.py (--device cpu
--interpret) each run once, as a user runs them, with one torch thread;
the test checks that every requested case has a row, that every measured
row holds finite numbers, and that the Markdown reports name every case.
Speed is never asserted here: that is what the scripts are for.
"""

from __future__ import annotations

import json
import math
from collections import Counter
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

import bench_common as bc  # noqa: E402

LAYERS = ["lightweight", "dynamic", "talk", "fairseq-lightweight", "fairseq-dynamic", "attention"]
OPS = ["op-lightweight", "op-dynamic", "op-talk"]
MODES = ["forward", "forward+backward", "inference"]
MODELS = ["dynamic", "attention", "fairseq-transformer"]


def _run(script: str, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("TRITON_INTERPRET", None)  # gpu_check sets it itself, before its kernels are imported
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def _finite(row, *columns):
    for c in columns:
        v = float(row[c])
        assert math.isfinite(v), f"{c} = {row[c]!r} in {row}"


# Tests of one xdist group run on one worker, so that this module fixture is
# built once, not once per worker that runs one of its tests.
SHARES_MODELS_OUT = pytest.mark.xdist_group("bench_models_out")


@pytest.fixture(scope="module")
def models_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    rc, log = _run("bench_models.py", "--smoke", "--threads", "1", "--out", out, "--models", *MODELS, "--beams", 4,
                   "--gen-rounds", 2)
    assert rc == 0, log
    return out


def test_bench_layers_smoke(tmp_path):
    rc, log = _run("bench_layers.py", "--threads", "1", "--out", tmp_path, "--T", 32, "--op-T", 32,
                   "--talk-T", 16, "--case-seconds", 0.01, "--op-rounds", 2, "--op-case-seconds", 0.01)
    assert rc == 0, log
    rows = bc.read_csv(tmp_path / "layers.csv")
    got = {(r["table"], r["impl"], r["mode"], int(r["T"])) for r in rows}
    want = {("layers", i, m, T) for i in LAYERS for m in MODES for T in (32,)}
    want |= {("ops", i, m, 32) for i in OPS for m in MODES}
    want |= {("talk", i, "inference", 16) for i in ("attention", "dynamic", "fairseq-dynamic", "talk")}
    assert got == want
    for r in rows:
        assert r["status"] == "ok", r
        assert int(r["reps"]) >= {"talk": 2, "layers": 3, "ops": 2 * 3}[r["table"]]  # ops: 2 rounds pooled
        _finite(r, "median_ms", "q1_ms", "q3_ms", "min_ms", "max_ms", "peak_mb", "it_per_s")
        assert float(r["min_ms"]) <= float(r["median_ms"]) <= float(r["max_ms"])
    md = (tmp_path / "layers.md").read_text()
    assert all(name in md for name in LAYERS + OPS) and "TaLK" in md
    assert "nan" not in md.lower()
    assert (tmp_path / "layers.png").stat().st_size > 0


def test_bench_conv_chunk_smoke(tmp_path):
    """Every candidate floor, the default added, has a row per op, shape and K, its
    chunk length at least K - 1 (or one chunk), and the default's ratio is 1."""
    from lightconv_kernels.conv import reference

    rc, log = _run("bench_conv_chunk.py", "--threads", "1", "--out", tmp_path, "--shapes", "2x40", "1x9",
                   "--K", 3, 9, "--chunks", 8, "--rounds", 1)
    assert rc == 0, log
    rows = bc.read_csv(tmp_path / "chunk.csv")
    chunks = sorted({8, reference.CHUNK})
    got = {(r["op"], int(r["B"]), int(r["T"]), int(r["K"]), int(r["chunk"])) for r in rows}
    assert got == {(op, B, T, K, c) for op in ("lightweight", "dynamic") for B, T in ((2, 40), (1, 9))
                   for K in (3, 9) for c in chunks}
    for r in rows:
        _finite(r, "forward_ms", "fwd_bwd_ms", "forward_vs_default", "fwd_bwd_vs_default")
        assert int(r["L"]) >= min(int(r["K"]) - 1, int(r["T"]))
        if int(r["chunk"]) == reference.CHUNK:
            assert float(r["forward_vs_default"]) == float(r["fwd_bwd_vs_default"]) == 1.0
    assert "nan" not in (tmp_path / "chunk.md").read_text().lower()
    rc, log = _run("bench_conv_chunk.py", "--shapes", "4")
    assert rc == 2 and "--shapes: '4' is not BxT" in log


@SHARES_MODELS_OUT
def test_bench_models_smoke(models_out):
    train = bc.read_csv(models_out / "train.csv")
    gen = bc.read_csv(models_out / "generate.csv")
    steps = bc.read_csv(models_out / "steps.csv")
    assert [r["model"] for r in train] == MODELS
    assert [(r["model"], r["beam"]) for r in gen] == [(m, "4") for m in MODELS]
    # The attention architecture may not be in every checkout: then its rows must say so.
    present = {r["model"] for r in train if r["status"] != "not in this checkout"}
    assert {"dynamic", "fairseq-transformer"} <= present
    for r in train:
        if r["model"] in present:
            assert r["status"] == "ok", r
            _finite(r, "median_tok_s", "min_tok_s", "max_tok_s", "tokens_per_update")
    for r in gen:
        if r["model"] in present:
            assert r["status"] == "ok", r
            assert int(r["batches"]) == 4  # 16 test sentences in batches of 8, in each of 2 rounds
            _finite(r, "median_sent_s", "q1_sent_s", "q3_sent_s", "min_sent_s", "max_sent_s", "total_sent_s")
    for m in present:
        positions = [int(r["position"]) for r in steps if r["model"] == m]
        assert positions == list(range(1, 17)), m
    for r in steps:
        if r["model"] in present:
            _finite(r, "ms")
    md = (models_out / "models.md").read_text()
    assert all(m in md for m in MODELS) and "nan" not in md.lower()
    assert (models_out / "models.png").stat().st_size > 0


def test_gpu_check_without_gpu_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    rc, log = _run("gpu_check.py")
    assert rc == 2 and "needs a CUDA device" in log


def test_gpu_check_with_old_triton_exits_2_before_any_work(tmp_path, monkeypatch, capsys):
    import triton

    import gpu_check

    monkeypatch.setattr(triton, "__version__", "3.2.0")
    assert gpu_check.main(["--device", "cpu", "--interpret", "--out", str(tmp_path / "gc")]) == 2
    assert "triton.__version__='3.2.0'" in capsys.readouterr().out
    assert not (tmp_path / "gc").exists()


@SHARES_MODELS_OUT
def test_gpu_check_smoke(tmp_path, models_out):
    rc, log = _run("gpu_check.py", "--device", "cpu", "--interpret", "--out", tmp_path, "--models-from", models_out)
    assert rc == 0, log
    grid = bc.read_csv(tmp_path / "grid.csv")
    kinds = {(r["kernel"], r["dtype"]) for r in grid}
    assert {("dynamic_conv", "fp32"), ("talk_conv", "fp32"), ("dynamic_conv", "fp16"), ("talk_conv", "bf16")} <= kinds
    for r in grid:
        assert r["status"] == "ok" and r["nan"] == "False", r
        _finite(r, "error", "torch_error", "tolerance")
    bench = bc.read_csv(tmp_path / "kernels.csv")
    assert {(r["op"], r["impl"]) for r in bench} == {
        ("lightweight_conv", "triton"), ("lightweight_conv", "torch"), ("dynamic_conv", "triton"),
        ("dynamic_conv", "torch"), ("dynamic_conv", "attention"), ("dynamic_conv", "fairseq"),
        ("talk_conv", "triton"), ("talk_conv", "torch"), ("talk_conv", "attention")}
    for r in bench:
        assert r["status"] == "ok", r
        _finite(r, "fwd_ms", "fwd_gbps", "fwd_frac", "fwd_bwd_ms", "fwd_bwd_gbps", "fwd_bwd_frac")
    md = (tmp_path / "gpu_check.md").read_text()
    for section in ("## Goals", "## Correctness", "## Autotuner choices", "## Kernel benchmark", "## Models"):
        assert section in md
    assert "roofline" in md and "1.3x" in md and "nan" not in md.lower()
    assert (tmp_path / "gpu_check.png").stat().st_size > 0


@SHARES_MODELS_OUT
def test_gpu_check_runs_only_the_parts_asked_for(tmp_path, models_out):
    rc, log = _run("gpu_check.py", "--device", "cpu", "--interpret", "--out", tmp_path, "--models-from", models_out,
                   "--parts", "bench,models")
    assert rc == 0, log
    assert bc.read_csv(tmp_path / "grid.csv") == [] and bc.read_csv(tmp_path / "kernels.csv")
    md = (tmp_path / "gpu_check.md").read_text()
    assert "Parts not run (--parts): grid, overhead" in md and "## Models" in md


def test_gpu_check_rejects_unknown_parts():
    rc, log = _run("gpu_check.py", "--device", "cpu", "--interpret", "--parts", "grid,speed")
    assert rc == 2 and "--parts 'grid,speed'" in log


def test_gpu_check_grid_covers_the_tests_grid():
    """On a GPU the check runs every shape of the interpreter tests, for both conv ops, in every
    dtype, the band body on the tests' own grid of it, plus every autotune configuration of every
    kernel once; shared out, nothing is lost."""
    import gpu_check_grid as gg
    import test_conv_triton as tct
    import test_talk_triton as ttt

    jobs = gg.jobs(smoke=False)
    n_conv, n_talk = len(tct.CASES) + len(tct.LOWP_CASES), len(ttt.CASES)
    n_band = 2 * (len(tct.CASES) + 2 * len(tct.LOWP_CASES))
    assert len(jobs) == len(set(jobs)) == 3 * (2 * n_conv + n_talk) + n_band + 2 * tct.N_CONFIGS + ttt.N_CONFIGS
    band = {(j[1], j[2], j[3]) for j in jobs if j[0] == "conv" and j[4] == tct.BAND_CONFIG and j[2] >= 0}
    assert band == {(op, i, "fp32") for op in ("light", "dynamic") for i in range(len(tct.CASES))} | {
        (op, len(tct.CASES) + i, d) for op in ("light", "dynamic") for i in range(len(tct.LOWP_CASES))
        for d in ("fp16", "bf16")}
    for dtype in gg.DTYPES:
        assert {(j[1], j[2]) for j in jobs if j[0] == "conv" and j[3] == dtype and j[4] is None} == \
            {(op, i) for op in ("light", "dynamic") for i in range(n_conv)}
        assert {j[1] for j in jobs if j[0] == "talk" and j[2] == dtype and j[3] is None} == set(range(n_talk))
    shares = [jobs[k::5] for k in range(5)]
    assert Counter(j for s in shares for j in s) == Counter(jobs)


def _interpreted(code: str):
    """Run ``code`` in a fresh process from scripts/, the kernels under the Triton interpreter."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", TRITON_INTERPRET="1", LIGHTCONV_BACKEND="triton")
    proc = subprocess.run([sys.executable, "-c", code], cwd=SCRIPTS, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gpu_check_grid_autotunes_by_one_timed_run_and_forgets_it():
    """The grid's autotuned cases go through the real autotuners (made to run under the interpreter
    here), which time every configuration of both kernels by one run; afterwards the kernel
    benchmark finds empty caches and Triton's own benchmark again."""
    code = (
        "import gpu_check_grid as gg\n"
        "from lightconv_kernels import triton_common\n"
        "triton_common.chosen_config = lambda kernel: None  # let the autotuners choose, as on a GPU\n"
        "timed = []\n"
        "real = gg.one_timed_run\n"
        "gg.one_timed_run = lambda call, quantiles=None: timed.append(1) or real(call, quantiles)\n"
        "rows = gg._run_share([('conv', 'dynamic', 0, 'fp32', None)], smoke=True)\n"
        "assert rows and all(r['status'] == 'ok' for r in rows), rows\n"
        "tuners = dict(gg.autotuners())\n"
        "n = len(tuners['conv_taps_kernel'].configs) + len(tuners['dynamic_backward_kernel'].configs)\n"
        "assert len(timed) == n, (len(timed), n)\n"
        "assert all(not t.cache and 'do_bench' not in vars(t) for t in tuners.values())\n"
    )
    _interpreted(code)


def test_gpu_check_host_breakdown_runs_under_the_interpreter():
    """The host-overhead breakdown runs on a GPU only in ``make gpu-check``; here its every row
    (public op, direct backward/forward, autotuned and bare launches, autograd, SDPA) runs once
    under the Triton interpreter, so that a changed kernel signature fails here first."""
    code = (
        "import torch, gpu_check_overhead as go\n"
        "rows = go.host_breakdown(torch.float32, reps=1, device='cpu')\n"
        "assert len(rows) == 8 and all(us > 0 for _, us in rows), rows\n"
        "bodies = [(31, i, (k, 100.0, 1e8, 1e3)) for i in range(5) for k in ('conv_taps_kernel', "
        "'dynamic_backward_kernel')]\n"
        "md = go.breakdown_markdown(rows, [(3, ('conv_taps_kernel', 100.0, 1e8, 1e3))], 4.8e12, bodies)\n"
        "assert md.count('\\n|') == 8 + 2 + 1 + 2 + 10 + 2, md\n"
        "assert 'BAND=16' in md and 'BAND=0' in md, md\n"
    )
    _interpreted(code)


def test_ops_table_rounds_alternate_the_lengths_and_pool_the_calls(monkeypatch):
    """--op-rounds: every round runs each case once more, lengths in turn; a cell pools its rounds' calls,
    a failure in any round fails the cell, and a case skipped in the first round is not run later."""
    import bench_layers as bl

    calls = []

    def isolated(fn, impl, mode, T, shape, budget, min_reps, cold_cache, timeout):
        assert cold_cache
        calls.append((impl, T, budget))
        if impl == "b" and T == 2 and len(calls) > 5:
            return {"error": "RuntimeError: out of memory"}  # b at T=2 fails in round 2 only
        return {"times": [T * 1e-3 + len(calls) * 1e-6] * min_reps, "peak_mb": float(len(calls))}

    monkeypatch.setattr(bl.bc, "isolated", isolated)
    monkeypatch.setattr(bl, "_skip_reason", lambda history, impl, T, tab, cap: "over the time cap" if
                        (impl, T) == ("c", 2) else None)
    tab = bl.Table("ops", ("a", "b", "c"), ("forward",), (2, 1), bl.OP_SHAPE, 1.0, min_reps=3, rounds=2,
                   case_seconds=6.0, cold_cache=True)
    rows = bl.measure(tab, type("Args", (), {"case_seconds": 99.0, "mem_cap": 8.0})())
    assert calls == [("a", 1, 3.0), ("b", 1, 3.0), ("c", 1, 3.0), ("a", 2, 3.0), ("b", 2, 3.0),
                     ("a", 1, 3.0), ("b", 1, 3.0), ("c", 1, 3.0), ("a", 2, 3.0), ("b", 2, 3.0)]
    by = {(r["impl"], r["T"]): r for r in rows}
    assert by["a", 1]["status"] == "ok" and by["a", 1]["reps"] == 6  # both rounds' calls
    assert by["a", 2]["peak_mb"] == 9.0  # the larger of its two rounds
    assert by["b", 2]["status"] == "failed: RuntimeError: out of memory"
    assert by["c", 2]["status"] == "over the time cap"
    assert [(r["impl"], r["T"]) for r in rows] == [(i, T) for T in (1, 2) for i in "abc"]


def test_repeat_timed_runs_before_untimed_ahead_of_every_call():
    events = []
    times = bc.repeat_timed(lambda: events.append("call"), 0.0, min_reps=3, before=lambda: events.append("before"))
    assert len(times) == 3 and events == ["before", "call"] * 4  # the warm-up, then 3 timed calls
    assert bc.last_level_cache_bytes() >= 1 << 20


def test_growth_goal_is_judged_on_the_medians_and_says_when_the_quartiles_cannot_tell():
    import bench_all

    def row(impl, T, q1, median, q3):
        return {"table": "ops", "impl": impl, "mode": "forward", "T": T, "status": "ok", "q1_ms": q1,
                "median_ms": median, "q3_ms": q3}

    rows = [row("op-dynamic", 2048, 9.0, 10.0, 10.0), row("op-dynamic", 8192, 36.0, 40.0, 41.0),  # 4.00: 3.60-4.56
            row("op-talk", 2048, 10.0, 10.0, 10.0), row("op-talk", 8192, 46.0, 47.0, 48.0),  # 4.70: 4.60-4.80
            row("op-lightweight", 2048, 10.0, 10.0, 10.0), row("op-lightweight", 8192, 30.0, 30.0, 30.0)]
    goals = {key[:2]: (measured, ok, noisy) for _, measured, ok, key, noisy in bench_all.growth_goals(rows, "reuse")}
    assert goals["op-dynamic", "forward"] == ("4.00 (quartiles allow 3.60-4.56)", True, True)
    assert goals["op-talk", "forward"] == ("4.70 (quartiles allow 4.60-4.80)", False, False)
    assert goals["op-lightweight", "forward"] == ("3.00 (quartiles allow 3.00-3.00)", True, False)
    assert goals["op-dynamic", "inference"] == ("not measured", None, False)


def test_generation_rounds_interleave_the_models_and_pool_their_batches(tmp_path, monkeypatch):
    import bench_models as bm

    calls = []

    def isolated(fn, ckpt, data, beam, *a):
        name = ckpt.parent.name
        calls.append(name)
        if name == "b" and calls.count("b") == 2:  # b fails in round 2: no round 3 for it, no numbers at all
            return {"error": "RuntimeError: boom"}
        return {"batches": [(1.0, 8), (2.0, 8)] if name == "a" else [(1.0, 4)]}

    monkeypatch.setattr(bm.bc, "isolated", isolated)
    monkeypatch.setattr(bm, "MODELS", {"a": "arch_a", "b": "arch_b", "c": "arch_c", "d": "arch_d"})
    args = type("Args", (), {"models": ["a", "b", "c", "d"], "gen_rounds": 3, "batch_size": 8, "length": 6,
                             "gen_seconds": 1.0, "device": "cpu", "out": tmp_path})()
    why = {"a": None, "b": None, "c": "not in this checkout", "d": "failed: boom"}
    rows = bm.generate_rounds(args, 5, why, {n: tmp_path / n for n in "abcd"}, tmp_path)
    assert calls == ["a", "b", "b", "a", "a"]  # rounds start at a, b, c: each one model later
    by = {r["model"]: r for r in rows}
    assert by["a"]["batches"] == 6 and by["a"]["median_sent_s"] == 6.0  # 3 rounds x (8, 4) sentences/s
    assert by["b"]["status"] == "failed: RuntimeError: boom" and "batches" not in by["b"]
    assert by["c"]["status"] == "not in this checkout"
    assert by["d"]["status"] == "not run: training failed"
    assert bm.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_model_goals_are_judged_on_the_medians_and_say_when_the_quartiles_cannot_tell(tmp_path):
    import bench_all

    def gen(model, beam, q1, median, q3):
        return {"model": model, "beam": beam, "status": "ok", "q1_sent_s": q1, "median_sent_s": median,
                "q3_sent_s": q3}

    bc.write_csv(tmp_path / "generate.csv", [
        gen("dynamic", 4, 10.0, 11.0, 12.0), gen("fairseq-lightconv", 4, 9.0, 10.0, 10.5),  # 1.10x: 0.95-1.33
        gen("fairseq-transformer", 4, 5.0, 5.0, 5.0),  # 2.20x: 2.00-2.40
        gen("dynamic", 5, 9.0, 9.5, 9.8), {"model": "fairseq-lightconv", "beam": 5, "status": "failed: x"},
        gen("fairseq-transformer", 5, 9.9, 10.0, 10.0)], list(gen("m", 4, 0, 0, 0)))  # 0.95x: 0.90-0.99
    bc.write_csv(tmp_path / "train.csv", [  # 1.50x: 1.40-1.60
        {"model": "dynamic", "status": "ok", "q1_tok_s": 294, "median_tok_s": 300, "q3_tok_s": 304},
        {"model": "fairseq-lightconv", "status": "ok", "q1_tok_s": 190, "median_tok_s": 200, "q3_tok_s": 210}],
        ["model", "status", "q1_tok_s", "median_tok_s", "q3_tok_s"])
    goals = {g: (measured, ok, noisy) for g, measured, ok, _, noisy in bench_all.model_goals(tmp_path)}
    base = "generation sentences/s, beam {}: our dynamic >= {}"
    assert goals[base.format(4, "fairseq-lightconv")] == ("1.10x (quartiles allow 0.95-1.33)", True, True)
    assert goals[base.format(4, "fairseq-transformer")] == ("2.20x (quartiles allow 2.00-2.40)", True, False)
    assert goals[base.format(5, "fairseq-lightconv")] == ("not measured: fairseq-lightconv failed: x", None, False)
    assert goals[base.format(5, "fairseq-transformer")] == ("0.95x (quartiles allow 0.90-0.99)", False, False)
    assert goals["training tokens/s: our dynamic >= fairseq-lightconv"] == (
        "1.50x (quartiles allow 1.40-1.60)", True, False)


def test_bench_all_smoke_measures_the_ops_under_both_allocator_settings(tmp_path):
    rc, log = _run("bench_all.py", "--threads", "1", "--out", tmp_path, "--no-profile",
                   "--layers-args", "--T 32 --op-T 32 --talk-T 16 --case-seconds 0.01 --impls dynamic --op-rounds 1",
                   "--models-args", "--smoke --models dynamic --beams 4 --positions 0")
    assert rc == 0, log
    main = bc.read_csv(tmp_path / "layers.csv")
    other = bc.read_csv(tmp_path / "ops-default-allocator" / "layers.csv")
    assert {r["table"] for r in main} == {"ops", "layers", "talk"}
    assert {r["table"] for r in other} == {"ops"}
    assert {(r["impl"], r["mode"]) for r in other} == {(o, m) for o in OPS for m in MODES}
    text = (tmp_path / "summary.md").read_text()
    for setting in ("glibc reusing freed memory", "glibc's default allocator"):
        assert sum(f"<= 4.5, {setting}" in line for line in text.splitlines()) == len(OPS) * len(MODES)
    assert "GLIBC_TUNABLES=glibc.malloc.mmap_max=0" in text


def test_bench_all_allocator_setting_reaches_glibc():
    """The reuse setting must change glibc's behaviour in the child, not only its environment:
    a 64 MB block then comes from the heap (kept after free), not from a mapping of its own."""
    import bench_all

    code = ("import ctypes\n"
            "class Info(ctypes.Structure):\n"
            "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',\n"
            "                'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
            "libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p; libc.mallinfo2.restype = Info\n"
            "block = libc.malloc(64 << 20)\n"
            "print(libc.mallinfo2().hblkhd >= 64 << 20, flush=True)\n")
    mapped = {}
    for setting in ("reuse", "default"):
        proc = subprocess.run([sys.executable, "-c", code], env=bench_all.allocator_env(setting),
                              capture_output=True, text=True, timeout=60)
        mapped[setting] = proc.stdout.strip()
    assert mapped == {"reuse": "False", "default": "True"}, mapped


def test_bench_learning_refuses_a_folder_of_other_settings(tmp_path):
    """Cached runs are reused by (system, seed) only, so a run with another --max-words, --updates, ...
    into the same --out must stop before any work rather than tabulate the old runs as the new setting."""
    import bench_learning as bl

    first = tmp_path / "first"
    bl.check_settings(first, bl.parse_args(["--out", str(first)]))
    assert set(json.loads((first / "settings.json").read_text())) == set(bl.SETTINGS)
    bl.check_settings(first, bl.parse_args(["--out", str(first), "--seeds", "2"]))  # more runs: same settings
    with pytest.raises(SystemExit, match="other settings \\(--max-words 15 -> 6, --updates 600 -> 9\\)"):
        bl.main(["--out", str(first), "--max-words", "6", "--updates", "9"])
    (tmp_path / "old" / "runs").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no record of their settings"):
        bl.main(["--out", str(tmp_path / "old")])
