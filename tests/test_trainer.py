"""The DeepSpeed trainer under real torchrun (2 processes, gloo, CPU, tiny backbone) over real shards."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training import REPO, repack, torchrun, torchrun_command, write_curriculum

pytestmark = pytest.mark.slow

EXPECTED_SCALARS = {
    "train/loss", "train/lr", "train/loss_scale", "train/grad_norm", "train/samples_per_sec_rank",
    "train/samples_per_sec_total", "train/data_wait_fraction", "train/overflow_skipped",
    "train/nonfinite_skipped", "train/corrupt_samples", "val/video_mean_auc", "val/video_confident_auc",
    "val/clip_auc", "val/clip_log_loss", "val/video_mean_eer", "val/clip_f1", "val/clip_accuracy_real",
}


def stage(id=1, name="ffpp", train=("ffpp/train",), val=("ffpp/val",), epochs=1, lr=1e-3, **extra) -> dict:
    return {"id": id, "name": name, "train": list(train), "val": list(val), "epochs": epochs, "lr": lr,
            "init": "none", **extra}


@pytest.fixture(scope="module")
def cm_run(tmp_path_factory, shards_root):
    """CM trained on the synthetic FF++ train split (stage 1), validated on val, tested on the held-out test."""
    tmp = tmp_path_factory.mktemp("cm")
    # Stage 2 distils the stage-1 model into the lighter student of the demo config (distill.model).
    curriculum = write_curriculum(tmp / "curriculum.yaml", [stage(epochs=5), stage(id=2, name="distill", epochs=5,
                                                                                  distill=True)],
                                  eval_sets=["ffpp/test"])
    result = torchrun(["--specialist", "cm", "--shards", shards_root, "--run-dir", tmp / "runs",
                       f"curriculum={curriculum}", "train.lr_scale=1", "data.batch_size=8", "data.steps_per_epoch=60",
                       "data.workers=1",
                       "train.log_every=5", "train.checkpoint_every=1000"], timeout=900, log=tmp / "train.log")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tmp / "runs" / "cm"


def test_cm_learns_to_detect_its_artifacts_on_held_out_videos(cm_run):
    records = [json.loads(line) for line in (cm_run / "stage1-ffpp" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5 and all(r["split"] == "val" for r in records)
    assert max(r["video_mean_auc"] for r in records) >= 0.9
    held_out = json.loads((cm_run / "cross_dataset.json").read_text())["rows"]["stage 1"]["ffpp/test"]
    assert held_out["video_mean_auc"] >= 0.9, held_out
    assert held_out["video_mean_count"] == 12


def test_the_distilled_student_keeps_95_percent_of_its_teachers_auc(cm_run):
    rows = json.loads((cm_run / "cross_dataset.json").read_text())["rows"]
    teacher, student = rows["stage 1"]["ffpp/test"]["video_mean_auc"], rows["stage 2"]["ffpp/test"]["video_mean_auc"]
    assert student >= 0.95 * teacher, (student, teacher)
    info = json.loads((cm_run / "stage2-distill" / "run.json").read_text())
    assert info["teacher"] == str(cm_run / "stage1-ffpp" / "best")
    from interceptor.models import load_model

    sizes = {stage: sum(p.numel() for p in load_model(cm_run / stage / "best").parameters())
             for stage in ("stage1-ffpp", "stage2-distill")}
    assert sizes["stage2-distill"] < sizes["stage1-ffpp"], sizes  # the lighter student (distill.model)


def test_run_directory_records_config_commit_and_tensorboard(cm_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = cm_run / "stage1-ffpp"
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["precision"] == "fp32" and info["git_commit"]
    from interceptor.config import load_config

    resolved = load_config(run / "config.yaml")  # the fully resolved config, stage values applied
    assert resolved.train.lr == 1e-3 and resolved.train.epochs == 5 and resolved.data.steps_per_epoch == 60
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert EXPECTED_SCALARS <= set(events.Tags()["scalars"])
    assert {"val/roc", "val/samples"} <= set(events.Tags()["images"])
    assert len(events.Scalars("train/loss")) == 300 // 5
    lrs = [e.value for e in events.Scalars("train/lr")]
    assert lrs[-1] < max(lrs)  # warm-up then cosine decay


def test_checkpoints_keep_the_last_and_the_best(cm_run):
    checkpoints = cm_run / "stage1-ffpp" / "checkpoints"
    tags = sorted(p.name for p in checkpoints.iterdir() if p.is_dir())
    latest, best = (checkpoints / "latest").read_text().strip(), (checkpoints / "best").read_text().strip()
    assert latest == "step00000300" and best in tags and latest in tags
    assert len(tags) <= 3  # keep_last (2) plus the best
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")]


def test_exported_model_reloads_with_the_same_logits(cm_run, shards_root):
    from interceptor.config import load_config
    from interceptor.data.shard_sets import resolve_shard_sets
    from interceptor.distributed import DistInfo
    from interceptor.inputs import InputSpec
    from interceptor.models.export import load_model
    from interceptor.scoring import predict_clips

    best = cm_run / "stage1-ffpp" / "best"
    meta = json.loads((best / "model.json").read_text())
    assert meta["specialist"] == "cm" and meta["threshold"] == 0.5 and meta["image_size"] == 112
    model = load_model(best)
    assert sorted(load_file(str(best / "model.safetensors"))) == sorted(model.state_dict())
    cfg = load_config(None, ["data.workers=0"])
    spec = InputSpec.of(model)
    predictions = predict_clips(model, resolve_shard_sets(shards_root, ["ffpp/val"], "val"), cfg.data, spec,
                                DistInfo(0, 1, 0, torch.device("cpu")))
    # The exported weights reproduce the validation the trainer recorded when it picked them.
    records = [json.loads(line) for line in (cm_run / "stage1-ffpp" / "metrics.jsonl").read_text().splitlines()]
    at_best = next(r for r in records if r["step"] == meta["step"])
    assert predictions.metrics()["clip_log_loss"] == pytest.approx(at_best["clip_log_loss"], abs=1e-5)


# ------------------------------------------------------------------------------------------------ exact resume


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once (torchrun puts its workers in their own sessions)."""
    import psutil

    parent = psutil.Process(pid)
    for process in [parent, *parent.children(recursive=True)]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def final_weights(root: Path) -> dict[str, torch.Tensor]:
    """Module weights of the last checkpoint (our own run: DeepSpeed's pickle format is trusted here)."""
    checkpoints = root / "ll" / "stage1-ffpp" / "checkpoints"
    tag = (checkpoints / "latest").read_text().strip()
    return torch.load(checkpoints / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)["module"]


def test_killed_run_resumes_to_the_same_weights(tmp_path, shards_root):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(epochs=2)])
    common = ["--specialist", "ll", "--stage", "1", "--shards", shards_root, f"curriculum={curriculum}",
              "data.batch_size=4", "data.steps_per_epoch=6", "data.workers=2", "train.checkpoint_every=2",
              "train.keep_last=10"]
    clean = torchrun([*common, "--run-dir", tmp_path / "clean"], timeout=600, log=tmp_path / "clean.log")
    assert clean.returncode == 0, clean.stderr[-3000:]

    # The same run, SIGKILLed (every process) once its step-8 checkpoint (mid second epoch) is written, and its
    # latest emptied.
    killed = tmp_path / "killed"
    process = subprocess.Popen(torchrun_command([*common, "--run-dir", killed]), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "ll" / "stage1-ffpp" / "checkpoints" / "latest"
    deadline = time.time() + 400
    while not (latest.is_file() and latest.read_text().strip() >= "step00000008"):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no checkpoint at step 8"
        time.sleep(0.05)
    kill_tree(process.pid)
    process.wait()
    assert not (killed / "ll" / "stage1-ffpp" / "done.json").exists()
    latest.write_text("")  # a damaged latest: resume takes the newest committed checkpoint, not step 0

    resumed = torchrun([*common, "--run-dir", killed], timeout=600, log=tmp_path / "resumed.log")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"resuming from checkpoint step000000(0[89]|1[01])", resumed.stderr), resumed.stderr[-3000:]
    a, b = final_weights(tmp_path / "clean"), final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-6, atol=1e-7, msg=name)


def test_the_same_seed_trains_bit_identical_weights(tmp_path, shards_root):
    """Two runs of one seed through the real trainer (TM on 2 ranks: clips, a loader worker each, pseudo-fakes
    made on the device, deterministic kernels as the demo config sets them) end with the same bytes in every
    weight and buffer."""
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(epochs=2)])
    common = ["--specialist", "tm", "--stage", "1", "--shards", shards_root, f"curriculum={curriculum}",
              "data.batch_size=4", "data.steps_per_epoch=4", "data.workers=1", "data.pseudo_fakes=0.5"]
    for run in ("a", "b"):
        result = torchrun([*common, "--run-dir", tmp_path / run], timeout=600, log=tmp_path / f"{run}.log")
        assert result.returncode == 0, result.stderr[-3000:]
    a, b = (load_file(str(tmp_path / run / "tm" / "stage1-ffpp" / "best" / "model.safetensors")) for run in "ab")
    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []


# ------------------------------------------------------------------------------------------------ uneven shards


@pytest.mark.parametrize("sampling", ["partition", "resample"])
def test_uneven_shards_never_hang(tmp_path, shards_root, sampling):
    root = tmp_path / "shards"
    repack(shards_root / "ffpp" / "train", root / "ffpp" / "train", [40, 20, 12])
    repack(shards_root / "ffpp" / "val", root / "ffpp" / "val", [48])
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(epochs=2)])
    result = torchrun(["--specialist", "rr", "--stage", "1", "--shards", root, "--run-dir", tmp_path / "runs",
                       f"curriculum={curriculum}", "data.batch_size=8", "data.workers=1", f"data.sampling={sampling}"],
                      timeout=300, log=tmp_path / "train.log")
    assert result.returncode == 0, result.stderr[-3000:]
    done = json.loads((tmp_path / "runs" / "rr" / "stage1-ffpp" / "done.json").read_text())
    assert done["steps"] == 2 * 5  # 72 samples / (2 ranks x 8) -> 5 steps per epoch on every rank


def test_too_few_shards_to_partition_is_a_clear_error(tmp_path, shards_root):
    root = tmp_path / "shards"
    repack(shards_root / "ffpp" / "train", root / "ffpp" / "train", [40, 32])
    repack(shards_root / "ffpp" / "val", root / "ffpp" / "val", [48])
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [stage(epochs=1)])
    result = torchrun(["--specialist", "rr", "--stage", "1", "--shards", root, "--run-dir", tmp_path / "runs",
                       f"curriculum={curriculum}", "data.workers=2", "data.sampling=partition"], timeout=300)
    assert result.returncode != 0
    assert "data.sampling=partition needs at least ranks x workers = 2 x 2 = 4 shards, found 2" in result.stderr


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("args, message", [
    (["--specialist", "xx"], "--specialist: unknown specialist"),
    (["--specialist", "cm", "train.lrr=1"], "unknown key 'train.lrr'"),
    (["--specialist", "cm", "train.lr=fast"], "train.lr: expected float, got 'fast'"),
    (["--specialist", "cm", "--stage", "3"], "no stage 3"),
    (["--specialist", "cm", "train.precision=fp16"], "fp16 training needs a GPU"),
    (["--specialist", "cm", "train.zero_stage=3"], "train.zero_stage: expected 0, 1 or 2"),
    (["--specialist", "cm", "model.context_margin=0.25"], "model.context_margin is 0.25 but ffpp/train was cut"),
])
def test_config_errors_are_clear(tmp_path, shards_root, args, message):
    stage_args = [] if "--stage" in args else ["--stage", "1"]
    result = subprocess.run([sys.executable, "launcher/train.py", *args, *stage_args, "--shards", str(shards_root),
                             "--run-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr


def test_missing_shards_name_the_path(tmp_path):
    result = subprocess.run([sys.executable, "launcher/train.py", "--specialist", "cm", "--stage", "1", "--shards",
                             str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "runs")],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "no shard set matches 'ffpp/train'" in result.stderr and str(tmp_path / "nowhere") in result.stderr


def test_eval_reports_the_specialization_matrix_and_the_recorded_cross_dataset_matrix(cm_run, shards_root, corpus,
                                                                                        tmp_path):
    from interceptor.config import load_config
    from interceptor.evaluation import run_eval
    from interceptor.export import collect_models

    cfg = load_config("demo", [f"curriculum={cm_run.parent.parent / 'curriculum.yaml'}",
                                                        f"eval.families={corpus / 'synth_manifest.json'}"])
    collect_models(cm_run.parent, tmp_path / "models", ["cm"])
    metrics = run_eval(tmp_path / "models", shards_root, tmp_path / "report", cfg, splits=["ffpp/test"])
    matrix = metrics["specialization"]
    assert matrix["columns"][-1] == "all fakes" and "CM" in matrix["columns"]
    assert list(matrix["rows"]) == ["cm", "agent"]
    # Every FF++ fake carries CM: the CM cell is the all-fakes cell, and the split's AUC.
    assert matrix["rows"]["cm"]["CM"] == matrix["rows"]["cm"]["all fakes"]
    assert matrix["rows"]["cm"]["CM"]["auc"] == pytest.approx(metrics["splits"]["ffpp/test"]["cm"]["all"]["auc"])
    recorded = json.loads((cm_run / "cross_dataset.json").read_text())["rows"]
    assert metrics["cross_dataset"]["cm"]["stage 1"]["ffpp/test"] == recorded["stage 1"]["ffpp/test"]["video_mean_auc"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Specialization matrix" in report and "(specialization.png)" in report
    pure = metrics["specialization_pure"]
    assert pure["pure"] and "all fakes" not in pure["columns"] and set(pure["own_family"]) == {"cm"}
    assert "(specialization_pure.png)" in report and "own is highest" in report
    assert metrics["ffpp_protocol"] == {"ffpp/test": "standard+FaceShifter"}  # the demo opts FaceShifter in
    assert "FF++ protocol: standard+FaceShifter" in report
    assert (tmp_path / "report" / "specialization.png").read_bytes()[:4] == b"\x89PNG"
