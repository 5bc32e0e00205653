"""Several specialists at once: one separate ``torchrun`` per specialist, on its own share of the devices.

DeepSpeed recommends separate launches over several engines sharing one process group, so this supervisor
starts each specialist as its own ``torchrun`` job (own master port, own ``CUDA_VISIBLE_DEVICES`` on GPUs,
own CPU threads on CPU). There is no collective across specialists, so nothing can deadlock between them,
and a failing specialist only ends its own job: the others run on, and the supervisor reports who failed.
With fewer devices than specialists the rest wait in a queue and start as devices free up.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interceptor.config import ConfigError
from interceptor.distributed import free_port
from interceptor.utils import atomic_write_json

log = logging.getLogger("interceptor.parallel")

ENTRY_MODULE = "interceptor.train.launch"  # each job runs it with torchrun -m: no script path outside the package
SHUTDOWN_TIMEOUT_S = 150  # after a stop signal, torchrun gives its workers this long to checkpoint (as curriculum.sh)


@dataclass
class Job:
    specialist: str
    devices: list[int]
    process: subprocess.Popen
    log_path: Path
    started: float = field(default_factory=time.time)


def run_parallel(specialists: list[str], devices: int, group_size: int, launcher_args: list[str],
                 overrides: dict[str, list[str]], run_root: Path) -> int:
    """Train ``specialists`` on ``devices`` devices, ``group_size`` per specialist; returns an exit code."""
    from interceptor.models.registry import costliest_first
    from interceptor.train.trainer import EXIT_PREEMPTED

    if group_size < 1 or group_size > devices:
        raise ConfigError(f"parallel.group_size: must be between 1 and the {devices} available devices, got {group_size}")
    gpus = torch.cuda.is_available()
    free = list(range(devices))
    queue = costliest_first(specialists)  # so the slots finish together
    running: list[Job] = []
    results: dict[str, int] = {}
    spans: dict[str, dict[str, float]] = {}  # per specialist: when its job started and ended (Unix time)
    concurrent = max(1, min(len(specialists), devices // group_size))
    threads = max(1, (os.cpu_count() or 1) // (concurrent * group_size))
    stopping = {"signal": None}

    def forward(signum, frame):  # preemption: every child checkpoints; queued specialists do not start
        stopping["signal"] = signum
        for job in running:
            job.process.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    log.info("training %s on %d %s, %d per specialist (%d at a time)", ", ".join(specialists), devices,
             "GPUs" if gpus else "CPU processes", group_size, concurrent)
    try:
        while queue or running:
            while queue and len(free) >= group_size and stopping["signal"] is None:
                spec = queue.pop(0)
                assigned, free = free[:group_size], free[group_size:]
                running.append(_start(spec, assigned, gpus, threads, launcher_args, overrides[spec], run_root))
            for job in list(running):
                code = job.process.poll()
                if code is None:
                    continue
                running.remove(job)
                free = sorted(free + job.devices)
                results[job.specialist] = code
                spans[job.specialist] = {"started": job.started, "ended": time.time()}
                state = "finished" if code == 0 else f"FAILED (exit {code}, log {job.log_path})"
                log.info("%s %s after %.0f s", job.specialist, state, time.time() - job.started)
            if stopping["signal"] is not None and not running:
                break
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    preempted = [s for s in specialists if (run_root / s / "preempted.json").is_file()]
    failed = [s for s, code in results.items() if code != 0 and s not in preempted]
    not_started = queue
    summary = {"finished": [s for s, c in results.items() if c == 0], "failed": failed, "preempted": preempted,
               "not_started": not_started, "exit_codes": results, "spans": spans}
    atomic_write_json(run_root / "parallel_summary.json", summary)
    log.info("specialists finished: %s; failed: %s; preempted: %s; not started: %s",
             summary["finished"] or "none", failed or "none", preempted or "none", not_started or "none")
    if failed:
        return 1
    return EXIT_PREEMPTED if (preempted or not_started) else 0


def _start(spec: str, devices: list[int], gpus: bool, threads: int, launcher_args: list[str], overrides: list[str],
           run_root: Path) -> Job:
    env = dict(os.environ)
    for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "MASTER_ADDR",
                "MASTER_PORT", "TORCHELASTIC_RUN_ID", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE"):
        env.pop(var, None)  # a fresh, separate torchrun job
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in devices)
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(len(devices)),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
               f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}", "-m", ENTRY_MODULE,
               "--specialist", spec, *launcher_args, *overrides]
    log_path = run_root / spec / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    log.info("%s started on %s %s (log %s)", spec, "GPUs" if gpus else "CPU slots", devices, log_path)
    return Job(spec, devices, process, log_path)
