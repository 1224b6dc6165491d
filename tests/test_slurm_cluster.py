"""The local SLURM test cluster itself: multi-task steps and requeue work.

The tests of code that runs under SLURM rely on both; these tests say which
of the two broke when the cluster does.
"""

import time

import pytest

from slurm_cluster import job_state, requeue, sbatch, slurm_cluster, wait_for_job  # noqa: F401

# One cluster per test process: keep every test that uses it on the same one.
pytestmark = pytest.mark.xdist_group("slurm")

RANK_JOB = """#!/bin/bash
#SBATCH --ntasks=2 --nodes=1 --time=1
set -euo pipefail
srun bash -c 'printf "%s\\n" "$SLURM_PROCID" "$SLURM_NTASKS" "$SLURM_JOB_NODELIST" \\
    "$(scontrol show hostnames "$SLURM_JOB_NODELIST")" > rank.$SLURM_PROCID'
"""

# The first run leaves a marker, then either requeues itself or waits to be
# requeued from outside; the restart leaves a second marker.
REQUEUE_JOB = """#!/bin/bash
#SBATCH --requeue --time=1 --open-mode=append
set -euo pipefail
if [[ ${SLURM_RESTART_COUNT:-0} == 0 ]]; then
    echo "$SLURM_JOB_ID" > first
    [[ $1 == self ]] && scontrol requeue "$SLURM_JOB_ID"
    sleep 50
    exit 1
fi
echo "$SLURM_RESTART_COUNT" > restarted
"""


def _write(path, text):
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_two_tasks_on_one_node(slurm_cluster, tmp_path):
    script = _write(tmp_path / "ranks.sh", RANK_JOB)
    job = sbatch([f"--output={tmp_path}/out.%j", script], slurm_cluster.env, cwd=tmp_path)
    state = wait_for_job(job, slurm_cluster.env, timeout=30)
    log = (tmp_path / f"out.{job}").read_text()
    assert state == "COMPLETED", log
    for rank in (0, 1):
        procid, ntasks, nodelist, hostnames = (tmp_path / f"rank.{rank}").read_text().split("\n")[:4]
        assert (procid, ntasks) == (str(rank), "2")
        assert nodelist and hostnames == nodelist  # one node: the list is its name


def _wait_for_file(path, timeout):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} not written in {timeout} s"
        time.sleep(0.2)


@pytest.mark.parametrize("by", ["self", "scontrol"])
def test_requeue(slurm_cluster, tmp_path, by):
    script = _write(tmp_path / "requeue.sh", REQUEUE_JOB)
    job = sbatch([f"--output={tmp_path}/out.%j", script, by], slurm_cluster.env, cwd=tmp_path)
    _wait_for_file(tmp_path / "first", timeout=30)
    if by == "scontrol":
        assert job_state(job, slurm_cluster.env) == "RUNNING"
        requeue(job, slurm_cluster.env)
    # The restart waits for the job's credential to expire (cred_expire=10 s).
    state = wait_for_job(job, slurm_cluster.env, timeout=45)
    log = (tmp_path / f"out.{job}").read_text()
    assert state == "COMPLETED", log
    assert (tmp_path / "first").read_text().strip() == job
    assert (tmp_path / "restarted").read_text().strip() == "1"
