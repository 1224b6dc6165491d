"""A real single-node SLURM cluster for tests (tests/slurm/local_cluster.sh).

Use it from a test file with::

    from slurm_cluster import slurm_cluster, sbatch, wait_for_job  # noqa: F401

    def test_x(slurm_cluster):
        job = sbatch(["job.sh"], slurm_cluster.env)
        assert wait_for_job(job, slurm_cluster.env, timeout=30) == "COMPLETED"

One cluster serves the whole session. Without slurm/munge installed the tests
are skipped, except under CI (CI set), where that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "slurm" / "local_cluster.sh"
NOT_INSTALLED = 3  # exit status of `local_cluster.sh up` when binaries are missing
FINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY",
}


@dataclass
class Cluster:
    dir: Path
    env: dict


def _run(args: list, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm")
    up = _run(["bash", str(SCRIPT), "up", str(d)], timeout=60)
    if up.returncode == NOT_INSTALLED:
        reason = up.stderr.strip().splitlines()[-1]
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        assert up.returncode == 0, f"local_cluster.sh up failed:\n{up.stdout}{up.stderr}"
        # A test run from inside a SLURM job must not hand that job's
        # variables (SLURM_JOB_ID, ...) to the test cluster's commands.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(d / "slurm.conf")
        yield Cluster(dir=d, env=env)
    finally:
        down = _run(["bash", str(SCRIPT), "down", str(d)], timeout=90)
        assert down.returncode == 0, f"local_cluster.sh down failed:\n{down.stdout}{down.stderr}"


def sbatch(args: list, env: dict, cwd: str | os.PathLike | None = None) -> str:
    """Submit a job (sbatch ARGS...) and return its id."""
    r = subprocess.run(["sbatch", "--parsable", *map(str, args)], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"sbatch failed:\n{r.stdout}{r.stderr}"
    return r.stdout.strip().split(";")[0]


def job_state(job_id: str, env: dict) -> str:
    r = _run(["scontrol", "-o", "show", "job", str(job_id)], env=env)
    assert r.returncode == 0, f"scontrol show job {job_id} failed:\n{r.stdout}{r.stderr}"
    fields = dict(f.split("=", 1) for f in r.stdout.split() if "=" in f)
    return fields["JobState"]


def wait_for_job(job_id: str, env: dict, timeout: float, poll: float = 0.5) -> str:
    """Poll the job until it ends and return its final state (COMPLETED, FAILED, ...).

    Polls itself because `sbatch --wait` checks only after 2, 8 and 32 s. A
    requeued job passes through PENDING again and is waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        state = job_state(job_id, env)
        if state in FINAL_STATES:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {state} after {timeout} s")
        time.sleep(poll)


def requeue(job_id: str, env: dict) -> None:
    r = _run(["scontrol", "requeue", str(job_id)], env=env)
    assert r.returncode == 0, f"scontrol requeue {job_id} failed:\n{r.stdout}{r.stderr}"


def signal_batch_shell(job_id: str, signal: str, env: dict) -> None:
    """Send SIGNAL to the job's batch shell only, as sbatch's --signal=B:SIG@T does."""
    r = _run(["scancel", "--batch", f"--signal={signal}", str(job_id)], env=env)
    assert r.returncode == 0, f"scancel --batch --signal={signal} {job_id} failed:\n{r.stdout}{r.stderr}"
