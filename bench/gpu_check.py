#!/usr/bin/env python3
"""The production training step on a GPU, per specialist, and ``predict`` on the real DFDC sample there.

    python bench/gpu_check.py [--specialist all] [--steps 10] [--batch 32] [--size 380] [--backbone efficientnet_b4]
        [--videos DIR] [--config default] [KEY=VALUE ...]

For each specialist, in one process group of one on the GPU (``init_distributed``: NCCL):

- the trainer's own step (``Trainer.train_step``: the DeepSpeed engine, FP16 with dynamic loss scaling,
  channels_last inputs, the device augmentation and pseudo-fakes of the training loader's batches) on in-memory
  batches of random pixels at ``--size`` px and ``--batch`` samples, with
  DeepSpeed's loss-scale window shortened to 2 steps so that the scale must move within the run (up after clean
  steps, down on an overflow); it fails when the scale never changed, when a loss was non-finite (a skipped
  micro-batch) or when a parameter is non-finite afterwards;
- samples/s per GPU over ``--steps`` steps after two warm-up steps, against 331 img/s (NVIDIA's
  EfficientNet-B4 at 380 px with AMP on one A100) and 700 img/s (about an H100);
- a checkpoint saved through the trainer's ``CheckpointManager``, loaded into a fresh trainer on the same GPU
  (weights and loss scale equal), which then trains a step with a finite loss.

Then every specialist is exported with random weights and ``interceptor predict --device cuda`` is timed on the
videos of ``--videos`` (the real DFDC sample). Exits non-zero when a check fails. ``bench/gpu_check.sh`` installs
what a GPU image lacks and runs this.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config, resolve_path, to_dict  # noqa: E402
from interceptor.models import build_model, export_model  # noqa: E402
from interceptor.models.registry import check_specialists  # noqa: E402
from interceptor.schema import Config  # noqa: E402
from interceptor.train.curriculum import StageRun  # noqa: E402
from interceptor.train.engine import loss_scale  # noqa: E402
from interceptor.train.launch import parse_specialists  # noqa: E402
from interceptor.train.trainer import Trainer, new_window  # noqa: E402
from loader import GPU_RATES  # noqa: E402
from train_step import describe, input_spec, seconds, start, synthetic_batches  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class CheckFailed(RuntimeError):
    """A GPU check that did not hold; the message says which and by how much."""


def short_scale_window(cfg: Config, directory: Path) -> Config:
    """``cfg`` with a copy of its DeepSpeed config whose fp16 loss-scale window is 2 steps."""
    ds = json.loads(resolve_path(cfg.train.deepspeed_config).read_text())
    ds["fp16"] = {**ds.get("fp16", {}), "loss_scale_window": 2}
    path = directory / "deepspeed.json"
    path.write_text(json.dumps(ds))
    return replace(cfg, train=replace(cfg.train, deepspeed_config=str(path)))


class Steps:
    """``Trainer.train_step`` over in-memory batches, as ``bench/train_step.py``'s ``TrainerLoop``."""

    def __init__(self, trainer: Trainer, batches: list[dict]):
        self.trainer, self.batches, self.window = trainer, itertools.cycle(batches), new_window()
        self.scales = [loss_scale(trainer.engine)]  # the FP16 loss scale before the first step and after each

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.window = self.trainer.train_step(self.batches, self.window)
            self.scales.append(loss_scale(self.trainer.engine))


def new_trainer(cfg: Config, specialist: str, run_dir: Path, dist) -> Trainer:
    run = StageRun(specialist, 0, "gpu-check", f"gpu-check-{specialist}", run_dir, train_sets=[], val_sets=[],
                   epochs=1)
    trainer = Trainer(cfg, run, run_dir, dist, resume=False)
    trainer.prepare()
    return trainer


def finite_parameters(trainer: Trainer) -> bool:
    return all(torch.isfinite(p).all() for p in trainer.engine.module.parameters())


def check_specialist(cfg: Config, specialist: str, dist, steps: int) -> dict:
    """Train, time, checkpoint and resume one specialist; the figures, or :class:`CheckFailed`."""
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{specialist}-") as tmp:
        run_dir = Path(tmp)
        cfg = short_scale_window(cfg, run_dir)
        batches = synthetic_batches(cfg, input_spec(cfg, specialist), 4, specialist)
        trainer = new_trainer(cfg, specialist, run_dir, dist)
        loop = Steps(trainer, batches)
        seconds(loop, 2, dist.device)  # warm-up: cuDNN's algorithm choice, DeepSpeed's first step
        elapsed = seconds(loop, steps, dist.device)  # includes reading the loss scale after each step
        scales = loop.scales
        rate = steps * cfg.data.batch_size / elapsed
        if trainer.counters["nonfinite_skipped"]:
            raise CheckFailed(f"{specialist}: {trainer.counters['nonfinite_skipped']} micro-batches had a non-finite "
                              "loss")
        if not finite_parameters(trainer):
            raise CheckFailed(f"{specialist}: non-finite parameters after {steps + 2} steps")
        if len(set(scales)) == 1:
            raise CheckFailed(f"{specialist}: the FP16 loss scale stayed at {scales[0]:g} over {steps + 2} steps")
        saved = trainer.ckpt.save(trainer.engine, "check", trainer._client_state())
        reference = {n: p.detach().clone() for n, p in trainer.engine.module.named_parameters()}
        scale_saved = loss_scale(trainer.engine)
        del trainer, loop
        torch.cuda.empty_cache()
        resumed = new_trainer(cfg, specialist, run_dir, dist)
        resumed.ckpt.load(resumed.engine, saved.name)
        changed = [n for n, p in resumed.engine.module.named_parameters() if not torch.equal(p, reference[n])]
        if changed or loss_scale(resumed.engine) != scale_saved:
            raise CheckFailed(f"{specialist}: the resumed checkpoint differs ({len(changed)} parameters, loss "
                              f"scale {loss_scale(resumed.engine):g} vs {scale_saved:g})")
        after = Steps(resumed, batches)
        after.run(1)
        if resumed.counters["nonfinite_skipped"] or not finite_parameters(resumed):
            raise CheckFailed(f"{specialist}: the step after resuming was non-finite")
        return {"rate": rate, "scales": scales, "checkpoint_mb": sum(
            f.stat().st_size for f in saved.rglob("*") if f.is_file()) / 2**20}


def time_predict(cfg_path: str, model_cfg, videos: list[Path], specialists: list[str],
                 detector_weights: Path | None) -> float:
    """Seconds of ``interceptor predict --device cuda`` over ``videos`` with randomly initialised exports;
    ``detector_weights``: the face detector's (``predict.detector.weights``), else its default place."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-models-") as models:
        for specialist in specialists:
            torch.manual_seed(0)
            export_model(build_model(specialist, **to_dict(model_cfg)), Path(models) / f"{specialist}_model")
        command = [sys.executable, "-m", "interceptor", "predict", "--device", "cuda", "--models", models,
                   "--config", cfg_path, "--set", "model.pretrained=false", *map(str, videos)]
        if detector_weights:
            command += ["--set", f"predict.detector.weights={detector_weights}"]
        start_time = time.perf_counter()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        elapsed = time.perf_counter() - start_time
        print(result.stdout.strip())
        if result.returncode != 0:
            raise CheckFailed(f"predict failed (exit {result.returncode}): {result.stderr[-2000:]}")
        return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specialist", default="all", help="a specialist, a comma list, or all (default)")
    parser.add_argument("--config", default="default", help="a packaged config's name or a YAML path")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per specialist, after 2 warm-up steps")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=380)
    parser.add_argument("--backbone", default="efficientnet_b4")
    parser.add_argument("--videos", type=Path, help="folder of videos for predict (searched for *.mp4)")
    parser.add_argument("--detector-weights", type=Path,
                        help="predict's face detector's weights, the facenet-pytorch wheel (default: in the venv)")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, [f"model.backbone={args.backbone}", f"model.image_size={args.size}",
                                    f"data.batch_size={args.batch}", "model.pretrained=false",
                                    "train.precision=fp16", "train.channels_last=true", *overrides],
                      check=check_specialists)
    dist = start("cuda")
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "none"
    print(f"{describe(dist)}; process group: {backend}; {args.backbone} at {args.size} px, batch {args.batch}, "
          f"fp16, channels_last; {args.steps} timed steps", flush=True)
    failures = [] if backend == "nccl" else [f"the process group's backend is {backend}, not nccl"]
    specialists = parse_specialists(args.specialist)
    print(f"| specialist | samples/s per GPU | ÷ {GPU_RATES[0]} (A100) | ÷ {GPU_RATES[1]} (H100) | loss scale "
          "before the first step and after each | checkpoint MB, resumed |\n| --- | ---: | ---: | ---: | --- | ---: |", flush=True)
    for specialist in specialists:
        try:
            r = check_specialist(cfg, specialist, dist, args.steps)
        except CheckFailed as err:
            failures.append(str(err))
            print(f"| {specialist.upper()} | FAILED: {err} | | | | |", flush=True)
            continue
        print(f"| {specialist.upper()} | {r['rate']:.0f} | {r['rate'] / GPU_RATES[0]:.2f} | "
              f"{r['rate'] / GPU_RATES[1]:.2f} | {' → '.join(f'{v:g}' for v in r['scales'])} | "
              f"{r['checkpoint_mb']:.0f}, ok |", flush=True)
    if args.videos:
        videos = sorted(args.videos.rglob("*.mp4"))
        try:
            if not videos:
                raise CheckFailed(f"--videos {args.videos}: no *.mp4 there (make gpu-carry copies the DFDC sample)")
            elapsed = time_predict(args.config, cfg.model, videos, specialists, args.detector_weights)
            print(f"predict on {len(videos)} videos ({args.videos}), {len(specialists)} specialists, cuda: "
                  f"{elapsed:.1f} s, {elapsed / max(1, len(videos)):.1f} s per video (model loading included)")
        except CheckFailed as err:
            failures.append(str(err))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
