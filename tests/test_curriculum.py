"""The curriculum over all stages, preemption, and several specialists at once (real torchrun, CPU, tiny backbone)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest

from training import REPO, torchrun, torchrun_command, worker_processes, write_curriculum

pytestmark = pytest.mark.slow

CHUNK_ORDER = [9, 8, 3, 5, 7, 2, 6, 4, 1, 0]


def test_whole_curriculum_runs_every_stage_and_chunk_in_order(tmp_path, shards_root):
    """configs/curriculum.yaml as shipped: stage 1 FF++, stage 2 Celeb-DF, stage 4 DFDC chunk by chunk."""
    # AV: FF++ has no audio, so only the DFDC stage can teach it the audio-visual sync that DFDC fakes break.
    result = torchrun(["--specialist", "av", "--stage", "1,2,4", "--shards", shards_root, "--run-dir", tmp_path,
                       "curriculum=configs/curriculum.yaml", "data.batch_size=8", "data.steps_per_epoch=24"],
                      timeout=900, log=tmp_path / "train.log")
    assert result.returncode == 0, result.stderr[-3000:]
    root = tmp_path / "av"
    # The plan holds the stages trained (not 5, distillation); their runs finished in its order.
    planned = json.loads((root / "plan.json").read_text())["runs"]
    assert [r["name"] for r in planned] == ["stage 1 (ffpp)", "stage 2 (celebdf)",
                                            *[f"stage 4 chunk {c:02d}" for c in CHUNK_ORDER]]
    finished = [(root / r["run_dir"] / "done.json").stat().st_mtime_ns for r in planned]
    assert finished == sorted(finished)
    dfdc = {c: json.loads((shards_root / "dfdc" / f"chunk-{c:02d}" / "train" / "manifest.json").read_text())
            for c in CHUNK_ORDER}
    runs = [root / "stage1-ffpp", root / "stage2-celebdf", *[root / "stage4-dfdc" / f"chunk-{c:02d}" for c in CHUNK_ORDER]]
    for run in runs:
        done = json.loads((run / "done.json").read_text())
        chunk = int(run.name[-2:]) if run.name.startswith("chunk") else None
        assert next(r for r in planned if root / r["run_dir"] == run)["trains"] == (
            chunk is None or dfdc[chunk]["total_samples"] > 0)
        if chunk is not None and dfdc[chunk]["total_samples"] == 0:
            assert done == {"skipped": "no training samples"}
            continue
        assert (run / "checkpoints" / "latest").is_file() and (run / "best" / "model.safetensors").is_file()
        info = json.loads((run / "run.json").read_text())
        assert info["stage"] in (1, 2, 4)
    # Each run starts from the one before it that trained; DFDC's chunks continue one optimizer and LR schedule.
    trained = [r for r in runs if (r / "run.json").is_file()]
    for before, after in zip(trained, trained[1:]):
        assert json.loads((after / "run.json").read_text())["init_from"] == str(before / "best")
    chunks = [r for r in trained if r.name.startswith("chunk")]
    infos = [json.loads((r / "run.json").read_text()) for r in chunks]
    assert infos[0]["continue_from"] is None and len({i["schedule_steps"] for i in infos}) == 1
    steps = 24 * 2  # data.steps_per_epoch x the stage's 2 epochs per chunk
    assert infos[0]["schedule_steps"] == steps * len(chunks)
    for before, after, info in zip(chunks, chunks[1:], infos[1:]):
        assert info["continue_from"] == str(before / "checkpoints")
        last_step = int((before / "checkpoints" / "latest").read_text().strip().removeprefix("step"))
        assert int((after / "checkpoints" / "latest").read_text().strip().removeprefix("step")) == last_step + steps

    matrix = json.loads((root / "cross_dataset.json").read_text())
    assert list(matrix["rows"]) == ["stage 1", "stage 2", "stage 4"]
    assert len(re.findall(r"^\| stage \d", (root / "cross_dataset.md").read_text(), re.M)) == 3
    stage1, stage4 = matrix["rows"]["stage 1"], matrix["rows"]["stage 4"]
    assert stage4["dfdc/chunk-*/test"]["video_mean_auc"] > stage1["dfdc/chunk-*/test"]["video_mean_auc"], matrix["rows"]


def test_a_stage_trains_with_its_own_shards_alone_resumes_and_the_next_stage_continues_it(tmp_path, shards_root):
    """A user with FF++ alone trains --stage 1 of a curriculum that goes on to Celeb-DF and DFDC: it trains, is
    preempted and resumes from its checkpoint; once Celeb-DF's shards are there, --stage 2 extends the plan, starts
    from the stage-1 model and adds Celeb-DF to stage 1's cross-dataset row."""
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "ffpp").symlink_to(shards_root / "ffpp", target_is_directory=True)
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [
        {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3,
         "init": "none"},
        {"id": 2, "name": "celebdf", "train": ["celebdf/train"], "val": ["celebdf/val"], "epochs": 1, "lr": 1e-4,
         "overrides": ["data.steps_per_epoch=2"]},
        {"id": 4, "name": "dfdc", "train": ["dfdc/chunk-{chunk}/train"], "val": ["dfdc/chunk-*/val"], "epochs": 1,
         "lr": 1e-4, "chunks": [9, 8]}], eval_sets=["ffpp/test", "celebdf/test"])
    root = tmp_path / "runs" / "ll"
    common = ["--specialist", "ll", "--shards", shards, "--run-dir", tmp_path / "runs", f"curriculum={curriculum}",
              "data.batch_size=4", "data.steps_per_epoch=24", "train.checkpoint_every=2"]
    process = subprocess.Popen(torchrun_command(["--stage", "1", *common]), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    workers = worker_processes(process, 2)
    latest = root / "stage1-ffpp" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not latest.is_file():
        assert time.time() < deadline and process.poll() is None, "stage 1 never reached its first checkpoint"
        time.sleep(0.1)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert "exitcode: 75" in output, output[-3000:]
    tag = latest.read_text().strip()

    resumed = torchrun(["--stage", "1", *common], timeout=600, log=tmp_path / "resumed.log")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((root / "stage1-ffpp" / "done.json").read_text())["resumed_from"] == tag
    assert [r["name"] for r in json.loads((root / "plan.json").read_text())["runs"]] == ["stage 1 (ffpp)"]
    assert list(json.loads((root / "cross_dataset.json").read_text())["rows"]["stage 1"]) == ["ffpp/test"]

    (shards / "celebdf").symlink_to(shards_root / "celebdf", target_is_directory=True)
    second = torchrun(["--stage", "2", *common], timeout=600, log=tmp_path / "stage2.log")
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((root / "stage2-celebdf" / "run.json").read_text())["init_from"] == str(root / "stage1-ffpp"
                                                                                                / "best")
    assert [r["name"] for r in json.loads((root / "plan.json").read_text())["runs"]] == ["stage 1 (ffpp)",
                                                                                         "stage 2 (celebdf)"]
    matrix = json.loads((root / "cross_dataset.json").read_text())  # stage 1's row completed on Celeb-DF
    assert {stage: list(row) for stage, row in matrix["rows"].items()} == {
        "stage 1": ["ffpp/test", "celebdf/test"], "stage 2": ["ffpp/test", "celebdf/test"]}


# ------------------------------------------------------------------------------------------------ preemption


def test_sigterm_checkpoints_on_every_rank_and_the_rerun_continues(tmp_path, shards_root):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [
        {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3, "init": "none"}])
    steps = 80
    args = ["--specialist", "ll", "--shards", shards_root, "--run-dir", tmp_path / "runs", f"curriculum={curriculum}",
            "data.batch_size=4", f"data.steps_per_epoch={steps}", "train.zero_stage=1", "train.checkpoint_every=20"]
    process = subprocess.Popen(torchrun_command(args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    workers = worker_processes(process, 2)
    run = tmp_path / "runs" / "ll" / "stage1-ffpp"
    deadline = time.time() + 300
    while not (run / "checkpoints" / "latest").is_file():  # into the epoch: step 20's checkpoint is written
        assert time.time() < deadline and process.poll() is None, "training never reached step 20"
        time.sleep(0.1)

    # A scheduler's preemption: SIGTERM to every training process.
    signalled = time.time()
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    elapsed = time.time() - signalled
    assert elapsed < 30, f"took {elapsed:.0f} s to checkpoint and stop"
    assert "exitcode: 75" in output  # the workers' distinct exit code, as torchrun reports it

    marker = json.loads((tmp_path / "runs" / "ll" / "preempted.json").read_text())
    assert marker["exit_code"] == 75
    tag = (run / "checkpoints" / "latest").read_text().strip()
    assert 20 <= int(tag[4:]) < steps, tag
    files = {p.name for p in (run / "checkpoints" / tag).iterdir()}
    assert {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)} <= files  # written by both ranks

    rerun = torchrun(args, timeout=600, log=tmp_path / "rerun.log")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    done = json.loads((run / "done.json").read_text())
    assert done["resumed_from"] == tag and done["steps"] == steps  # from that step, not from zero
    assert not (tmp_path / "runs" / "ll" / "preempted.json").exists()


# ------------------------------------------------------------------------------------------------ parallel


def test_specialists_train_in_parallel_and_a_failure_stays_isolated(tmp_path, shards_root):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [
        {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3, "init": "none"}])
    common = ["--shards", shards_root, "--run-dir", tmp_path / "runs", f"curriculum={curriculum}", "data.batch_size=8",
              "data.steps_per_epoch=6"]
    # Two processes for three specialists: two train at a time, the third queues; cm is broken on purpose.
    first = torchrun(["--specialist", "ll,cm,rr", *common, "cm:model.backbone=no_such_backbone"], nproc=2,
                     timeout=600, log=tmp_path / "first.log")
    assert first.returncode != 0
    summary = json.loads((tmp_path / "runs" / "parallel_summary.json").read_text())
    assert sorted(summary["finished"]) == ["ll", "rr"] and summary["failed"] == ["cm"]
    for spec in ("ll", "rr"):
        run = tmp_path / "runs" / spec / "stage1-ffpp"
        assert (run / "done.json").is_file() and (run / "best" / "model.safetensors").is_file()
        assert (run / "metrics.jsonl").read_text().strip()
    assert "no_such_backbone" in (tmp_path / "runs" / "cm" / "train.log").read_text()
    # ll and cm started together; rr waited for a free process, then trained while ll still did.
    spans = summary["spans"]
    assert max(spans["ll"]["started"], spans["cm"]["started"]) < spans["rr"]["started"] < spans["ll"]["ended"]
    finished = {spec: (tmp_path / "runs" / spec / "stage1-ffpp" / "done.json").read_bytes() for spec in ("ll", "rr")}

    # The rerun (fixed) resumes: finished specialists are skipped, cm trains.
    second = torchrun(["--specialist", "ll,cm,rr", *common], nproc=2, timeout=600, log=tmp_path / "second.log")
    assert second.returncode == 0, second.stderr[-3000:]
    assert (tmp_path / "runs" / "cm" / "stage1-ffpp" / "done.json").is_file()
    for spec in ("ll", "rr"):  # finished before: skipped, not trained again
        assert (tmp_path / "runs" / spec / "stage1-ffpp" / "done.json").read_bytes() == finished[spec]
