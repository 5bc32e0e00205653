"""A real two-node Slurm cluster on this machine: munged, slurmctld and two slurmd, started and stopped by PID.

Both nodes run on the local host (``MULTIPLE_SLURMD``): node ``$(hostname)`` and node ``localhost``, each with
its own slurmd port, 8 fake GPUs (``gres.conf`` entries are symlinks to /dev/null) and no cgroups (the test
machines are containers without them: ``proctrack/linuxproc``, ``task/none``). Clients find the cluster
through ``SLURM_CONF`` in :attr:`SlurmCluster.env`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from training import free_port

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "scancel", "srun", "sinfo", "squeue")
FAKE_GPUS = 8


def missing_programs() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=_sbin_path()) is None]


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def install() -> str | None:
    """``apt-get install slurm-wlm munge`` (as root; ``apt-get update`` first if that fails); returns why it
    failed, or None."""
    if os.geteuid() != 0:
        return "not root: cannot apt-get install slurm-wlm munge"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # a missing or stale package index
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    return None if result.returncode == 0 else f"apt-get install slurm-wlm munge failed: {result.stderr[-1000:]}"


SLURM_CONF = """\
ClusterName=interceptor-test
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket,cred_expire=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerParameters=sched_interval=1
GresTypes=gpu
NodeName=DEFAULT CPUs={cpus} RealMemory={memory} Gres=gpu:{gpus} State=UNKNOWN
NodeName={host} NodeHostname={host} Port={host_port}
NodeName=localhost NodeHostname=localhost Port={localhost_port}
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` is what clients (sbatch, scontrol) need."""

    def __init__(self, root: Path, cpus: int = 4, memory_mb: int = 8000):
        """Each node advertises ``cpus`` (more than the host's 2 cores: the tests' small jobs share them) and
        ``memory_mb``."""
        self.root = Path(root)
        self.host = socket.gethostname()
        self.nodes = [self.host, "localhost"]
        self.cpus, self.memory_mb = cpus, memory_mb
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "slurm.conf"), "PATH": _sbin_path()}

    def _write_config(self) -> None:
        for name in ("state", "spool", "dev"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        gres = []
        for node in self.nodes:
            (self.root / "spool" / node).mkdir(exist_ok=True)
            for index in range(FAKE_GPUS):
                device = self.root / "dev" / f"{node}-gpu{index}"
                device.symlink_to("/dev/null")  # gres File= must be a device: a plain file is refused
                gres.append(f"NodeName={node} Name=gpu File={device}")
        (self.root / "gres.conf").write_text("\n".join(gres) + "\n")
        (self.root / "slurm.conf").write_text(SLURM_CONF.format(
            host=self.host, root=self.root, ctld_port=free_port(), host_port=free_port(), localhost_port=free_port(),
            cpus=self.cpus, memory=self.memory_mb, gpus=FAKE_GPUS))
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)

    def _spawn(self, label: str, program: str, *args: str) -> None:
        """Start ``program`` in the foreground of its own session, its output in ``ROOT/<label>.stdout``."""
        with open(self.root / f"{label}.stdout", "ab") as log:
            self.processes.append(subprocess.Popen([shutil.which(program, path=_sbin_path()), *args], env=self.env,
                                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self, timeout: float = 90) -> SlurmCluster:
        """Write the config, start the daemons in the foreground, and wait until both nodes are idle."""
        self._write_config()
        r = self.root
        self._spawn("munged", "munged", "--foreground", "--force", f"--socket={r}/munge.socket",
                    f"--key-file={r}/munge.key", f"--pid-file={r}/munged.pid", f"--log-file={r}/munged.log",
                    f"--seed-file={r}/munged.seed")
        self._wait(lambda: (r / "munge.socket").exists(), 20, "munged did not create its socket")
        self._spawn("slurmctld", "slurmctld", "-D", "-c", "-f", str(r / "slurm.conf"))
        for node in self.nodes:
            self._spawn(f"slurmd-{node}", "slurmd", "-D", "-f", str(r / "slurm.conf"), "-N", node)
        self._wait(lambda: self.idle_nodes() == len(self.nodes), timeout, "the nodes never became idle")
        return self

    def idle_nodes(self) -> int:
        result = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
        return sum(1 for line in result.stdout.splitlines() if line.split()[-1:] == ["idle"])

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.time() + timeout
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.time() > deadline:
                raise RuntimeError(f"{message} (exited: {dead or 'none'}); logs: {self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.stdout")))

    def stop(self) -> None:
        """Cancel every job and wait for them to end, then end the daemons by PID (slurmd and slurmctld first,
        munged last)."""
        if self.processes:
            self.run("scancel", "--full", "--user", str(os.getuid()), check=False)
            deadline = time.time() + 60
            while self.run("squeue", "-h", "-o", "%i", check=False).stdout.strip() and time.time() < deadline:
                time.sleep(0.5)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes = []

    # ------------------------------------------------------------------------------------------ clients

    def run(self, *command: str, check: bool = True, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(command, env={**self.env, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                                timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
        return result

    def sbatch(self, *args: str, env: dict | None = None, cwd: Path | None = None) -> str:
        """Submit; returns the job id."""
        output = self.run("sbatch", "--parsable", *args, env=env, cwd=cwd).stdout.strip()
        return output.split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a mapping (an array task: ``JOBID_INDEX``)."""
        text = self.run("scontrol", "-o", "show", "job", job_id).stdout.splitlines()[0]
        return dict(re.findall(r"(\w+(?::\w+)?)=(\S*)", text))

    def wait_for(self, job_id: str, states: set[str], timeout: float) -> dict[str, str]:
        """Wait until the job is in one of ``states`` (``JobState``); returns its record."""
        deadline = time.time() + timeout
        while True:
            info = self.job(job_id)
            if info["JobState"] in states:
                return info
            if time.time() > deadline:
                raise AssertionError(f"job {job_id} still {info['JobState']} after {timeout:.0f} s, "
                                     f"waiting for {sorted(states)}: {info}")
            time.sleep(0.5)
