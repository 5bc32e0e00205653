"""Preemption within the deadline and runs that cannot make progress (real torchrun / launcher, CPU, tiny backbone)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from training import REPO, torchrun, torchrun_command, worker_processes, write_curriculum

pytestmark = pytest.mark.slow

LONG_VALIDATION = ["ffpp/val", "ffpp/test", "celebdf/val", "celebdf/test"]  # about 7 s with eval_frames=all


def stage(val: list[str]) -> dict:
    return {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": val, "epochs": 1, "lr": 1e-3, "init": "none"}


LOADER_UNDER_SIGTERM = """
import signal, subprocess, time
import torch
from torch.utils.data import IterableDataset
from interceptor.config import load_config
from interceptor.data.streams import loader

class Forever(IterableDataset):
    def __iter__(self):
        while True:
            yield {"x": torch.zeros(1)}

def sigterm_pending(pid):
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
    return any(int(status[key], 16) >> (signal.SIGTERM - 1) & 1 for key in ("SigPnd", "ShdPnd"))

batches = iter(loader(Forever(), load_config(None, ["data.workers=1"]).data))
next(batches)
worker = batches._workers[0].pid
subprocess.run(["kill", "-TERM", str(worker)], check=True)  # as Slurm signals a job step
while sigterm_pending(worker):  # until the worker took the signal (a dead worker has no /proc entry: an error)
    time.sleep(0.01)
next(batches)
print("worker alive")
"""  # and the process then exits with the loader still open: its worker must end


def test_loader_workers_outlive_a_job_steps_sigterm_and_end_with_the_process():
    """Slurm's SIGTERM reaches every process of the step: a loader worker ignores it (the training process
    checkpoints first), yet ends when the training process ends it."""
    result = subprocess.run([sys.executable, "-c", LOADER_UNDER_SIGTERM], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "worker alive" in result.stdout, result.stderr[-3000:]


def test_a_signal_during_evaluation_checkpoints_within_the_deadline(tmp_path, shards_root):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(LONG_VALIDATION)])
    args = ["--specialist", "ll", "--shards", shards_root, "--run-dir", tmp_path / "runs", f"curriculum={curriculum}",
            "data.batch_size=4", "data.steps_per_epoch=4", "data.eval_batch_size=4", "data.eval_frames=all",
            "data.workers=1"]
    process = subprocess.Popen(torchrun_command(args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    workers = worker_processes(process, 2)
    lines = []
    for line in process.stdout:  # until the end-of-epoch evaluation starts
        lines.append(line)
        if "evaluating at step 4" in line:
            break
    assert process.poll() is None, "".join(lines)[-3000:]
    signalled = time.time()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    stopped_after = time.time() - signalled
    output = "".join(lines) + output
    assert stopped_after < 15, stopped_after
    run = tmp_path / "runs" / "ll" / "stage1-ffpp"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step00000004"
    marker = json.loads((tmp_path / "runs" / "ll" / "preempted.json").read_text())
    assert marker["exit_code"] == 75 and "during the evaluation at step 4" in marker["message"], output[-3000:]
    # the evaluation did not run to its end first: it recorded nothing
    assert not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip()

    # The resumed run evaluates first, then the run is done.
    rerun = torchrun(args, timeout=600, log=tmp_path / "rerun.log")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4]
    done = json.loads((run / "done.json").read_text())
    assert (done["steps"], done["resumed_from"]) == (4, "step00000004")  # resumed there, evaluated first


def test_a_run_whose_every_loss_is_non_finite_fails_after_the_cap(tmp_path, shards_root):
    """A focal loss with a NaN exponent: every loss is non-finite and no step is ever taken. The run fails
    after train.max_nonfinite_steps skipped steps, without evaluating or checkpointing step 0 again and again
    (eval_every=1: every skipped step used to be an evaluation boundary)."""
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [{**stage(["ffpp/val"]), "loss": "focal"}])
    result = subprocess.run([sys.executable, "launcher/train.py", "--specialist", "ll", "--shards", str(shards_root),
                             "--run-dir", str(tmp_path / "runs"), f"curriculum={curriculum}", "train.focal_gamma=.nan",
                             "data.batch_size=4", "data.steps_per_epoch=40", "data.workers=0", "train.eval_every=1",
                             "train.max_nonfinite_steps=5"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "6 consecutive non-finite losses" in result.stderr and "train.max_nonfinite_steps = 5" in result.stderr
    assert "Traceback" not in result.stderr
    run = tmp_path / "runs" / "ll" / "stage1-ffpp"
    assert not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text().strip()
    assert not list((run / "checkpoints").glob("step*")) and not (run / "done.json").exists()


def test_a_second_run_on_a_run_directory_in_use_stops_naming_the_owner(tmp_path, shards_root):
    """Two runs on one run directory would delete each other's partial checkpoints: the second one stops."""
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(["ffpp/val"])])
    command = [sys.executable, "launcher/train.py", "--specialist", "ll", "--shards", str(shards_root), "--run-dir",
               str(tmp_path / "runs"), f"curriculum={curriculum}", "data.batch_size=4", "data.steps_per_epoch=1000",
               "data.workers=0"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "runs" / "ll" / "stage1-ffpp" / "lock.json"
        deadline = time.time() + 120
        while not lock.is_file():
            assert time.time() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.2)
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"{lock}: the run directory is in use by host" in second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None  # untouched
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 75
        assert not lock.exists()  # released on the way out
    finally:
        first.kill()
        first.wait()
