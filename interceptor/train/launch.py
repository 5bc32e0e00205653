"""``torchrun -m interceptor.train.launch``: train specialists through the curriculum, or through chosen stages.

    torchrun --nproc_per_node N -m interceptor.train.launch --specialist cm [--stage 1] --config demo \
        --shards SHARDS --run-dir RUN [--resume auto] [KEY=VALUE ...]

``launcher/train.py`` (a script, for the Slurm scripts) and ``interceptor train`` run the same entry point.

One specialist trains data-parallel on all the processes torchrun started. ``--specialist all`` (every
registered specialist: the built-in six and the config's ``specialist_modules``) or a comma list trains several
at once: the processes torchrun was given (or ``parallel.devices``) are split between
them, each specialist in its own separate torchrun job (see ``interceptor/train/parallel.py``);
``SPEC:KEY=VALUE`` overrides apply to one specialist only.

Runs go to ``RUN/<specialist>/stage<id>-<name>[/chunk-KK]``. Finished runs (``done.json``) are skipped and an
interrupted one resumes from its latest checkpoint, so rerunning the same command continues where it stopped.
The run plan (the runs of the stages trained so far and the models between them) is recorded in
``RUN/<specialist>/plan.json``: a call needs the shards of the stages it trains alone, and extends the plan with
them; the runs it already records must plan the same (see ``curriculum.py``).
On SIGTERM/SIGINT/SIGUSR1 every rank checkpoints, ``RUN/<specialist>/preempted.json`` is written and the
processes exit with code 75.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from interceptor.config import ConfigError, load_config
from interceptor.models.registry import SPECIALISTS, check_specialists
from interceptor.utils import atomic_write_json, setup_logging

if TYPE_CHECKING:
    from interceptor.train.trainer import PreemptionFlag

log = logging.getLogger("interceptor.train")


def parse_specialists(value: str) -> list[str]:
    names = list(SPECIALISTS) if value.lower() == "all" else [v.strip().lower() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in SPECIALISTS]
    if unknown or not names:
        raise ConfigError(f"--specialist: unknown specialist(s) {unknown or value!r} "
                          f"(choose from {', '.join(SPECIALISTS)}, a comma list, or all)")
    return list(dict.fromkeys(names))


def override_target(item: str) -> str | None:
    """The specialist a ``SPEC:KEY=VALUE`` override is for; None for a ``KEY=VALUE`` that applies to all."""
    head, sep, _ = item.partition(":")
    return head if sep and "=" not in head else None


def split_overrides(overrides: list[str], specialists: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``KEY=VALUE`` applies to every specialist, ``SPEC:KEY=VALUE`` to that one alone: (shared, per specialist)."""
    shared, specific = [], {s: [] for s in specialists}
    for item in overrides:
        head = override_target(item)
        if head is None:
            shared.append(item)
            continue
        if head.lower() not in specific:
            raise ConfigError(f"override '{item}': {head!r} is not one of the specialists being trained")
        specific[head.lower()].append(item.partition(":")[2])
    return shared, specific


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interceptor train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specialist", required=True,
                        help=f"one of {', '.join(SPECIALISTS)} (and the config's specialist_modules' own), "
                             "a comma list, or all")
    parser.add_argument("--stage", default=None, help="stage id(s) to run, comma separated (default: all, in order); "
                                                      "only their shard sets are needed")
    parser.add_argument("--config", default=None, help="a packaged config's name (demo, default) or a YAML path "
                                                       "(default: demo)")
    parser.add_argument("--shards", required=True, type=Path, help="root holding ffpp/, celebdf/, dfdc/ shard sets")
    parser.add_argument("--run-dir", required=True, type=Path, help="run root; runs go to RUN/<specialist>/...")
    parser.add_argument("--resume", choices=("auto", "never"), default="auto",
                        help="auto: continue from the latest checkpoint and skip finished runs (default)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    return parser


def train_specialist(args: argparse.Namespace, specialist: str) -> int:
    """Train one specialist on the processes of this torchrun job (collective: every rank runs it)."""
    from interceptor.data.shard_sets import DataError
    from interceptor.train.curriculum import plan_runs, record_plan, recorded_runs, select_stages, validate_runs

    # Everything that can be checked without a process group is checked first: config errors come in seconds.
    cfg = load_config(args.config, args.overrides, check=check_specialists)
    root = args.run_dir / specialist
    try:
        stage_ids = [int(s) for s in args.stage.split(",")] if args.stage else None
    except ValueError:
        raise ConfigError(f"--stage {args.stage}: expected stage ids, comma separated (e.g. 1,2)") from None
    try:
        plan = plan_runs(cfg, specialist, root, args.shards, stage_ids, recorded_runs(cfg, root))
        runs = select_stages(plan, stage_ids)
        validate_runs(runs, args.shards)
    except DataError as err:
        print(f"data error: {err}", file=sys.stderr)
        return 2
    check_engine_config(cfg)
    record_plan(cfg, [run for run, _ in plan], root, write=int(os.environ.get("RANK", "0")) == 0)

    from interceptor.distributed import shutdown_distributed
    from interceptor.train.trainer import PreemptionFlag

    # From here on a stop signal is remembered, not fatal (start-up and loading can take minutes): the next step
    # boundary checkpoints, or the next run does not start.
    with PreemptionFlag() as preemption:
        code = train_runs(args, specialist, runs, plan, preemption)
    shutdown_distributed()
    return code


def train_runs(args: argparse.Namespace, specialist: str, runs: list, plan: list, preemption: PreemptionFlag) -> int:
    """Train the ``runs`` of the ``plan`` in order on this torchrun job's process group, then complete the
    cross-dataset rows of the plan's stages on the splits built since; returns the exit code."""
    from interceptor.models.export import WEIGHTS
    from interceptor.train.checkpoint import CheckpointError
    from interceptor.train.crossdata import update_cross_dataset
    from interceptor.train.curriculum import check_init, share_schedules
    from interceptor.data.shard_sets import DataError
    from interceptor.distributed import any_rank, barrier, init_distributed
    from interceptor.train.runlock import RunLocked
    from interceptor.train.trainer import EXIT_PREEMPTED, Diverged, Preempted, Trainer

    root = args.run_dir / specialist
    dist = init_distributed()
    if not dist.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    marker = root / "preempted.json"
    if dist.is_main:
        marker.unlink(missing_ok=True)
    barrier()
    share_schedules(runs, args.shards, dist.world)

    def update_row(run, run_cfg) -> None:
        """The cross-dataset row of the stage that ``run`` ends, once the stage's model exists."""
        if run.stage_model is not None and (run.stage_model / WEIGHTS).is_file():
            update_cross_dataset(run_cfg, run.stage_id, run.stage_model, args.shards, root, dist)

    try:
        for run, run_cfg in runs:
            if any_rank(preemption.received is not None, dist.device):
                raise Preempted(f"{specialist}: stopped by signal before {run.name}; nothing new to checkpoint")
            done = run.run_dir / "done.json"
            if args.resume == "auto" and done.is_file():
                log.info("%s: %s already finished, skipping", specialist, run.name)
            elif not run.trains:
                if dist.is_main:
                    log.warning("%s: %s has no training samples (%s), skipping it", specialist, run.name,
                                ", ".join(run.train_sets))
                    atomic_write_json(done, {"skipped": "no training samples"})
            else:
                check_init(run)
                log.info("%s: %s starting (%s)", specialist, run.name, run.run_dir)
                summary = Trainer(run_cfg, run, args.shards, dist, resume=args.resume == "auto").fit(preemption)
                log.info("%s: %s finished: best %s %.4f at step %d", specialist, run.name, summary["metric"],
                         summary["best_metric"], summary["best_step"])
            update_row(run, run_cfg)
        for run, run_cfg in plan:  # the stages earlier calls trained, on the datasets built since
            if any_rank(preemption.received is not None, dist.device):
                raise Preempted(f"{specialist}: stopped by signal before the cross-dataset rows were completed")
            update_row(run, run_cfg)
    except Preempted as stop:
        log.warning("%s", stop)
        if dist.is_main:
            atomic_write_json(marker, {"specialist": specialist, "message": str(stop), "exit_code": EXIT_PREEMPTED})
        barrier()  # no rank exits before the marker exists: srun --kill-on-bad-exit ends the step at the first exit
        return EXIT_PREEMPTED
    except (DataError, CheckpointError, RunLocked) as err:
        log.error("%s", err)
        return 2
    except Diverged as err:
        log.error("%s", err)
        return 1
    return 0


def check_engine_config(cfg) -> None:
    """Precision and DeepSpeed settings, checked before DeepSpeed starts."""
    import torch

    from interceptor.train.engine import deepspeed_config, resolve_precision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    deepspeed_config(cfg, resolve_precision(cfg.train.precision, device))


def train_parallel(args: argparse.Namespace, specialists: list[str]) -> int:
    """Supervise one torchrun job per specialist on this machine's devices."""
    import torch

    from interceptor.train.parallel import run_parallel

    shared, specific = split_overrides(args.overrides, specialists)
    cfg = load_config(args.config, shared, check=check_specialists)
    under_torchrun = "LOCAL_WORLD_SIZE" in os.environ
    if under_torchrun:
        if int(os.environ.get("WORLD_SIZE", "1")) != int(os.environ["LOCAL_WORLD_SIZE"]):  # more than this node
            raise ConfigError("--specialist with several specialists runs on one node; on a cluster use "
                              "slurm/all_specialists.sh (one job per specialist)")
        if int(os.environ.get("LOCAL_RANK", "0")) != 0:
            return 0  # rank 0 supervises the separate per-specialist jobs on this node's devices
        devices = int(os.environ["LOCAL_WORLD_SIZE"])
    else:
        devices = cfg.parallel.devices or torch.cuda.device_count() or 1
    group = cfg.parallel.group_size or max(1, devices // len(specialists))
    launcher_args = ["--shards", str(args.shards), "--run-dir", str(args.run_dir), "--resume", args.resume]
    if args.config:
        launcher_args += ["--config", str(args.config)]
    if args.stage:
        launcher_args += ["--stage", args.stage]
    overrides = {spec: shared + specific[spec] for spec in specialists}
    return run_parallel(specialists, devices, group, launcher_args, overrides, args.run_dir)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    try:
        # Loading the config imports its specialist_modules, so their specialists are known to --specialist.
        load_config(args.config, [item for item in args.overrides if override_target(item) is None],
                    check=check_specialists)
        specialists = parse_specialists(args.specialist)
        if len(specialists) > 1:
            return train_parallel(args, specialists)
        return train_specialist(args, specialists[0])
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
