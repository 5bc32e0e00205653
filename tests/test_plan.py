"""The run plan (plan_runs, RUN/<spec>/plan.json) and what export and eval collect from it: no torchrun, no corpus."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from interceptor.config import ConfigError, load_config
from interceptor.export import collect_models
from interceptor.models.export import DESCRIPTION, WEIGHTS
from interceptor.models_dir import CROSS_DATASET, model_dirs
from interceptor.train.curriculum import PLAN, plan_runs, read_plan, record_plan, recorded_runs, select_stages

from conftest import REPO
from training import write_curriculum, write_manifest

# Stage 2 is chunked and its chunk 01 has no samples; stage 3 distils the chain's model chunk by chunk.
STAGES = [
    {"id": 1, "name": "ffpp", "train": ["ffpp/train"], "val": ["ffpp/val"], "epochs": 2, "lr": 1e-3, "init": "none"},
    {"id": 2, "name": "dfdc", "train": ["dfdc/chunk-{chunk}/train"], "val": ["dfdc/chunk-*/val"], "epochs": 1,
     "lr": 1e-4, "chunks": [3, 1, 2]},
    {"id": 3, "name": "distill", "train": ["dfdc/chunk-{chunk}/train"], "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3,
     "distill": True, "chunks": [3, 2]},
]
SAMPLES = {"ffpp/train": 8, "ffpp/val": 4, "dfdc/chunk-01/train": 0, "dfdc/chunk-02/train": 6,
           "dfdc/chunk-03/train": 6, "dfdc/chunk-01/val": 2, "dfdc/chunk-02/val": 2, "dfdc/chunk-03/val": 2}


def write_shard_set(directory: Path, samples: int) -> None:
    """A shard set with one (empty) tar listing ``samples`` samples: all that planning reads is the manifest."""
    directory.mkdir(parents=True)
    tarfile.open(directory / "shard-000-00000.tar", "w").close()
    write_manifest(directory, {"shard-000-00000.tar": samples} if samples else {}, samples // 2, samples - samples // 2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    for name, samples in SAMPLES.items():
        write_shard_set(root / name, samples)
    return root


@pytest.fixture(scope="module")
def ffpp_shards(tmp_path_factory) -> Path:
    """FF++'s shard sets alone: what a user has before building the other datasets."""
    root = tmp_path_factory.mktemp("ffpp_shards")
    for name, samples in SAMPLES.items():
        if name.startswith("ffpp/"):
            write_shard_set(root / name, samples)
    return root


def config(tmp_path: Path, stages: list[dict] = STAGES):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", stages, eval_sets=["ffpp/val"])
    return load_config(REPO / "configs" / "demo.yaml", [f"curriculum={curriculum}"])


def test_the_chain_passes_over_runs_without_samples_and_students_leave_it(tmp_path, shards):
    root = tmp_path / "cm"
    runs = {run.name: run for run, _ in plan_runs(config(tmp_path), "cm", root, shards)}
    stage1, c3, c1, c2 = (runs[n] for n in ("stage 1 (ffpp)", "stage 2 chunk 03", "stage 2 chunk 01",
                                            "stage 2 chunk 02"))
    assert list(runs) == ["stage 1 (ffpp)", "stage 2 chunk 03", "stage 2 chunk 01", "stage 2 chunk 02",
                          "stage 3 chunk 03", "stage 3 chunk 02"]
    assert stage1.init_from is None and stage1.stage_model == root / "stage1-ffpp" / "best"
    assert (c3.init_from, c3.continue_from) == (stage1.best, None)
    assert not c1.trains and c3.trains and c2.trains
    # Chunk 02 continues chunk 03, the stage's last chunk that trained, not chunk 01 that had no samples.
    assert (c2.init_from, c2.continue_from) == (c3.best, c3.run_dir / "checkpoints")
    assert c2.stage_model == c2.best and c1.stage_model is None and c3.stage_model is None


def test_later_chunks_of_a_distilled_stage_continue_the_student_not_the_teacher(tmp_path, shards):
    """The teacher's weights do not fit the student: its later chunks start from the student's chunk before."""
    root = tmp_path / "cm"
    runs = [run for run, _ in plan_runs(config(tmp_path), "cm", root, shards)]
    teacher = root / "stage2-dfdc" / "chunk-02" / "best"
    first, second = runs[-2:]
    assert first.teacher == second.teacher == teacher
    assert (first.init_from, first.continue_from) == (None, None)
    assert (second.init_from, second.continue_from) == (first.best, first.run_dir / "checkpoints")
    assert second.stage_model == second.best  # the stage's model is its student


def test_stage_selection_names_unknown_stages(tmp_path, shards):
    cfg = config(tmp_path)
    runs = plan_runs(cfg, "cm", tmp_path / "cm", shards)
    assert [run.stage_id for run, _ in select_stages(runs, [2])] == [2, 2, 2]
    with pytest.raises(ConfigError, match=r"no stage 4 \(stages: 1, 2, 3\)"):
        plan_runs(cfg, "cm", tmp_path / "cm", shards, [4])


def test_a_distillation_stage_without_a_model_before_it_is_an_error(tmp_path, shards):
    with pytest.raises(ConfigError, match="stage 3 .distill. distils the model before it"):
        plan_runs(config(tmp_path, STAGES[2:]), "cm", tmp_path / "cm", shards)


def test_the_plan_is_written_once_and_read_back_where_the_run_root_moved(tmp_path, shards):
    cfg, root = config(tmp_path), tmp_path / "runs" / "cm"
    runs = [run for run, _ in plan_runs(cfg, "cm", root, shards)]
    assert not record_plan(cfg, runs, root, write=False).exists()  # another rank than the first writes nothing
    path = record_plan(cfg, runs, root, write=True)
    recorded = path.read_text()
    assert json.loads(recorded)["runs"][3]["init_from"] == "stage2-dfdc/chunk-03/best"  # relative to the root
    assert read_plan(root) == runs
    record_plan(cfg, runs, root, write=True)  # the same plan again: reused as it is
    assert path.read_text() == recorded
    moved = tmp_path / "elsewhere" / "cm"
    moved.parent.mkdir()
    root.rename(moved)
    assert [run.init_from for run in read_plan(moved)] == [
        None if run.init_from is None else moved / run.init_from.relative_to(root) for run in runs]


def test_a_changed_curriculum_against_a_recorded_plan_is_an_error_naming_the_change(tmp_path, shards):
    root = tmp_path / "cm"
    cfg = config(tmp_path)
    record_plan(cfg, [run for run, _ in plan_runs(cfg, "cm", root, shards)], root, write=True)
    recorded = (root / PLAN).read_text()
    edited = config(tmp_path, [STAGES[0], {**STAGES[1], "epochs": 3}, STAGES[2]])
    with pytest.raises(ConfigError, match=r"plan\.json records another plan.*stages\[1\]\.epochs: 1 -> 3"):
        record_plan(edited, [run for run, _ in plan_runs(edited, "cm", root, shards)], root, write=True)
    assert (root / PLAN).read_text() == recorded


def plan_stages(cfg, root: Path, shards: Path, stage_ids: list[int] | None) -> list:
    """What a training call with ``--stage`` does before it trains: extend the recorded plan with its stages."""
    plan = [run for run, _ in plan_runs(cfg, "cm", root, shards, stage_ids, recorded_runs(cfg, root))]
    record_plan(cfg, plan, root, write=True)
    return plan


def test_one_stage_plans_from_its_own_shards_and_later_stages_extend_the_plan(tmp_path, shards, ffpp_shards):
    """--stage 1 with FF++'s shards alone; --stage 2 later, with DFDC's alone, starts from the recorded stage-1
    model; the distillation stage last, with all of them. Each call keeps the runs recorded before as they were."""
    cfg, root = config(tmp_path), tmp_path / "cm"
    stage1, = plan_stages(cfg, root, ffpp_shards, [1])
    recorded = json.loads((root / PLAN).read_text())
    assert [run["name"] for run in recorded["runs"]] == ["stage 1 (ffpp)"] and read_plan(root) == [stage1]

    dfdc_only = tmp_path / "dfdc_shards"
    dfdc_only.mkdir()
    (dfdc_only / "dfdc").symlink_to(shards / "dfdc", target_is_directory=True)
    plan = plan_stages(cfg, root, dfdc_only, [2])
    assert [run.name for run in plan] == ["stage 1 (ffpp)", "stage 2 chunk 03", "stage 2 chunk 01", "stage 2 chunk 02"]
    assert plan[0] == stage1 and plan[1].init_from == stage1.best
    extended = json.loads((root / PLAN).read_text())
    assert extended["runs"][0] == recorded["runs"][0]  # kept as it was recorded

    full = plan_stages(cfg, root, shards, [3])
    assert read_plan(root) == full == [run for run, _ in plan_runs(cfg, "cm", tmp_path / "cm", shards)]
    assert full[-2].teacher == plan[-1].best


def test_later_calls_may_cover_the_stages_in_any_order_and_the_plan_keeps_the_curriculum_order(tmp_path, shards):
    cfg, root = config(tmp_path, [{**STAGES[1], "init": "none"}, STAGES[0]]), tmp_path / "cm"
    plan_stages(cfg, root, shards, [1])  # the second stage first
    plan_stages(cfg, root, shards, [2])
    assert [run.stage_id for run in read_plan(root)] == [2, 2, 2, 1]
    assert plan_stages(cfg, root, shards, None) == read_plan(root)  # every stage: the same plan, unchanged


def test_a_stage_that_needs_the_model_of_a_stage_not_planned_yet_says_which_to_train_first(tmp_path, shards):
    root = tmp_path / "cm"
    with pytest.raises(ConfigError, match=r"stage 2 chunk 03 follows the model of stage 1 \(ffpp\), which "
                                          rf"{root / PLAN} does not cover yet: train stage 1 first \(--stage 1\), "
                                          r"or with it \(--stage 1,2\)"):
        plan_stages(config(tmp_path), root, shards, [2])
    assert not root.exists()
    plan_stages(config(tmp_path), root, shards, [1, 2])  # together: fine


def test_a_recorded_stage_trained_again_from_changed_shards_is_an_error_naming_the_run(tmp_path, shards):
    cfg, root = config(tmp_path), tmp_path / "cm"
    plan_stages(cfg, root, shards, [1, 2])
    recorded = (root / PLAN).read_text()
    changed = tmp_path / "changed"
    for name, samples in {**SAMPLES, "dfdc/chunk-01/train": 4}.items():
        write_shard_set(changed / name, samples)
    plan_stages(cfg, root, changed, [3])  # stage 2 not trained again: its recorded runs stand
    with pytest.raises(ConfigError, match=r"records another plan.*runs\.stage 2 chunk 01\.trains: False -> True"):
        plan_stages(cfg, root, changed, [2])
    assert [run["name"] for run in json.loads((root / PLAN).read_text())["runs"]][:4] == [
        run["name"] for run in json.loads(recorded)["runs"]]


def test_a_changed_curriculum_stops_a_later_stage_before_it_plans(tmp_path, shards):
    root = tmp_path / "cm"
    plan_stages(config(tmp_path), root, shards, [1])
    recorded = (root / PLAN).read_text()
    edited = config(tmp_path, [{**STAGES[0], "lr": 1e-2}, *STAGES[1:]])
    with pytest.raises(ConfigError, match=r"plan\.json records another plan.*stages\[0\]\.lr: 0\.001 -> 0\.01"):
        plan_stages(edited, root, shards, [2])
    assert (root / PLAN).read_text() == recorded


def test_recording_a_plan_never_drops_a_run_the_file_holds(tmp_path, shards):
    """Two calls extending one plan: the one that records last keeps the other's stages."""
    cfg, root = config(tmp_path), tmp_path / "cm"
    full = plan_stages(cfg, root, shards, [1, 2, 3])
    record_plan(cfg, full[:1], root, write=True)
    assert read_plan(root) == full


def test_no_plan_is_an_error_naming_the_file(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path / 'cm' / PLAN}: no run plan .*train first"):
        read_plan(tmp_path / "cm")
    (tmp_path / "cm").mkdir()
    (tmp_path / "cm" / PLAN).write_text("{not json")
    with pytest.raises(ConfigError, match="malformed run plan"):
        read_plan(tmp_path / "cm")


# ------------------------------------------------------------------------------------------------ export and eval


def write_best(run_dir: Path) -> None:
    """A stand-in export in ``run_dir/best`` whose files name the run, to tell which run export copied."""
    (run_dir / "best").mkdir(parents=True)
    for name in (WEIGHTS, DESCRIPTION):
        (run_dir / "best" / name).write_text(str(run_dir))


def exported_from(directory: Path) -> str:
    assert (directory / DESCRIPTION).read_text() == (directory / WEIGHTS).read_text()
    return (directory / WEIGHTS).read_text()


def test_export_collects_the_planned_best_models_even_after_the_curriculum_changed(tmp_path, shards):
    runs_root = tmp_path / "runs"
    cfg = config(tmp_path)
    plan = [run for run, _ in plan_runs(cfg, "cm", runs_root / "cm", shards)]
    record_plan(cfg, plan, runs_root / "cm", write=True)
    stage1, chunk3, _, chunk2, student3, _ = plan
    for run in (stage1, chunk3, chunk2, student3):
        write_best(run.run_dir)
    (runs_root / "cm" / CROSS_DATASET).write_text('{"columns": [], "rows": {}}')
    config(tmp_path, STAGES[:1])  # the curriculum file edited after training: export follows the plan

    collected = collect_models(runs_root, tmp_path / "models", ["ll", "cm"])
    assert collected == {"cm": {"model": str(tmp_path / "models" / "cm_model"),
                                "stages": ["stage1-ffpp", "stage2-dfdc"], "student": True}}
    model = tmp_path / "models" / "cm_model"
    assert exported_from(model) == str(chunk2.run_dir)  # the last trained chunk of the last chain stage
    assert exported_from(model / "stages" / "stage1-ffpp") == str(stage1.run_dir)
    assert exported_from(model / "stages" / "stage2-dfdc") == str(chunk2.run_dir)
    assert exported_from(tmp_path / "models" / "cm_model_student") == str(student3.run_dir)  # a partial stage
    assert (model / CROSS_DATASET).is_file()
    assert model_dirs(tmp_path / "models") == {"cm": model}
    assert model_dirs(tmp_path / "models", students=True) == {"cm": tmp_path / "models" / "cm_model_student"}


def test_export_of_a_trained_specialist_without_a_plan_says_train_first(tmp_path, capsys):
    from interceptor.cli import main

    (tmp_path / "runs" / "tm" / "stage1-ffpp" / "best").mkdir(parents=True)
    assert main(["export", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "models")]) == 2
    assert f"{tmp_path / 'runs' / 'tm' / PLAN}: no run plan" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_eval_collects_every_exported_specialist_in_canonical_order_and_their_matrices(tmp_path):
    from interceptor.evaluation import recorded_cross_dataset

    models = tmp_path / "models"
    for name in ("tm_model", "ll_model", "ll_model_student", "rr_model"):
        (models / name).mkdir(parents=True)
        if name != "rr_model":  # rr: a folder without weights is not a model
            (models / name / WEIGHTS).write_bytes(b"")
    row = {"ffpp/test": {"video_mean_auc": 0.75}}
    (models / "tm_model" / CROSS_DATASET).write_text(json.dumps({"columns": ["ffpp/test"], "rows": {"stage 1": row}}))
    assert list(model_dirs(models).items()) == [("ll", models / "ll_model"), ("tm", models / "tm_model")]
    assert model_dirs(models, students=True) == {"ll": models / "ll_model_student"}
    assert recorded_cross_dataset(models) == {"tm": {"stage 1": {"ffpp/test": 0.75}}}
