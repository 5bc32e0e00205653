"""The curriculum: stages from ``configs/curriculum.yaml`` turned into an ordered list of training runs.

Each stage, and each chunk of a chunked stage (DFDC), is one run with its own run directory under the
specialist's run root: ``stage1-ffpp/``, ``stage2-celebdf/``, ``stage4-dfdc/chunk-09/``... A run starts from
the best model of the run before it (``init: previous``), so the chain is FF++ -> Celeb-DF -> DFDC chunk by
chunk, in the configured chunk order.

The plan is recorded in ``RUN/<spec>/plan.json`` (:func:`record_plan`) and read back by export
(:func:`read_plan`): editing the curriculum after training does not change what was trained or what is exported,
and training the same run root with another plan is an error listing the differences. It covers the stages trained
so far: ``--stage 1`` plans stage 1 alone, from FF++'s shards alone, and a later ``--stage 2`` extends the plan
with stage 2's runs, which start from the recorded stage-1 model. Recorded runs are never replanned from the
shards of stages a call does not train, nor rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from interceptor.config import ConfigError, apply_overrides, from_dict, read_yaml, resolve_path, to_dict
from interceptor.data.frame_samples import epoch_samples
from interceptor.models.export import WEIGHTS
from interceptor.schema import Config, CurriculumConfig, StageConfig
from interceptor.utils import atomic_write_json, read_json

PLAN = "plan.json"  # RUN/<spec>/plan.json: the runs planned so far, their chain of models and their best folders
PLAN_FORMAT = 1


@dataclass
class StageRun:
    """One training run: a stage (or one chunk of it) for one specialist, as the run plan records it."""

    specialist: str
    stage_id: int
    stage: str  # the stage's folder name, e.g. "stage4-dfdc"
    name: str  # e.g. "stage 1 (ffpp)" or "stage 4 chunk 09"
    run_dir: Path
    train_sets: list[str]
    val_sets: list[str]
    epochs: int
    distill: bool = False  # a distillation stage: its student leaves the chain of models
    trains: bool = True  # False: no training samples, the run is skipped and the chain goes on without it
    init_from: Path | None = None  # an exported model directory to start from
    teacher: Path | None = None  # distillation: the exported model that teaches this run's student
    # A chunk after a stage's first: the checkpoints of the chunk before, whose weights, optimizer state and LR
    # schedule it continues, so that a chunked stage trains as one run (one warm-up, one cosine decay).
    continue_from: Path | None = None
    # The last run of a stage: the model the stage ends with (its row of the cross-dataset matrix); else None.
    stage_model: Path | None = None
    schedule_steps: int = 0  # optimizer steps of the LR schedule this run is part of (0: its own steps); not planned

    @property
    def best(self) -> Path:
        """Where the run exports its best model on validation."""
        return self.run_dir / "best"


PLANNED_PATHS = ("run_dir", "init_from", "teacher", "continue_from", "stage_model")


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


def plan_runs(cfg: Config, specialist: str, run_root: Path, shards_root: Path, stage_ids: list[int] | None = None,
              recorded: list[StageRun] = ()) -> list[tuple[StageRun, Config]]:
    """The runs of the stages in ``stage_ids`` (all for None) planned from ``shards_root``'s manifests, with the
    ``recorded`` runs (:func:`recorded_runs`) of the other stages, in curriculum order, each with its config.

    A run starts from the best model of the last run before it that trains (``init: previous``); a later chunk of
    a chunked stage continues the stage's last chunk that trained; a distillation stage's student is taught by
    the chain's model and leaves the chain. Runs without training samples train nothing and pass the chain on.
    A planned stage that needs the chain's model while a stage before it is neither planned nor recorded is an
    error: that stage may train and change the model.
    """
    from interceptor.data.shard_sets import resolve_shard_sets

    curriculum = load_curriculum(cfg)
    known = [stage.id for stage in curriculum.stages]
    for sid in stage_ids or []:
        if sid not in known:
            raise ConfigError(f"{cfg.curriculum}: no stage {sid} (stages: {', '.join(map(str, known))})")
    runs: list[tuple[StageRun, Config]] = []
    chain: Path | None = None  # the best model of the last run that trained and continues the chain
    unplanned: StageConfig | None = None  # a stage since that chain's model that may train but is not planned yet

    def chain_model(needed_by: str) -> Path | None:
        """The chain's model, which ``needed_by`` follows; unknown (an error) past a stage not planned yet."""
        if unplanned is not None:
            raise ConfigError(f"{needed_by} follows the model of stage {unplanned.id} ({unplanned.name}), which "
                              f"{run_root / PLAN} does not cover yet: train stage {unplanned.id} first (--stage "
                              f"{unplanned.id}), or with it (--stage {unplanned.id},{stage.id})")
        return chain

    for stage in curriculum.stages:
        run_cfg = stage_config(cfg, stage, specialist)
        if stage_ids is not None and stage.id not in stage_ids:
            stage_runs = [run for run in recorded if run.stage_id == stage.id]
            runs += [(run, run_cfg) for run in stage_runs]
            if not stage.distill and not stage_runs:
                unplanned = stage
            elif not stage.distill and any(run.trains for run in stage_runs):
                chain, unplanned = stage_runs[-1].stage_model, None
            continue
        if stage.distill and chain_model(f"stage {stage.id} ({stage.name})") is None:
            raise ConfigError(f"{cfg.curriculum}: stage {stage.id} ({stage.name}) distils the model before it, but "
                              "no stage before it trains one")
        stage_last: StageRun | None = None  # the stage's last run that trained
        for chunk in stage.chunks or [None]:
            if chunk is None:
                run_dir, name, fill = run_root / stage_dir(stage), f"stage {stage.id} ({stage.name})", str
            else:
                run_dir = run_root / stage_dir(stage) / f"chunk-{chunk:02d}"
                name = f"stage {stage.id} chunk {chunk:02d}"
                fill = lambda p, c=chunk: p.replace("{chunk}", f"{c:02d}")  # noqa: E731
            train = [fill(p) for p in stage.train]
            samples = sum(s.samples for s in resolve_shard_sets(shards_root, train, f"{name}: train"))
            if stage_last is not None:
                init = stage_last.best
            else:
                init = None if stage.init == "none" or stage.distill else chain_model(name)
            run = StageRun(specialist=specialist, stage_id=stage.id, stage=stage_dir(stage), name=name,
                           run_dir=run_dir, train_sets=train, val_sets=[fill(p) for p in stage.val],
                           epochs=stage.epochs, distill=stage.distill, trains=samples > 0, init_from=init,
                           teacher=chain if stage.distill else None,
                           continue_from=stage_last.run_dir / "checkpoints" if stage_last is not None else None)
            if run.trains:
                stage_last = run
                if not stage.distill:
                    chain, unplanned = run.best, None
            runs.append((run, run_cfg))
        runs[-1][0].stage_model = (stage_last.best if stage.distill and stage_last is not None
                                   else chain_model(f"stage {stage.id} ({stage.name})"))
    return runs


def plan_record(cfg: Config, runs: list[StageRun], run_root: Path) -> dict:
    """The run plan as ``plan.json`` holds it: the curriculum it came from and the runs, paths relative to
    ``run_root`` (so that a moved run directory keeps its plan)."""
    def record(run: StageRun) -> dict:
        fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(run) if f.name != "schedule_steps"}
        return {**fields, **{key: str(fields[key].relative_to(run_root)) if fields[key] is not None else None
                             for key in PLANNED_PATHS}}

    return {"format": PLAN_FORMAT, "curriculum": to_dict(load_curriculum(cfg)), "runs": [record(r) for r in runs]}


def _leaves(value, key: str = "") -> dict[str, object]:
    """A JSON value's leaves by path (``runs[3].trains``); lists of scalars are leaves."""
    if isinstance(value, dict):
        return {k: v for name, item in value.items()
                for k, v in _leaves(item, f"{key}.{name}" if key else name).items()}
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{key}[{i}]").items()}
    return {key: value}


def plan_differences(recorded: dict, planned: dict) -> list[str]:
    """What ``planned`` changes in the ``recorded`` plan, as ``path: recorded -> planned`` lines: its curriculum and
    the runs both hold (by name); a run only one of them holds is no difference (a planned one extends the record)."""
    planned_names = {run["name"] for run in planned.get("runs", [])}
    names = [run["name"] for run in recorded.get("runs", []) if run["name"] in planned_names]

    def leaves(record: dict) -> dict[str, object]:
        runs = {run["name"]: run for run in record.get("runs", [])}
        return _leaves({"curriculum": record.get("curriculum"), "runs": {name: runs.get(name) for name in names}})

    old, new = leaves(recorded), leaves(planned)
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in dict.fromkeys([*old, *new])
            if old.get(key) != new.get(key)]


def select_stages(runs: list[tuple[StageRun, Config]], stage_ids: list[int] | None) -> list[tuple[StageRun, Config]]:
    """The runs of the stages in ``stage_ids`` (all of them for None)."""
    return [(run, run_cfg) for run, run_cfg in runs if stage_ids is None or run.stage_id in stage_ids]


def _read_record(path: Path) -> dict:
    try:
        record = read_json(path, "run plan")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if not isinstance(record, dict) or record.get("format") != PLAN_FORMAT:
        raise ConfigError(f"{path}: not a run plan of format {PLAN_FORMAT}")
    return record


def _check_unchanged(path: Path, run_root: Path, differences: list[str]) -> None:
    if differences:
        raise ConfigError(f"{path} records another plan than this curriculum and these shards give "
                          f"({'; '.join(differences[:5])}): the runs under {run_root} follow the recorded "
                          f"one. Train into a new --run-dir, or delete {run_root} to start it over")


def recorded_runs(cfg: Config, run_root: Path) -> list[StageRun]:
    """The runs ``run_root``'s plan records (none before the first training), for :func:`plan_runs`; a plan
    recorded from another curriculum is an error listing the differences."""
    path = run_root / PLAN
    if not path.is_file():
        return []
    record = _read_record(path)
    _check_unchanged(path, run_root, plan_differences({"curriculum": record.get("curriculum")},
                                                      {"curriculum": to_dict(load_curriculum(cfg))}))
    return _runs_of(record, path, run_root)


def record_plan(cfg: Config, runs: list[StageRun], run_root: Path, write: bool) -> Path:
    """Record ``runs`` in ``RUN/<spec>/plan.json`` (atomically, where ``write``): the runs it already records must be
    planned the same, or this stops with the differences (the runs trained there follow the recorded plan); runs
    of stages it does not cover yet extend it, in curriculum order. A recorded run is never dropped or rewritten."""
    path = run_root / PLAN
    planned = plan_record(cfg, runs, run_root)
    recorded = _read_record(path) if path.is_file() else None
    if recorded is not None:
        _check_unchanged(path, run_root, plan_differences(recorded, planned))
    order = {stage["id"]: position for position, stage in enumerate(planned["curriculum"]["stages"])}
    by_name = {run["name"]: run for run in [*(recorded or {"runs": []})["runs"], *planned["runs"]]}
    extended = {**planned, "runs": sorted(by_name.values(), key=lambda run: order[run["stage_id"]])}
    if write and extended != recorded:
        atomic_write_json(path, extended)
    return path


def read_plan(run_root: Path) -> list[StageRun]:
    """The runs of the plan training recorded under ``run_root`` (``plan.json``)."""
    path = run_root / PLAN
    if not path.is_file():
        raise ConfigError(f"{path}: no run plan (training writes it when it starts): train first")
    return _runs_of(_read_record(path), path, run_root)


def _runs_of(record: dict, path: Path, run_root: Path) -> list[StageRun]:
    try:
        return [StageRun(**{**run, **{key: run_root / run[key] if run[key] is not None else None
                                      for key in PLANNED_PATHS}}) for run in record["runs"]]
    except (KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not a run plan ({err})") from None


def run_steps(samples: int, epochs: int, cfg: Config, world: int) -> int:
    """Optimizer steps of a run over ``samples`` training samples: ``data.steps_per_epoch`` (or the samples over
    the global batch) x epochs; 0 without samples."""
    if samples == 0:
        return 0
    global_batch = cfg.data.batch_size * cfg.train.grad_accum * world
    return (cfg.data.steps_per_epoch or math.ceil(samples / global_batch)) * epochs


def share_schedules(runs: list[tuple[StageRun, Config]], shards_root: Path, world: int) -> None:
    """Give the runs of each chunked stage the stage's total steps as their LR schedule's length."""
    from interceptor.data.shard_sets import resolve_shard_sets

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
        if needed is not None and not (needed / WEIGHTS).is_file():
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
    from interceptor.data.shard_sets import resolve_shard_sets

    for run, run_cfg in runs:
        check_margins(run_cfg, resolve_shard_sets(shards_root, run.train_sets, f"{run.name}: train")
                      + resolve_shard_sets(shards_root, run.val_sets, f"{run.name}: val"))
