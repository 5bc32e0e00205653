"""One training run per run directory: ``run_dir/lock.json`` names its owner (host, pid, Slurm job).

Two runs on one run directory would delete each other's partial checkpoints and interleave their metrics, so
a run takes the lock before it writes anything. A lock is stale, and taken over, when its owner is gone: a
process on this host that no longer runs, or an earlier run of this same Slurm job (a requeued job runs again
under its job id once the earlier run has ended). Any other owner is an error naming it and the lock file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from interceptor.utils import fsync_dir

log = logging.getLogger(__name__)

LOCK_FILE = "lock.json"


class RunLocked(RuntimeError):
    """The run directory is locked by another live run; the message names the owner and the lock file."""


def _owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _is_stale(owner: dict, me: dict) -> bool:
    if owner.get("slurm_job") and owner["slurm_job"] == me["slurm_job"]:
        return True  # an earlier run of this (requeued) job
    if owner.get("host") != me["host"]:
        return False  # cannot tell whether a process on another host still runs
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return int(owner["pid"]) == me["pid"]  # our own lock, taken again


class RunLock:
    """``with RunLock(run_dir):`` holds the lock for the block (call it on one process per run only)."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / LOCK_FILE
        self.owner = _owner()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(self.owner, fh)
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(self.path.parent)
            return

    def _take_over_if_stale(self) -> None:
        try:
            owner = json.loads(self.path.read_text())
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            owner = {}
        if not (owner and _is_stale(owner, self.owner)):
            who = (f"host {owner.get('host')}, pid {owner.get('pid')}, Slurm job {owner.get('slurm_job') or '-'}, "
                   f"since {owner.get('since')}") if owner else "an unreadable owner"
            raise RunLocked(f"{self.path}: the run directory is in use by {who}. Two runs on one run directory "
                            "corrupt each other: wait for it, or remove the lock file if that run is gone")
        log.warning("%s: taking over the stale lock of %s", self.path, owner)
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
