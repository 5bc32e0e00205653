"""Checkpoints you can trust: commit markers, resume past a broken ``latest``, no deletion before a rename,
pruning by save order, fsync before ``latest``, the run-directory lock, every rank's data position.

CheckpointManager is driven by a stand-in engine (a folder of files per save, as DeepSpeed writes); the
per-rank state runs on a real two-process gloo group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from crash import Killed, kill_at_call

from interceptor.train.checkpoint import COMMIT, CheckpointError, CheckpointManager, step_tag
from interceptor.train.runlock import LOCK_FILE, RunLock, RunLocked


class StandInEngine:
    """What CheckpointManager uses of a DeepSpeed engine: each save writes a folder of files under the tag."""

    def __init__(self, step: int = 0, world_size: int = 1):
        self.global_steps, self.world_size = step, world_size

    def save_checkpoint(self, save_dir, tag, client_state, save_latest):
        folder = Path(save_dir) / tag
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "mp_rank_00_model_states.pt").write_text(json.dumps({"step": self.global_steps, **client_state}))
        (folder / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_text("optimizer")

    def load_checkpoint(self, load_dir, tag, **_):
        path = Path(load_dir) / tag / "mp_rank_00_model_states.pt"
        if not path.is_file():
            return None, None
        state = json.loads(path.read_text())
        self.global_steps = state.pop("step")
        return str(path.parent), state


def save(manager: CheckpointManager, step: int, **state) -> Path:
    return manager.save(StandInEngine(step), step_tag(step), {"saved_at": step, **state})


def loaded(manager: CheckpointManager) -> dict:
    engine = StandInEngine()
    state = manager.load(engine, manager.resume_tag())
    return {"step": engine.global_steps, **state}


# ------------------------------------------------------------------------------------------------ defect 1


@pytest.mark.parametrize("damage", ["missing", "empty", "dangling"])
def test_a_broken_latest_resumes_from_the_newest_committed_checkpoint(tmp_path, damage):
    manager = CheckpointManager(tmp_path, keep_last=3, is_main=True)
    for step in (2, 4):
        save(manager, step)
    latest = tmp_path / "latest"
    {"missing": latest.unlink, "empty": lambda: latest.write_text(""),
     "dangling": lambda: latest.write_text("step00000006\n")}[damage]()
    assert manager.resume_tag() == "step00000004"
    assert loaded(manager)["step"] == 4


def test_an_uncommitted_folder_is_never_resumed_from(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=3, is_main=True)
    save(manager, 2)
    (tmp_path / "step00000004").mkdir()  # a folder without its commit marker: incomplete
    (tmp_path / "latest").write_text("step00000004\n")
    assert manager.resume_tag() == "step00000002"


def test_latest_without_any_committed_checkpoint_fails_loudly(tmp_path):
    (tmp_path / "latest").write_text("step00000004\n")
    with pytest.raises(CheckpointError, match="latest names 'step00000004'.*no committed checkpoint"):
        CheckpointManager(tmp_path, keep_last=2, is_main=True).resume_tag()


def test_no_checkpoint_at_all_starts_fresh(tmp_path):
    assert CheckpointManager(tmp_path / "checkpoints", keep_last=2, is_main=True).resume_tag() is None


# ------------------------------------------------------------------------------------------------ defect 2


def test_a_kill_anywhere_in_a_resave_keeps_a_committed_checkpoint(tmp_path, monkeypatch):
    """Re-saving a committed step (a preemption right after a periodic save) never deletes it first."""
    number = 1
    while True:
        directory = tmp_path / str(number)
        manager = CheckpointManager(directory, keep_last=1, is_main=True)
        save(manager, 4, version="old")
        with monkeypatch.context() as patch:
            kill_at_call(patch, number)
            try:
                save(manager, 4, version="new")
                finished = True
            except Killed:
                finished = False
        state = loaded(manager)
        assert state["step"] == 4 and state["version"] in ("old", "new"), (number, state)
        if finished:
            assert state["version"] == "new"
            break
        number += 1
    assert number > 3  # the save was killed at each of its renames and removals


# ------------------------------------------------------------------------------------------------ defect 3


def test_pruning_after_resume_never_keeps_the_new_run_and_what_latest_names(tmp_path):
    old = CheckpointManager(tmp_path, keep_last=2, is_main=True)
    for step in (100, 200):
        save(old, step)
    fresh = CheckpointManager(tmp_path, keep_last=2, is_main=True)  # --resume never: a new run from step 0
    save(fresh, 2)
    assert (tmp_path / "step00000002").is_dir() and fresh.resume_tag() == "step00000002"
    save(fresh, 4)
    assert sorted(fresh.committed()) == ["step00000002", "step00000004"]  # the newest saves, not the highest names
    assert loaded(fresh)["step"] == 4


def test_best_is_kept_beside_the_last_ones(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=1, is_main=True)
    manager.save(StandInEngine(2), step_tag(2), {}, best=True)
    for step in (4, 6):
        save(manager, step)
    assert sorted(manager.committed()) == ["step00000002", "step00000006"]
    assert manager.best_tag() == "step00000002"


# ------------------------------------------------------------------------------------------------ defect 4


def written_name(path: str) -> str:
    """The name a file is written for: ``.NAME.RANDOM.tmp`` (utils.atomic_path) -> ``NAME``."""
    name = Path(path).name
    return name[1:].rsplit(".", 2)[0] if name.startswith(".") and name.endswith(".tmp") else name


def test_every_file_and_folder_is_fsynced_before_latest_names_it(tmp_path, monkeypatch):
    synced: list[str] = []
    original = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return original(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    manager = CheckpointManager(tmp_path, keep_last=2, is_main=True)
    folder = save(manager, 2)
    before_latest = synced[:next(i for i, p in enumerate(synced) if Path(p).name.startswith(".latest."))]
    files = {p.name for p in folder.iterdir()}
    assert files == {"mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", COMMIT}
    synced_names = {written_name(p) for p in before_latest}
    assert files <= synced_names, before_latest  # the files' data (under their partial folder's name)
    assert str(tmp_path) in before_latest  # the folder's rename into place
    assert str(tmp_path) == synced[-1] or str(tmp_path) in synced[len(before_latest):]  # latest's own rename


# ------------------------------------------------------------------------------------------------ defect 6


def test_a_live_run_holds_the_run_directory(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": other.pid,
                                                      "slurm_job": "77", "since": "earlier"}))
        with pytest.raises(RunLocked, match=rf"{LOCK_FILE}: the run directory is in use by host .*pid {other.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_is_taken_over(tmp_path, monkeypatch):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": int(gone.stdout),
                                                  "slurm_job": None}))
    with RunLock(tmp_path):
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_requeued_slurm_job_takes_over_its_earlier_runs_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "another-node", "pid": 1, "slurm_job": "4242"}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["slurm_job"] == "4242"


# ------------------------------------------------------------------------------------------------ defect 7


def _trainer(rank: int, world: int):
    from interceptor.train.curriculum import StageRun
    from interceptor.distributed import DistInfo
    from interceptor.train.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # the loop state only: no model, no data
    trainer.dist = DistInfo(rank, world, rank, torch.device("cpu"))
    trainer.run = StageRun.__new__(StageRun)
    trainer.run.name = "stage 1 (test)"
    trainer.epoch, trainer.step_in_epoch, trainer.batches_in_epoch = 0, 3, 6
    trainer.best_metric, trainer.best_step, trainer.pending_evaluation = 0.5, 2, False
    trainer.counters = {"nonfinite_skipped": 0, "corrupt_samples": 0}
    trainer.position = {}
    return trainer


def _rank_main(rank: int, world: int, port: int, out: str) -> None:
    """One rank: save its loop state, then restore what DeepSpeed would give back, as written by 2 ranks and by 1."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        before = _trainer(rank, world)
        before.position = {0: 10 + rank, 1: 20 + 3 * rank}  # e.g. rank 1 skipped corrupt samples
        state = before._client_state()
        one_rank = {**state, "positions": state["positions"][:1], "rng": state["rng"][:1]}  # a world of one's
        restored = {}
        for saved_world, written in ((2, state), (1, one_rank)):
            saved = [written]
            dist.broadcast_object_list(saved, src=0)  # DeepSpeed saves rank 0's client state only
            after = _trainer(rank, world)
            after._restore(saved[0])
            restored[saved_world] = after.position
        Path(out, f"rank{rank}.json").write_text(json.dumps({"before": before.position, "after": restored}))
    finally:
        dist.destroy_process_group()


def test_every_rank_resumes_at_its_own_data_position(tmp_path):
    """On a real two-process gloo group (forked: the trainer is imported once, here)."""
    from interceptor.distributed import free_port
    from interceptor.train.trainer import Trainer  # noqa: F401 - imported before the fork

    mp.start_processes(_rank_main, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["after"]["2"] == rank["before"]  # its own position, not rank 0's
    assert ranks[0]["after"]["1"] == ranks[0]["before"]
    assert ranks[1]["after"]["1"] == {}  # a rank the checkpoint did not have starts its stream afresh
