"""The curriculum: stages from ``configs/curriculum.yaml`` turned into an ordered list of training runs.

Each stage, and each chunk of a chunked stage (DFDC), is one run with its own run directory under the
specialist's run root: ``stage1-ffpp/``, ``stage2-celebdf/``, ``stage4-dfdc/chunk-09/``... A run starts from
the best model of the run before it (``init: previous``), so the chain is FF++ -> Celeb-DF -> DFDC chunk by
chunk, in the configured chunk order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from interceptor.config import ConfigError, apply_overrides, from_dict, read_yaml, resolve_path, to_dict
from interceptor.schema import Config, CurriculumConfig, StageConfig
from interceptor.train.frame_samples import epoch_samples


@dataclass
class StageRun:
    """One training run: a stage (or one chunk of it) for one specialist."""

    specialist: str
    stage_id: int
    name: str  # e.g. "stage1-ffpp" or "stage4-dfdc chunk 09"
    run_dir: Path
    train_sets: list[str]
    val_sets: list[str]
    epochs: int
    init_from: Path | None = None  # an exported model directory to start from
    teacher: Path | None = None  # distillation: the exported model that teaches this run's student
    # A chunk after a stage's first: the checkpoints of the chunk before, whose weights, optimizer state and LR
    # schedule it continues, so that a chunked stage trains as one run (one warm-up, one cosine decay).
    continue_from: Path | None = None
    schedule_steps: int = 0  # optimizer steps of the LR schedule this run is part of (0: its own steps)


def load_curriculum(cfg: Config) -> CurriculumConfig:
    path = resolve_path(cfg.curriculum)
    curriculum = from_dict(CurriculumConfig, read_yaml(path), str(path))
    ids = [s.id for s in curriculum.stages]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: stage ids must be unique, got {ids}")
    return curriculum


def stage_config(cfg: Config, stage: StageConfig, specialist: str) -> Config:
    """The run config of a stage: its lr (times ``train.lr_scale``), loss and epochs, the student's model keys for
    a distillation stage, then the stage's own overrides (``spec:key=value`` ones for that specialist only)."""
    student = [f"model.{key}={json.dumps(value)}" for key, value in cfg.distill.model.items()] if stage.distill else []
    scoped = [(o.split("=", 1)[0].partition(":"), o) for o in stage.overrides]  # ((spec, ":", key), override)
    common = [o for (_, colon, _), o in scoped if not colon]
    own = [o.split(":", 1)[1] for (spec, colon, _), o in scoped if colon and spec == specialist]
    overrides = [f"train.lr={stage.lr * cfg.train.lr_scale}", f"train.loss={stage.loss}",
                 f"train.epochs={stage.epochs}", *student, *common, *own]
    return from_dict(Config, apply_overrides(to_dict(cfg), overrides, Config), f"stage {stage.id} ({stage.name})")


def stage_dir(stage: StageConfig) -> str:
    return f"stage{stage.id}-{stage.name}"


def plan_runs(cfg: Config, specialist: str, run_root: Path, stage_ids: list[int] | None = None) -> list[tuple[StageRun, Config]]:
    """The runs of the curriculum (or of the stages in ``stage_ids``) in order, each with its config."""
    curriculum = load_curriculum(cfg)
    known = {s.id: s for s in curriculum.stages}
    for sid in stage_ids or []:
        if sid not in known:
            raise ConfigError(f"{cfg.curriculum}: no stage {sid} (stages: {', '.join(map(str, known))})")
    runs: list[tuple[StageRun, Config]] = []
    previous_best: Path | None = None
    for stage in curriculum.stages:
        run_cfg = stage_config(cfg, stage, specialist)
        chunks = stage.chunks or [None]
        for chunk in chunks:
            if chunk is None:
                run_dir, name = run_root / stage_dir(stage), f"stage {stage.id} ({stage.name})"
                train = stage.train
            else:
                run_dir = run_root / stage_dir(stage) / f"chunk-{chunk:02d}"
                name = f"stage {stage.id} chunk {chunk:02d}"
                train = [p.replace("{chunk}", f"{chunk:02d}") for p in stage.train]
            init = None if (stage.init == "none" or stage.distill) and chunk in (None, chunks[0]) else previous_best
            later_chunk = chunk not in (None, chunks[0]) and not stage.distill
            run = StageRun(specialist=specialist, stage_id=stage.id, name=name, run_dir=run_dir, train_sets=train,
                           val_sets=[p.replace("{chunk}", f"{chunk:02d}") if chunk is not None else p
                                     for p in stage.val],
                           epochs=stage.epochs, init_from=init, teacher=previous_best if stage.distill else None,
                           continue_from=run_dir.parent / f"chunk-{chunks[chunks.index(chunk) - 1]:02d}" / "checkpoints"
                           if later_chunk else None)
            if stage_ids is None or stage.id in stage_ids:
                runs.append((run, run_cfg))
            if not stage.distill:
                previous_best = run_dir / "best"
    return runs


def run_steps(samples: int, epochs: int, cfg: Config, world: int) -> int:
    """Optimizer steps of a run over ``samples`` training samples: ``data.steps_per_epoch`` (or the samples over
    the global batch) x epochs; 0 without samples."""
    if samples == 0:
        return 0
    global_batch = cfg.data.batch_size * cfg.train.grad_accum * world
    return (cfg.data.steps_per_epoch or math.ceil(samples / global_batch)) * epochs


def share_schedules(runs: list[tuple[StageRun, Config]], shards_root: Path, world: int) -> None:
    """Give the runs of each chunked stage the stage's total steps as their LR schedule's length."""
    from interceptor.train.data import resolve_shard_sets

    chunked = [(run, cfg) for run, cfg in runs if run.run_dir.name.startswith("chunk-")]
    totals: dict[int, int] = {}
    for run, cfg in chunked:
        clips = sum(s.samples for s in resolve_shard_sets(shards_root, run.train_sets, f"{run.name}: train"))
        samples = epoch_samples(clips, run.specialist, cfg.data)
        totals[run.stage_id] = totals.get(run.stage_id, 0) + run_steps(samples, run.epochs, cfg, world)
    for run, _ in chunked:
        run.schedule_steps = totals[run.stage_id]


def check_init(run: StageRun) -> None:
    """A run that starts from (or distils) a previous model needs that model; say which run to train first."""
    for needed, what in ((run.init_from, "starts from"), (run.teacher, "is taught by")):
        if needed is not None and not (needed / "model.safetensors").is_file():
            raise ConfigError(f"{run.name} {what} the previous run's best model, but {needed} does not exist: "
                              "train the earlier stage first (or set init: none for this stage)")



def check_margins(cfg: Config, shard_sets) -> None:
    """The model must read the crops with the context margin they were cut with."""
    for shard_set in shard_sets:
        if abs(shard_set.margin - cfg.model.context_margin) > 1e-3:
            raise ConfigError(f"model.context_margin is {cfg.model.context_margin} but {shard_set.name} was cut with "
                              f"margin {shard_set.margin} (shards.margin): set them equal")


def validate_runs(runs: list[tuple[StageRun, Config]], shards_root: Path) -> None:
    """Fail fast, before any process group or engine exists: every run's shard sets exist and fit its config."""
    from interceptor.train.data import resolve_shard_sets

    for run, run_cfg in runs:
        check_margins(run_cfg, resolve_shard_sets(shards_root, run.train_sets, f"{run.name}: train")
                      + resolve_shard_sets(shards_root, run.val_sets, f"{run.name}: val"))
