"""The project's Slurm scripts submitted with sbatch to a real two-node Slurm cluster (``slurm_cluster`` fixture):
preemption, requeue and exact resume of slurm/curriculum.sh, the job arrays of all_specialists.sh and
build_shards.sh. One process per node, CPU, gloo, a tiny curriculum."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from training import REPO, write_curriculum

pytestmark = pytest.mark.slow

STEPS = 40


def stage() -> dict:
    return {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3,
            "init": "none"}


def training_args(curriculum: Path) -> list[str]:
    return [f"curriculum={curriculum}", "data.batch_size=4", f"data.steps_per_epoch={STEPS}", "data.workers=1",
            "train.checkpoint_every=100000", "train.zero_stage=1"]


def job_env(shards: Path, run_dir: Path) -> dict:
    """What curriculum.sh reads: one process per node, this interpreter (the rendezvous port is the script's
    default, one per job)."""
    return {"SHARDS": str(shards), "RUN_DIR": str(run_dir), "CONFIG": "demo",
            "GPUS_PER_NODE": "1", "PYTHON": sys.executable, "REPO": str(REPO),
            "OMP_NUM_THREADS": "1"}  # as torchrun sets it for several processes per node: comparable results


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, message
        time.sleep(0.2)


def checkpoint_weights(run: Path) -> dict[str, torch.Tensor]:
    """Module weights of the run's latest checkpoint (our own run: DeepSpeed's pickle format is trusted here)."""
    checkpoints = run / "checkpoints"
    tag = (checkpoints / "latest").read_text().strip()
    states = torch.load(checkpoints / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    return states["module"]


def job_output(path: Path) -> str:
    """A job's output so far (progress bars may have cut a character in two)."""
    return path.read_text(errors="replace") if path.is_file() else ""


def steps_done(output: Path, steps: int = STEPS) -> int:
    """The last training step the job's output shows (the rank-0 progress bar of ``steps`` steps)."""
    found = re.findall(rf"(\d+)/{steps} \[", job_output(output))
    return int(found[-1]) if found else 0


def preempt_after(cluster, job: str, output: Path, steps: int) -> None:
    """Once the job has trained ``steps`` steps, what ``--signal=B:USR1@180`` does: SIGUSR1 to the batch shell
    only."""
    wait_until(lambda: steps_done(output) >= steps, 240, f"job {job} never reached step {steps}")
    cluster.run("scancel", "--signal=USR1", "--batch", job)


def wait_for_requeue(cluster, job: str, timeout: float = 120) -> None:
    wait_until(lambda: cluster.job(job)["Restarts"] == "1", timeout, f"job {job} was not requeued")


def submit_curriculum(cluster, shards: Path, run_dir: Path, output: Path, curriculum: Path, *sbatch: str) -> str:
    return cluster.sbatch("--cpus-per-task=1", f"--output={output}", *sbatch, "slurm/curriculum.sh", "ll",
                          *training_args(curriculum), env=job_env(shards, run_dir), cwd=REPO)


def test_curriculum_preempted_on_two_nodes_resumes_to_the_uninterrupted_weights(slurm_cluster, shards_root, tmp_path):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage()])
    run_dir = tmp_path / "runs"
    run = run_dir / "ll" / "stage1-ffpp"
    output = tmp_path / "job.out"
    job = submit_curriculum(slurm_cluster, shards_root, run_dir, output, curriculum)
    first = slurm_cluster.wait_for(job, {"RUNNING"}, 60)
    assert first["NumNodes"] == "2" and first["TresPerNode"] == "gres:gpu:8"
    preempt_after(slurm_cluster, job, output, 5)
    wait_for_requeue(slurm_cluster, job)

    # Before the requeued job starts again (it deletes the marker): what the preempted one left.
    marker = json.loads((run_dir / "ll" / "preempted.json").read_text())
    assert marker["exit_code"] == 75
    tag = (run / "checkpoints" / "latest").read_text().strip()
    assert 5 <= int(tag[4:]) < STEPS, tag
    files = {p.name for p in (run / "checkpoints" / tag).iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)} <= files  # every rank wrote its part

    # The same job, never interrupted, runs while the requeued one waits to be eligible again.
    clean = submit_curriculum(slurm_cluster, shards_root, tmp_path / "clean", tmp_path / "clean.out", curriculum)
    final = slurm_cluster.wait_for(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 300)
    log = job_output(output)
    assert final["JobState"] == "COMPLETED" and final["Restarts"] == "1", log[-3000:]
    done = json.loads((run / "done.json").read_text())
    assert done["resumed_from"] == tag and done["steps"] == STEPS  # from that step, not from zero

    reference = slurm_cluster.wait_for(clean, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 300)
    assert reference["JobState"] == "COMPLETED", job_output(tmp_path / "clean.out")[-3000:]
    a, b = checkpoint_weights(tmp_path / "clean" / "ll" / "stage1-ffpp"), checkpoint_weights(run)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_curriculum_is_preempted_by_its_time_limit(slurm_cluster, shards_root, tmp_path):
    """``--time`` with ``--signal=B:USR1@75``: Slurm itself signals the batch shell 75 s before the limit. Slurm
    may send it up to 60 s early, so the limit is brought close (2 min) only once the job trains."""
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage()])
    run_dir = tmp_path / "runs"
    output = tmp_path / "job.out"
    env = {**job_env(shards_root, run_dir), "GPUS_PER_NODE": ""}  # as the README's CPU cluster submission:
    job = slurm_cluster.sbatch("--gpus-per-node=0", "--cpus-per-task=1", f"--output={output}", "--time=10",
                               "--signal=B:USR1@75", "slurm/curriculum.sh", "ll", *training_args(curriculum),
                               "data.steps_per_epoch=1000", env=env, cwd=REPO)
    wait_until(lambda: steps_done(output, 1000) >= 5, 240, f"job {job} never trained")
    slurm_cluster.run("scontrol", "update", f"JobId={job}", "TimeLimit=2")  # USR1 due 45 s after the start
    wait_for_requeue(slurm_cluster, job, timeout=150)
    slurm_cluster.run("scancel", job)  # resuming to the end is the two-node test's part
    log = job_output(output)
    info = json.loads((run_dir / "ll" / "stage1-ffpp" / "run.json").read_text())
    assert info["world_size"] == 2  # no GPUs: one process on each of the 2 nodes
    assert json.loads((run_dir / "ll" / "preempted.json").read_text())["exit_code"] == 75, log[-3000:]
    tag = (run_dir / "ll" / "stage1-ffpp" / "checkpoints" / "latest").read_text().strip()
    assert 5 <= int(tag[4:]) < 1000


def test_all_specialists_array_one_preempted_while_the_others_finish(slurm_cluster, shards_root, tmp_path):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage()])
    run_dir = tmp_path / "runs"
    array = slurm_cluster.sbatch("--array=0,3", "--cpus-per-task=1", f"--output={tmp_path}/task-%a.out",
                                 "slurm/all_specialists.sh", *training_args(curriculum),
                                 env=job_env(shards_root, run_dir), cwd=REPO)
    ll, cm = f"{array}_0", f"{array}_3"
    preempt_after(slurm_cluster, ll, tmp_path / "task-0.out", 5)
    wait_for_requeue(slurm_cluster, ll)
    assert json.loads((run_dir / "ll" / "preempted.json").read_text())["exit_code"] == 75
    finished = {task: slurm_cluster.wait_for(task, {"COMPLETED", "FAILED", "CANCELLED"}, 300) for task in (cm, ll)}
    assert finished[cm]["JobState"] == "COMPLETED" and finished[cm]["Restarts"] == "0"  # never interrupted
    assert finished[ll]["JobState"] == "COMPLETED" and finished[ll]["Restarts"] == "1"
    done = {spec: json.loads((run_dir / spec / "stage1-ffpp" / "done.json").read_text()) for spec in ("ll", "cm")}
    assert all(d["steps"] == STEPS for d in done.values())
    assert done["ll"]["resumed_from"] is not None and done["cm"]["resumed_from"] is None


def test_build_shards_array_builds_every_set_of_a_small_corpus(slurm_cluster, tmp_path):
    from interceptor.config import load_config
    from interceptor.synth import generate_corpus

    cfg = load_config(None, ["synth.videos=6", "synth.seconds=1", "synth.dfdc_chunks=1"])
    raw = generate_corpus(tmp_path / "raw", cfg.synth)
    shards = tmp_path / "shards"
    # DFDC_CHUNKS=1: task 0 builds DFDC chunk 0, tasks 1-3 the FF++ splits, 4-6 Celeb-DF's.
    array = slurm_cluster.sbatch("--array=0-6", "--cpus-per-task=1", "--mem=1G", f"--output={tmp_path}/shards-%a.out",
                                 "slurm/build_shards.sh", cwd=REPO,
                                 env={"RAW": str(raw), "SHARDS": str(shards), "DFDC_CHUNKS": "1",
                                      "CONFIG": "demo", "PYTHON": sys.executable})
    tasks = [f"{array}_{index}" for index in range(7)]
    states = {task: slurm_cluster.wait_for(task, {"COMPLETED", "FAILED", "CANCELLED"}, 300)["JobState"]
              for task in tasks}
    assert set(states.values()) == {"COMPLETED"}, {t: job_output(tmp_path / f"shards-{t[-1]}.out")[-2000:]
                                                   for t, s in states.items() if s != "COMPLETED"}
    for split in ("train", "val", "test"):
        for shard_set in (f"ffpp/{split}", f"celebdf/{split}", f"dfdc/chunk-00/{split}"):
            assert (shards / shard_set / "manifest.json").is_file(), shard_set
    inspect = subprocess.run([sys.executable, "shards/inspect.py", str(shards)], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr[-2000:]
