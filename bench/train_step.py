#!/usr/bin/env python3
"""Trainer step throughput against a minimal plain-PyTorch loop, on the same in-memory batches.

    python bench/train_step.py [--specialist all] [--backbone NAME] [--size PX] [--batch N] [--precision P]
        [--channels-last] [--device auto|cpu|cuda] [--steps N] [--rounds 5] [--config FILE] [KEY=VALUE ...]

For each specialist two loops train the same model (``build_model`` from the config, same seed):

- ``trainer``: the real trainer's optimizer step, ``Trainer.train_step``: the DeepSpeed engine of
  ``build_engine`` (AdamW, warm-up + cosine schedule, gradient clipping, fp16 loss scaling or bf16 master
  weights as configured), ``model_inputs``, the loss, the non-finite guard, ``engine.backward`` and
  ``engine.step``, and the logging window (TensorBoard scalars every ``train.log_every`` steps, written to a
  temporary run directory);
- ``plain``: ``model(**model_inputs(batch))``, cross-entropy, ``loss.backward(); opt.step(); opt.zero_grad()``
  with ``torch.optim.AdamW`` (same lr, betas and weight decay); bf16 and fp16 through ``torch.autocast``, fp16
  with a ``GradScaler``.

Both cycle over the same few batches of random pixels (and audio) as the training loader yields them, each sample's
device augmentation and, with ``data.pseudo_fakes``, the pseudo-fakes drawn, which both make on the device
(``model_inputs``); data loading is left out (``bench/loader.py`` measures it). After two warm-up steps each,
``--rounds`` rounds run ``--steps`` steps of each loop (default ``train.log_every``: every round of the trainer logs
once), the order alternating from round to round. The table gives each loop's median round in samples/s and the
median over rounds of the ratio trainer / plain (each round's pair ran under the same load). Single process: a world
of one through ``init_distributed`` (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config, to_dict  # noqa: E402
from interceptor.data.decoding import Augmenter, no_pseudo_fake, collate  # noqa: E402
from interceptor.distributed import DistInfo, init_distributed  # noqa: E402
from interceptor.inputs import InputKind, InputSpec, clip_item, model_inputs  # noqa: E402
from interceptor.models import build_model, get_specialist  # noqa: E402
from interceptor.models.registry import check_specialists, configured_pseudo_fakes  # noqa: E402
from interceptor.schema import Config  # noqa: E402
from interceptor.train.curriculum import StageRun  # noqa: E402
from interceptor.train.engine import PRECISION_DTYPES, resolve_precision  # noqa: E402
from interceptor.train.launch import parse_specialists  # noqa: E402
from interceptor.train.trainer import Trainer, new_window  # noqa: E402

T = TypeVar("T")


def input_spec(cfg: Config, specialist: str) -> InputSpec:
    """What the specialist's model consumes under ``cfg`` (the trainer builds the same from its model)."""
    return InputSpec.for_config(get_specialist(specialist).input_kind, cfg.model)


def synthetic_batches(cfg: Config, spec: InputSpec, count: int, specialist: str) -> list[dict]:
    """``count`` batches of random uint8 pixels (int16 audio) as the training loader yields them (``clip_item``,
    ``collate``): each sample's device augmentation drawn, and, with ``data.pseudo_fakes``, its share of the fake
    half drawn as the specialist's pseudo-fakes, which the step then makes on the device."""
    rng = np.random.default_rng(0)
    frames = 1 if spec.kind is InputKind.FRAME else spec.frames
    augment = Augmenter(cfg.data.augment, specialist in cfg.data.augment.preserve_pixels, spec.image_size)
    family = configured_pseudo_fakes(specialist, cfg.data)
    batches = []
    for index in range(count):
        items = []
        for row in range(cfg.data.batch_size):
            clip = rng.integers(0, 256, (frames, spec.image_size, spec.image_size, 3), dtype=np.uint8)
            audio = rng.integers(-8192, 8192, spec.audio_samples, dtype=np.int16)
            pseudo = family is not None and row % 2 == 1 and rng.random() < cfg.data.pseudo_fakes
            draw = functools.partial(family.draw, margin=cfg.model.context_margin) if pseudo else no_pseudo_fake
            item = clip_item(clip, audio, spec, rng, augment, pseudo_fake=draw if family is not None else None)
            items.append({"label": row % 2, "video": f"v{row}", "face": f"v{row}-face0",
                          "key": f"v{row}-face0-clip00", "source": "bench:random", **item})
        batch = collate(items, spec)
        batch.update(worker=0, consumed=(index + 1) * cfg.data.batch_size, corrupt=0)
        batches.append(batch)
    return batches


class TrainerLoop:
    """The trainer's own optimizer step (``Trainer.train_step``), in a temporary run directory."""

    def __init__(self, cfg: Config, specialist: str, dist: DistInfo, batches: list[dict]):
        self._run_dir = tempfile.TemporaryDirectory(prefix="bench-train-step-")
        run_dir = Path(self._run_dir.name)
        run = StageRun(specialist, 0, "bench", f"bench-{specialist}", run_dir, train_sets=[], val_sets=[], epochs=1)
        self.trainer = Trainer(cfg, run, run_dir, dist, resume=False)
        self.trainer.prepare()
        self.batches: Iterator[dict] = itertools.cycle(batches)
        self.window = new_window()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.window = self.trainer.train_step(self.batches, self.window)

    def close(self) -> None:
        self.trainer.monitor.close()
        self._run_dir.cleanup()


class PlainLoop:
    """A minimal PyTorch training loop with the same model, optimizer type and settings, batch and precision."""

    def __init__(self, cfg: Config, specialist: str, device: torch.device, batches: list[dict]):
        self.device, self.channels_last = device, cfg.train.channels_last
        self.precision = resolve_precision(cfg.train.precision, device)
        torch.manual_seed(cfg.train.seed)
        self.model = build_model(specialist, **to_dict(cfg.model)).to(device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.spec = input_spec(cfg, specialist)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, betas=tuple(cfg.train.betas),
                                           weight_decay=cfg.train.weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.pseudo_fake = configured_pseudo_fakes(specialist, cfg.data)
        self.batches: Iterator[dict] = itertools.cycle(batches)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            batch = next(self.batches)
            inputs = model_inputs(batch, self.spec, self.device, channels_last=self.channels_last,
                                  pseudo_fake=self.pseudo_fake)
            labels = batch["label"].to(self.device)
            with torch.autocast(self.device.type, PRECISION_DTYPES[self.precision], enabled=self.precision != "fp32"):
                logits = self.model(**inputs)
            loss = F.cross_entropy(logits.float(), labels)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)


def seconds(loop, steps: int, device: torch.device) -> float:
    """Wall-clock seconds of ``steps`` steps of ``loop`` (the GPU's queued work included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    loop.run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def interleaved(measures: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Each measurement's result in each of ``rounds`` rounds, the order alternating from round to round (so
    that load that comes and goes hits every measurement alike)."""
    results: dict[str, list[T]] = {name: [] for name in measures}
    names = list(measures)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            results[name].append(measures[name]())
    return results


def compare(cfg: Config, specialist: str, dist: DistInfo, steps: int, rounds: int, batches: int) -> dict:
    """Trainer and plain samples/s (median round) and the median per-round ratio for one specialist."""
    data = synthetic_batches(cfg, input_spec(cfg, specialist), batches, specialist)
    trainer = TrainerLoop(cfg, specialist, dist, data)
    try:
        loops = {"trainer": trainer, "plain": PlainLoop(cfg, specialist, dist.device, data)}
        for loop in loops.values():  # warm-up: allocator, oneDNN or cuDNN kernel choice, DeepSpeed's first step
            seconds(loop, 2, dist.device)
        times = interleaved({name: partial(seconds, loop, steps, dist.device) for name, loop in loops.items()}, rounds)
    finally:
        trainer.close()
    samples = steps * cfg.data.batch_size
    return {"trainer": samples / statistics.median(times["trainer"]),
            "plain": samples / statistics.median(times["plain"]),
            "ratio": statistics.median(p / t for t, p in zip(times["trainer"], times["plain"]))}


def bench_config(args: argparse.Namespace, overrides: list[str]) -> Config:
    """The config with the command line's settings applied (unset options keep the config's values)."""
    options = {"model.backbone": args.backbone, "model.image_size": args.size, "data.batch_size": args.batch,
               "train.precision": args.precision, "train.channels_last": args.channels_last or None}
    return load_config(args.config, [f"{k}={v}" for k, v in options.items() if v is not None] + overrides,
                       check=check_specialists)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--specialist", default="all", help="a specialist, a comma list, or all (default)")
    parser.add_argument("--config", help="a packaged config's name (demo, default) or a YAML path (default: demo)")
    parser.add_argument("--rounds", type=int, default=5)


def start(device: str) -> DistInfo:
    """A process group of one on ``device`` (auto: the GPU when one is visible)."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    dist = init_distributed()
    if device == "cuda" and dist.device.type != "cuda":
        raise SystemExit("--device cuda: no GPU is visible")
    return dist


def describe(dist: DistInfo) -> str:
    """The machine in one line: device, threads, torch version, load."""
    where = (torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    return f"{where}; torch {torch.__version__}; load {os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.add_argument("--steps", type=int, help="training steps per loop and round (default: train.log_every, "
                        "so that every round of the trainer logs once)")
    parser.add_argument("--backbone", help="timm backbone (default: the config's model.backbone)")
    parser.add_argument("--size", type=int, help="image size in pixels (default: model.image_size)")
    parser.add_argument("--batch", type=int, help="micro-batch (default: data.batch_size)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="default: train.precision (auto: fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batches", type=int, default=4, help="distinct in-memory batches cycled through")
    args, overrides = parser.parse_known_args(argv)
    cfg = bench_config(args, overrides)
    dist = start(args.device)
    specialists = parse_specialists(args.specialist)
    steps = args.steps or cfg.train.log_every
    precision = resolve_precision(cfg.train.precision, dist.device)
    print(f"{describe(dist)}; {cfg.model.backbone} at {cfg.model.image_size} px, batch {cfg.data.batch_size}, "
          f"{precision}{', channels_last' if cfg.train.channels_last else ''}; {args.rounds} rounds of "
          f"{steps} steps after a warm-up", flush=True)
    print("| specialist | trainer samples/s | plain samples/s | trainer ÷ plain |\n| --- | ---: | ---: | ---: |")
    for specialist in specialists:
        result = compare(cfg, specialist, dist, steps, args.rounds, args.batches)
        print(f"| {specialist.upper()} | {result['trainer']:.1f} | {result['plain']:.1f} | {result['ratio']:.2f} |",
              flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
