"""The recipes' training launchers, on the toy recipe, for real.

* ``--launcher torchrun --gpus 2 --precision bf16`` (CPU): two processes train
  together over gloo, in bfloat16; both ranks' logs show world size 2.
* ``--launcher slurm --gpus 2`` (CPU) on a real single-node SLURM cluster
  (tests/slurm/local_cluster.sh): the recipe writes an sbatch script, submits
  it and waits for it; the job runs two ranks through srun. While it trains,
  its own USR1 trap (for the signal SLURM sends 5 minutes before the time
  limit) requeues it; the restart resumes from checkpoint_last.pt, the job
  finishes, and the recipe, which kept waiting, completes. A requeue from
  outside (preemption) restarts a job the same way: tests/test_slurm_cluster.py.

Stages 1-3 (corpus, binarize) run once; each launcher trains in a copy.
"""

import re
import shutil
import subprocess
import time

import pytest
import torch
from slurm_cluster import signal_batch_shell, slurm_cluster  # noqa: F401  (fixture)

from test_recipe_toy import RUN_SH, _env

DATA = ["--train-size", "600", "--valid-size", "50", "--test-size", "50", "--max-tokens", "1024",
        "--max-epoch", "0", "--min-bleu", "0"]


def recipe(workdir, *args, env=None, timeout=300):
    return subprocess.run(["bash", RUN_SH, "--workdir", str(workdir), *DATA, *args], capture_output=True,
                          text=True, env=env or _env(), timeout=timeout)


@pytest.fixture(scope="module")
def binarized(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("launch") / "base"
    proc = recipe(workdir, "--stop-stage", "3", "--max-update", "8")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def copy_of(binarized, tmp_path):
    target = tmp_path / "exp"
    shutil.copytree(binarized, target)
    return target


def ranks_in(log: str) -> set:
    return set(int(r) for r in re.findall(r"distributed init \(rank (\d+)\)", log))


def test_torchrun_two_cpu_processes(binarized, tmp_path):
    workdir = copy_of(binarized, tmp_path)
    # Few updates: PyTorch's bfloat16 matmuls on a CPU without bf16 instructions are ~15x slower
    # than float32 (measured: a 128 x 512 Linear, forward + backward).
    proc = recipe(workdir, "--stage", "4", "--stop-stage", "4", "--max-update", "3",
                  "--launcher", "torchrun", "--gpus", "2", "--precision", "bf16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (workdir / "logs" / "stage4.train.dynamicconv.log").read_text()
    assert ranks_in(log) == {0, 1}
    assert "'distributed_world_size': 2" in log
    assert "num_updates: 3 >= max_update: 3" in log
    assert "effective batch: 2 process(es) x 1024 tokens x update-freq 2" in proc.stderr
    # --precision bf16: both ranks train in bf16, not on a TPU (see lightconv_plugin/compat.py).
    assert log.count("training in bfloat16 on the CPU") == 2
    assert "'tpu': True" not in log and "'bf16': True" in log
    # fairseq saves float32 copies; the values of a model trained in bfloat16 have 16 zero low bits.
    state = torch.load(workdir / "checkpoints" / "dynamicconv" / "checkpoint_last.pt", map_location="cpu",
                       weights_only=False)
    floats = [t for t in state["model"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    assert all(t.view(torch.int32).bitwise_and(0xFFFF).eq(0).all() for t in floats)


def _wait_until(condition, what, timeout, proc):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)


RESUMED = re.compile(r"Loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ (\d+) updates\)")


@pytest.mark.xdist_group("slurm")  # the cluster of tests/test_slurm_cluster.py
def test_slurm_requeue_resumes_from_checkpoint_last(binarized, tmp_path, slurm_cluster):  # noqa: F811
    workdir = copy_of(binarized, tmp_path)
    env = {**_env(), **slurm_cluster.env, "SLURM_POLL_SECONDS": "1"}
    args = ["bash", RUN_SH, "--workdir", str(workdir), *DATA, "--stage", "4", "--stop-stage", "4",
            "--max-update", "40", "--launcher", "slurm", "--gpus", "2",
            "--train-args", "--save-interval-updates 4 --keep-interval-updates 1"]
    ckpt = workdir / "checkpoints" / "dynamicconv" / "checkpoint_last.pt"
    jobfile = workdir / "slurm" / "train.jobid"
    logf = workdir / "logs" / "stage4.train.dynamicconv.log"
    waiting = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until(lambda: ckpt.exists() and jobfile.exists(), "first checkpoint_last.pt", 120, waiting)
        job = jobfile.read_text().strip()
        # Near the time limit: SLURM signals the batch shell (--signal=B:USR1@300), whose trap requeues.
        signal_batch_shell(job, "USR1", slurm_cluster.env)
        out, err = waiting.communicate(timeout=240)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, err[-3000:]
    log = logf.read_text()
    script = (workdir / "slurm" / "train.sbatch").read_text()
    assert "#SBATCH --ntasks-per-node=2" in script and "#SBATCH --requeue" in script
    assert "#SBATCH --signal=B:USR1@300" in script
    assert "srun --kill-on-bad-exit=1 bash" in script and "slurm_rank.sh" in script
    assert ranks_in(log) == {0, 1}
    assert log.count(f"requeueing job {job}") == 1
    assert "restart 1" in log and "restart 2" not in log
    resumed = [int(n) for n in RESUMED.findall(log)]
    assert len(resumed) == 1 and resumed[0] > 0, log[-3000:]
    assert "num_updates: 40 >= max_update: 40" in log
