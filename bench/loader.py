#!/usr/bin/env python3
"""Training loader throughput against pure PNG decoding and against the trainer's consumption, in one run.

    python bench/loader.py --shards SHARDS [--train-sets ffpp/train] [--specialist all] [--workers 0 1 2]
        [--batches 20] [--steps 3] [--rounds 3] [--config FILE] [KEY=VALUE ...]

For each specialist every round measures, in alternating order:

- ``loader, W workers`` for each ``--workers`` W: the real training input pipeline, ``TrainStream`` through
  ``loader()`` with ``data.workers=W`` (tar reading, class-balanced mixing, the shuffle buffer, PNG decoding,
  augmentation, collation), a new loader each round as at the start of a training epoch: the time to the first
  batch (workers starting, shuffle buffers filling) and the samples/s of the next ``--batches`` batches;
- ``decode``: ``cv2.imdecode`` alone, in this process, of the frames the loader decodes (``frames_to_decode``:
  one frame of each clip for the frame specialists, the T frames of the clip for TM and AV) for as many clips of
  the same shards, their PNG bytes read into memory beforehand;
- ``trainer``: the trainer's consumption rate, ``--steps`` optimizer steps of the real trainer step
  (``bench/train_step.py``'s ``TrainerLoop``) on in-memory batches of the configured batch size.

The table gives the median round of each, and the medians over rounds of the ratios loader / decode and
loader / trainer (each round's measurements ran under the same load). On a CPU machine the loader and the
trainer share the cores during training; here each is measured alone.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import webdataset as wds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config  # noqa: E402
from interceptor.schema import Config  # noqa: E402
from interceptor.data.decoding import frames_to_decode  # noqa: E402
from interceptor.data.shard_sets import ShardSet, resolve_shard_sets  # noqa: E402
from interceptor.data.streams import TrainStream, loader  # noqa: E402
from interceptor.distributed import DistInfo  # noqa: E402
from interceptor.inputs import InputSpec  # noqa: E402
from interceptor.train.launch import parse_specialists  # noqa: E402
from interceptor.data.pseudo_fakes import pseudo_fake_maker  # noqa: E402
from train_step import (  # noqa: E402
    TrainerLoop, add_common_options, describe, input_spec, interleaved, seconds, start, synthetic_batches)


def loader_seconds(shard_sets: list[ShardSet], cfg: Config, spec: InputSpec, preserve_pixels: bool,
                   batches: int, specialist: str) -> tuple[float, float]:
    """Seconds to the first batch of a new training loader (epoch 0), then seconds for the next ``batches``
    (with the specialist's pseudo-fakes, ``data.pseudo_fakes``, as in training)."""
    start = time.perf_counter()
    stream = TrainStream(shard_sets, cfg.data, spec, preserve_pixels, cfg.train.seed, epoch=0, rank=0, world=1,
                         pseudo_fake=pseudo_fake_maker(specialist) if cfg.data.pseudo_fakes > 0 else None)
    iterator = iter(loader(stream, cfg.data, seed=cfg.train.seed))
    next(iterator)
    first = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    end = time.perf_counter()
    del iterator  # stops the workers
    return first - start, end - first


def encoded_frames(shard_sets: list[ShardSet], spec: InputSpec, clips: int) -> list[bytes]:
    """The PNG bytes of the frames the loader decodes for ``clips`` clips of the shard sets, in memory."""
    urls = sorted({u for s in shard_sets for u in s.urls})
    samples = itertools.chain.from_iterable(wds.tarfile_samples([{"url": url}]) for url in itertools.cycle(urls))
    rng = np.random.default_rng(0)
    return [sample[key] for sample in itertools.islice(samples, clips) for key in frames_to_decode(sample, spec, rng)]


def decode_seconds(frames: list[bytes]) -> float:
    start = time.perf_counter()
    for data in frames:
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return time.perf_counter() - start


def compare(cfg: Config, specialist: str, shard_sets: list[ShardSet], worker_counts: list[int], batches: int,
            steps: int, rounds: int, dist: DistInfo) -> list[dict]:
    """One row per loader worker count: loader, decode and trainer samples/s (median rounds) and the ratios."""
    spec = input_spec(cfg, specialist)
    preserve = specialist in cfg.data.augment.preserve_pixels
    clips = batches * cfg.data.batch_size
    frames = encoded_frames(shard_sets, spec, clips)
    trainer = TrainerLoop(cfg, specialist, dist, synthetic_batches(cfg, spec, 2))
    try:
        seconds(trainer, 1, dist.device)  # warm-up
        measures = {workers: partial(loader_seconds, shard_sets, replace(cfg, data=replace(cfg.data, workers=workers)),
                                     spec, preserve, batches, specialist) for workers in worker_counts}
        results = interleaved({**measures, "decode": partial(decode_seconds, frames),
                               "trainer": partial(seconds, trainer, steps, dist.device)}, rounds)
    finally:
        trainer.close()
    decode = [clips / s for s in results["decode"]]
    consume = [steps * cfg.data.batch_size / s for s in results["trainer"]]
    rows = []
    for workers in worker_counts:
        rates = [clips / steady for _, steady in results[workers]]
        rows.append({"workers": workers, "loader": statistics.median(rates), "decode": statistics.median(decode),
                     "trainer": statistics.median(consume),
                     "first": statistics.median(first for first, _ in results[workers]),
                     "vs_decode": statistics.median(r / d for r, d in zip(rates, decode)),
                     "vs_trainer": statistics.median(r / c for r, c in zip(rates, consume))})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.add_argument("--shards", required=True, type=Path, help="root holding the shard sets")
    parser.add_argument("--train-sets", nargs="+", default=["ffpp/train"], help="shard sets (globs) under --shards")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader worker counts")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader, after the first")
    parser.add_argument("--steps", type=int, default=3, help="trainer steps per round")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, overrides)
    shard_sets = resolve_shard_sets(args.shards, args.train_sets, "--train-sets")
    dist = start("auto")
    print(f"{describe(dist)}; {', '.join(s.name for s in shard_sets)}; {cfg.model.backbone} at "
          f"{cfg.model.image_size} px, batch {cfg.data.batch_size}, shuffle buffer {cfg.data.shuffle_buffer}, "
          f"prefetch {cfg.data.prefetch}; {args.rounds} rounds: {args.batches} loader batches, {args.steps} "
          "trainer steps", flush=True)
    print("| specialist | loader workers | first batch s | loader samples/s | decode samples/s | trainer samples/s "
          "| loader ÷ decode | loader ÷ trainer |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for specialist in parse_specialists(args.specialist):
        for row in compare(cfg, specialist, shard_sets, args.workers, args.batches, args.steps, args.rounds, dist):
            print(f"| {specialist.upper()} | {row['workers']} | {row['first']:.2f} | {row['loader']:.0f} | "
                  f"{row['decode']:.0f} | {row['trainer']:.1f} | {row['vs_decode']:.2f} | {row['vs_trainer']:.1f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
