"""End-to-end test of the toy recipe (recipes/toy/run.sh) with tiny settings.

One full run (2,000 training pairs, 30 updates, BLEU not checked) in a temporary
work directory, then cheap re-runs on it: finished stages are skipped, the
BLEU line is printed last again, --min-bleu fails the recipe, changed settings
and unknown options are refused, and a later stage on a fresh work directory
fails with a clear message about its missing inputs.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_SH = os.path.join(REPO, "recipes", "toy", "run.sh")
BLEU_LINE = re.compile(r"^BLEU = \d+\.\d\d$")
STAGES = ["1.download", "2.prepare", "3.binarize", "4.train@dynamicconv", "5.average@dynamicconv",
          "6.evaluate@dynamicconv"]
TINY = ["--train-size", "2000", "--valid-size", "100", "--test-size", "100",
        "--max-epoch", "0", "--max-update", "30", "--max-tokens", "1024",
        "--min-bleu", "0", "--model", "dynamicconv"]


def _env():
    env = dict(os.environ)
    # The fairseq CLIs of the interpreter running the tests come first, as
    # under `make` (which puts .venv/bin first on PATH).
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("TRITON_INTERPRET", None)  # set by conftest; `make demo` does not set it
    return env


def run_recipe(*args, timeout=600):  # a guard against hangs, generous for a loaded CI machine
    t0 = time.monotonic()
    proc = subprocess.run(["bash", RUN_SH, *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout)
    return proc, time.monotonic() - t0


def last_line(proc):
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


pytestmark = pytest.mark.skipif(
    shutil.which("fairseq-train", path=_env()["PATH"]) is None or shutil.which("bash") is None,
    reason="needs bash and the fairseq CLIs (make setup)")


# Tests of one xdist group run on one worker, so that this module fixture is
# built once, not once per worker that runs one of its tests.
SHARES_FULL_RUN = pytest.mark.xdist_group("recipe_toy_run")


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("toy") / "exp"
    proc, seconds = run_recipe("--workdir", str(workdir), *TINY)
    return workdir, proc, seconds


@SHARES_FULL_RUN
def test_full_run(full_run):
    workdir, proc, seconds = full_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in STAGES:
        assert (workdir / f".done.stage{stage}").is_file(), stage
    for split in ("train", "valid", "test"):
        for side in ("src", "tgt"):
            assert (workdir / "data" / "raw" / f"{split}.{side}").stat().st_size > 0
    assert (workdir / "data" / "raw" / "train.src").read_text().count("\n") == 2000
    assert (workdir / "checkpoints" / "dynamicconv" / "checkpoint_best.pt").is_file()
    assert "arch dynamicconv_toy" in proc.stderr
    hyps = (workdir / "decode" / "dynamicconv" / "hyp.test.tgt").read_text().splitlines()
    assert len(hyps) == 100
    assert BLEU_LINE.match(last_line(proc)), proc.stdout[-2000:]
    for n, stage in enumerate(STAGES, 1):
        assert f"stage {n} ({stage.split('.')[1]}): done" in proc.stderr


@SHARES_FULL_RUN
def test_rerun_skips_finished_stages(full_run):
    workdir, first, _ = full_run
    assert first.returncode == 0
    proc, seconds = run_recipe("--workdir", str(workdir), *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for n, stage in enumerate(STAGES, 1):
        assert f"skipping stage {n} ({stage.split('.')[1]})" in proc.stderr
    assert "fairseq-train" not in proc.stderr
    assert last_line(proc) == last_line(first)
    assert seconds < 20, f"re-run took {seconds:.1f} s"


@SHARES_FULL_RUN
def test_min_bleu_fails_the_recipe(full_run):
    workdir, first, _ = full_run
    assert first.returncode == 0
    proc, _ = run_recipe("--workdir", str(workdir), *TINY, "--min-bleu", "101")  # last wins
    assert proc.returncode != 0
    assert "below --min-bleu 101" in proc.stderr
    assert BLEU_LINE.match(last_line(proc))  # still printed, last


@SHARES_FULL_RUN
def test_changed_settings_are_refused(full_run):
    workdir, first, _ = full_run
    assert first.returncode == 0
    proc, _ = run_recipe("--workdir", str(workdir), *TINY, "--seed", "2", "--stop-stage", "1")
    assert proc.returncode != 0
    assert "stage 1 (download) was already done" in proc.stderr
    assert "other settings" in proc.stderr


@SHARES_FULL_RUN
def test_a_second_model_shares_the_work_directory(full_run, tmp_path):
    """README: several models can share one work directory. The second model reuses stages 1-3 and
    runs its own 4-6; the first model's sentinels and outputs stay as they were."""
    workdir = tmp_path / "exp"
    shutil.copytree(full_run[0], workdir)
    first_hyps = (workdir / "decode" / "dynamicconv" / "hyp.test.tgt").read_bytes()
    args = [a if a != "dynamicconv" else "lightweightconv" for a in TINY]
    # Stages 4-6 are the second model's own, so their settings may differ: keep them cheap.
    proc, _ = run_recipe("--workdir", str(workdir), *args, "--max-update", "5", "--beam", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert BLEU_LINE.match(last_line(proc)), proc.stdout[-500:]
    assert "arch lightweightconv_toy" in proc.stderr
    for stage in ("1.download", "2.prepare", "3.binarize"):
        assert re.search(rf"skipping stage {stage[0]} \(\w+\): already done", proc.stderr), (stage, proc.stderr[-3000:])
    for stage in STAGES:
        assert (workdir / f".done.stage{stage}").is_file(), stage
    for stage in ("4.train", "5.average", "6.evaluate"):
        assert (workdir / f".done.stage{stage}@lightweightconv").is_file(), stage
    assert (workdir / "decode" / "dynamicconv" / "hyp.test.tgt").read_bytes() == first_hyps
    assert len((workdir / "decode" / "lightweightconv" / "hyp.test.tgt").read_text().splitlines()) == 100


def test_later_stage_on_fresh_workdir_fails(tmp_path):
    workdir = tmp_path / "fresh"
    proc, seconds = run_recipe("--workdir", str(workdir), *TINY, "--stage", "4",
                               "--stop-stage", "4", timeout=60)
    assert proc.returncode != 0
    assert "missing input" in proc.stderr
    assert "run stage 3 (binarize) first" in proc.stderr
    assert "fairseq-train" not in proc.stderr  # failed before starting training
    assert not (workdir / ".done.stage4.train@dynamicconv").exists()


def test_bad_options_fail(tmp_path):
    proc, _ = run_recipe("--workdir", str(tmp_path / "w"), "--no-such-option", "1", timeout=30)
    assert proc.returncode != 0
    assert "unknown option --no-such-option" in proc.stderr
    proc, _ = run_recipe("--workdir", str(tmp_path / "w"), "--max-update", "ten", timeout=30)
    assert proc.returncode != 0
    assert "--max-update must be an integer" in proc.stderr
    proc, _ = run_recipe("--help", timeout=30)
    assert proc.returncode == 0
    assert "--stop-stage" in proc.stdout and "--min-bleu" in proc.stdout
