"""A real single-node Slurm cluster for the tests: Debian's slurm-wlm and munge, configured in a temporary folder,
its controller and node daemon started on this machine and stopped on leaving."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from .postgres import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")


def require_slurm() -> None:
    """Skip (fail under CI, where .ci/run installs Slurm) when this machine cannot start a Slurm cluster."""
    missing = [
        name
        for name in (*DAEMONS, "sbatch", "scontrol")
        if not shutil.which(name, path=f"/usr/sbin:{os.environ['PATH']}")
    ]
    reason = ""
    if missing:
        reason = f"Slurm is not installed ({', '.join(missing)} missing; Debian: apt-get install slurm-wlm munge)"
    elif os.geteuid() != 0:
        reason = "starting slurmd needs root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; .ci/run installs it")
        pytest.skip(reason)


@dataclass(frozen=True)
class Slurm:
    conf: Path

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def job_states(self, job: str) -> dict[str, tuple[str, str]]:
        """JobState and ExitCode of a job, or of each task of an array job, while the controller remembers it."""
        result = subprocess.run(
            ["scontrol", "-o", "show", "job", job],
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            check=True,
        )
        states = {}
        for line in result.stdout.splitlines():
            fields = dict(re.findall(r"(\w+)=(\S*)", line))
            task = fields.get("ArrayTaskId")
            states[f"{job}_{task}" if task else job] = (fields["JobState"], fields["ExitCode"])
        return states

    def wait(self, jobs: list[str], timeout_s: float) -> dict[str, tuple[str, str]]:
        """Poll until every job and array task has ended; their final states."""
        deadline = time.monotonic() + timeout_s
        ended = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"}
        by_job: dict[str, dict[str, tuple[str, str]]] = {}
        while True:
            for job in jobs:  # a job whose tasks all ended is not asked again
                if not by_job.get(job) or any(state not in ended for state, _ in by_job[job].values()):
                    by_job[job] = self.job_states(job)
            states = {name: state for job_states in by_job.values() for name, state in job_states.items()}
            if all(state in ended for state, _ in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"Slurm jobs still running after {timeout_s:.0f} s: {states}")
            time.sleep(1.0)


def memory_mb() -> int:
    total_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    return int(total_kb / 1024 * 0.8)


SLURM_CONF = """\
ClusterName=synthaug-test
SlurmctldHost={host}
SlurmctldPort={controller_port}
SlurmdPort={node_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=65000
NodeName={host} CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


# MinJobAge=65000 (18 h): the controller keeps every job record (no accounting database here), so a job that ended
# long ago can still be asked for its state.
@contextmanager
def slurm_cluster(folder: Path) -> Iterator[Slurm]:
    """munged with its own key and socket, slurmctld and slurmd on free ports; one node with this machine's CPUs."""
    require_slurm()
    host = socket.gethostname().split(".")[0]
    for name in ("state", "spool"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            host=host,
            controller_port=free_port(),
            node_port=free_port(),
            folder=folder,
            cpus=os.cpu_count(),
            memory=memory_mb(),
        )
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [
        [
            "/usr/sbin/munged",
            "--force",
            f"--key-file={key}",
            f"--socket={folder}/munge.socket",
            f"--pid-file={folder}/munged.pid",
            f"--log-file={folder}/munged.log",
            f"--seed-file={folder}/munged.seed",
        ],
        ["/usr/sbin/slurmctld", "-i"],
        ["/usr/sbin/slurmd"],
    ]
    try:
        for command in daemons:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, f"{command[0]} did not start:\n{result.stdout}\n{result.stderr}"
        slurm = Slurm(conf)
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout:
            if time.monotonic() > deadline:
                logs = "\n".join((folder / f"{name}.log").read_text() for name in ("slurmctld", "slurmd"))
                raise AssertionError(f"the Slurm node never became idle:\n{logs[-3000:]}")
            time.sleep(0.5)
        yield slurm
    finally:
        # Job steps outlive slurmd: cancel what still runs, and wait for it, before stopping the daemons.
        subprocess.run(["scancel", "--partition=debug"], env=env, capture_output=True, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=60)
            if queue.returncode != 0 or not queue.stdout.strip():
                break
            time.sleep(0.5)
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True, timeout=60)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            stop(folder / pid_file)


def stop(pid_file: Path, grace_s: float = 20.0) -> None:
    """SIGTERM the daemon a pid file names, SIGKILL it if it outlives the grace period."""
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():  # exited; its parent has not reaped it
                return
        except OSError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def submitted_jobs(output: str) -> tuple[str, str]:
    """The shared job's and the array job's ids, from cluster/slurm/submit.sh's last line."""
    return re.search(r"job (\d+); \d+ grid points: array job (\d+)", output).groups()


def worker_times(log: str) -> tuple[float, float]:
    """When cluster/worker.sh started and ended, from its log (seconds since the epoch)."""
    start = float(re.search(r"worker \S+: start (\S+)", log).group(1))
    end = float(re.search(r"worker \S+: end (\S+)", log).group(1))
    return start, end
