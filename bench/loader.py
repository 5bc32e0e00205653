#!/usr/bin/env python3
"""Training loader throughput per core against pure PNG decoding, bytes read per trained sample, memory, and the
cores per GPU it needs, in one run.

    python bench/loader.py --shards SHARDS [--train-sets ffpp/train] [--specialist all] [--workers 0 1 2]
        [--batches 20] [--steps 3] [--rounds 3] [--config FILE] [KEY=VALUE ...]

For each specialist every round measures, in alternating order:

- ``loader, W workers`` for each ``--workers`` W: the real training input pipeline, ``TrainStream`` through
  ``loader()`` with ``data.workers=W`` (tar reading, class-balanced mixing, frame samples, the shuffle buffer, PNG
  decoding into the batch, the draws of pseudo-fakes and augmentation, collation), a new loader each round as at the
  start of a training epoch: the time to the first batch (workers starting, shuffle buffers filling) and the
  samples/s of the next ``--batches`` batches. With 0 workers the loader runs in this process, on one core: its rate
  is the rate per loader worker (per core), and the bytes this process reads meanwhile (``rchar`` of
  ``/proc/self/io``) over the samples delivered are the bytes read from shards per trained sample;
- ``decode``: ``decode_image`` (``cv2.imdecode`` to RGB) alone, in this process, of the frames the loader
  decodes (``frames_to_decode``: one frame of each sample for the frame specialists, the T frames of the clip for
  TM and AV) for as many samples of the same shards, their PNG bytes read into memory beforehand;
- ``device``: the device side of 4 delivered batches, ``model_inputs`` (to float, the pseudo-fakes the loader
  drew, the resized crop, jitter and flip), on the device (the GPU when there is one), ms per batch;
- ``trainer`` (``--steps`` above 0): the trainer's consumption rate, ``--steps`` optimizer steps of the real
  trainer step (``bench/train_step.py``'s ``TrainerLoop``) on in-memory batches of the configured batch size.

The table gives the median round of each, the medians over rounds of the ratios loader / decode and loader /
trainer (each round's measurements ran under the same load), the encoded bytes of the frames a sample trains
on, the loader cores (workers) per GPU that 331 img/s (NVIDIA's EfficientNet-B4 at 380 px with AMP on an
A100) and 700 img/s (about an H100) need at the measured rate per core, and the peak RSS of one loader worker:
a fresh process that imports the pipeline and runs the loader in-process for ``--batches`` batches (a worker
forked from a trainer shares the trainer's pages besides). On a CPU machine the loader and the trainer share the
cores during training; here each is measured alone.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config  # noqa: E402
from interceptor.schema import Config  # noqa: E402
from interceptor.data.decoding import decode_image, frames_to_decode  # noqa: E402
from interceptor.data.shard_sets import ShardSet, resolve_shard_sets  # noqa: E402
from interceptor.data.streams import TrainStream, loader  # noqa: E402
from interceptor.distributed import DistInfo  # noqa: E402
from interceptor.inputs import InputSpec, model_inputs  # noqa: E402
from interceptor.models.registry import check_specialists, configured_pseudo_fakes  # noqa: E402
from interceptor.train.launch import parse_specialists  # noqa: E402
from train_step import (  # noqa: E402
    TrainerLoop, add_common_options, describe, input_spec, interleaved, seconds, start, synthetic_batches)


# img/s one GPU consumes: NVIDIA's EfficientNet-B4 at 380 px with AMP on an A100, and about twice that on an H100.
GPU_RATES = (331, 700)


def bytes_read() -> int:
    """Bytes this process has read so far (``rchar``: every read call, from the page cache or not)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no rchar line")


def new_loader(shard_sets: list[ShardSet], cfg: Config, spec: InputSpec, preserve_pixels: bool, specialist: str):
    """A training loader of epoch 0 (with the specialist's pseudo-fakes, ``data.pseudo_fakes``, as in training)."""
    stream = TrainStream(shard_sets, cfg.data, spec, preserve_pixels, cfg.train.seed, epoch=0, rank=0, world=1,
                         pseudo_fake=configured_pseudo_fakes(specialist, cfg.data))
    return iter(loader(stream, cfg.data, seed=cfg.train.seed))


@contextlib.contextmanager
def one_core():
    """Torch and OpenCV on one thread meanwhile, as in a loader worker (``loader()`` sets it before forking them)."""
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def loader_seconds(shard_sets: list[ShardSet], cfg: Config, spec: InputSpec, preserve_pixels: bool,
                   batches: int, specialist: str) -> tuple[float, float, int]:
    """Seconds to the first batch of a new training loader, seconds for the next ``batches``, and the bytes this
    process read meanwhile (the shards' bytes when the loader runs in-process, ``data.workers=0``)."""
    with one_core() if cfg.data.workers == 0 else contextlib.nullcontext():
        start = time.perf_counter()
        iterator = new_loader(shard_sets, cfg, spec, preserve_pixels, specialist)
        next(iterator)
        first, read = time.perf_counter(), bytes_read()
        for _ in range(batches):
            next(iterator)
        end, read = time.perf_counter(), bytes_read() - read
        del iterator  # stops the workers
    return first - start, end - first, read


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent that spawned it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def worker_rss(shard_sets: list[ShardSet], cfg: Config, spec: InputSpec, preserve_pixels: bool, batches: int,
               specialist: str) -> tuple[float, float]:
    """In a fresh process: peak RSS (MB) after importing the pipeline, and after ``batches`` batches of an
    in-process loader: what one loader worker holds (its shuffle buffer, decoded and augmented frames)."""
    imported = _peak_rss_mb()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    iterator = new_loader(shard_sets, replace(cfg, data=replace(cfg.data, workers=0)), spec, preserve_pixels,
                          specialist)
    for _ in range(batches + 1):
        next(iterator)
    return imported, _peak_rss_mb()


def in_fresh_process(function, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def encoded_frames(shard_sets: list[ShardSet], spec: InputSpec, clips: int) -> list[bytes]:
    """The PNG bytes of the frames the loader decodes for ``clips`` samples of the shard sets, in memory."""
    urls = sorted({u for s in shard_sets for u in s.urls})
    samples = itertools.chain.from_iterable(wds.tarfile_samples([{"url": url}]) for url in itertools.cycle(urls))
    rng = np.random.default_rng(0)
    return [sample[key] for sample in itertools.islice(samples, clips) for key in frames_to_decode(sample, spec, rng)]


def decode_seconds(frames: list[bytes]) -> float:
    """Seconds to decode ``frames`` as the loader decodes them (``decode_image``: RGB uint8), nothing else."""
    start = time.perf_counter()
    for data in frames:
        decode_image(data)
    return time.perf_counter() - start


def device_seconds(batches: list[dict], spec: InputSpec, cfg: Config, specialist: str, device: torch.device) -> float:
    """Seconds per batch of the batches' device side, ``model_inputs``: uint8 to float, the pseudo-fakes the
    loader drew (made by the specialist's family), the resized crop, jitter and flip, on ``device``."""
    family = configured_pseudo_fakes(specialist, cfg.data)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for batch in batches:
        model_inputs(batch, spec, device, channels_last=cfg.train.channels_last, pseudo_fake=family)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / len(batches)


def compare(cfg: Config, specialist: str, shard_sets: list[ShardSet], worker_counts: list[int], batches: int,
            steps: int, rounds: int, dist: DistInfo) -> list[dict]:
    """One row per loader worker count: loader, decode and trainer samples/s (median rounds), the ratios, bytes
    read per sample, cores per GPU and a loader worker's peak RSS."""
    spec = input_spec(cfg, specialist)
    preserve = specialist in cfg.data.augment.preserve_pixels
    samples = batches * cfg.data.batch_size
    frames = encoded_frames(shard_sets, spec, samples)
    measures = {workers: partial(loader_seconds, shard_sets, replace(cfg, data=replace(cfg.data, workers=workers)),
                                 spec, preserve, batches, specialist) for workers in worker_counts}
    measures["decode"] = partial(decode_seconds, frames)
    with one_core():
        delivered = list(itertools.islice(new_loader(shard_sets, replace(cfg, data=replace(cfg.data, workers=0)),
                                                     spec, preserve, specialist), 4))
    measures["device"] = partial(device_seconds, delivered, spec, cfg, specialist, dist.device)
    trainer = TrainerLoop(cfg, specialist, dist, synthetic_batches(cfg, spec, 2, specialist)) if steps else None
    try:
        if trainer:
            seconds(trainer, 1, dist.device)  # warm-up
            measures["trainer"] = partial(seconds, trainer, steps, dist.device)
        results = interleaved(measures, rounds)
    finally:
        if trainer:
            trainer.close()
    imported, peak = in_fresh_process(worker_rss, shard_sets, cfg, spec, preserve, batches, specialist)
    decode = [samples / s for s in results["decode"]]
    consume = [steps * cfg.data.batch_size / s for s in results.get("trainer", [])]
    used = sum(map(len, frames)) / samples
    rows = []
    for workers in worker_counts:
        rates = [samples / steady for _, steady, _ in results[workers]]
        read = statistics.median(r for _, _, r in results[workers]) / samples if workers == 0 else None
        rows.append({"workers": workers, "loader": statistics.median(rates), "decode": statistics.median(decode),
                     "first": statistics.median(first for first, _, _ in results[workers]),
                     "vs_decode": statistics.median(r / d for r, d in zip(rates, decode)),
                     "used_kb": used / 1024, "read_kb": read / 1024 if read is not None else None,
                     "amplification": read / used if read is not None else None,
                     "cores": [g / statistics.median(rates) for g in GPU_RATES] if workers == 0 else None,
                     "trainer": statistics.median(consume) if consume else None,
                     "vs_trainer": statistics.median(r / c for r, c in zip(rates, consume)) if consume else None,
                     "rss": (imported, peak), "device_ms": 1000 * statistics.median(results["device"]),
                     "pseudo_fakes": sum(int(b["pseudo_fake"].sum()) for b in delivered if "pseudo_fake" in b)
                     / len(delivered)})
    return rows


def _cell(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.add_argument("--shards", required=True, type=Path, help="root holding the shard sets")
    parser.add_argument("--train-sets", nargs="+", default=["ffpp/train"], help="shard sets (globs) under --shards")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader worker counts")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per loader, after the first")
    parser.add_argument("--steps", type=int, default=3, help="trainer steps per round (0: no trainer)")
    args, overrides = parser.parse_known_args(argv)
    cfg = load_config(args.config, overrides, check=check_specialists)
    shard_sets = resolve_shard_sets(args.shards, args.train_sets, "--train-sets")
    dist = start("auto")
    print(f"{describe(dist)}; {', '.join(s.name for s in shard_sets)}; {cfg.model.backbone} at "
          f"{cfg.model.image_size} px, batch {cfg.data.batch_size}, shuffle buffer {cfg.data.shuffle_buffer}, "
          f"prefetch {cfg.data.prefetch}; {args.rounds} rounds: {args.batches} loader batches, {args.steps} "
          "trainer steps", flush=True)
    print("| specialist | loader workers | first batch s | loader samples/s | decode samples/s | loader ÷ decode "
          "| KB of frames used per sample | KB read per sample | read ÷ used | cores per GPU at 331 / 700 img/s "
          "| worker peak RSS MB (after imports) | trainer samples/s | loader ÷ trainer "
          f"| device side ms per batch ({dist.device.type}; pseudo-fakes per batch) |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for specialist in parse_specialists(args.specialist):
        for row in compare(cfg, specialist, shard_sets, args.workers, args.batches, args.steps, args.rounds, dist):
            cores = " / ".join(f"{c:.1f}" for c in row["cores"]) if row["cores"] else "–"
            print(f"| {specialist.upper()} | {row['workers']} | {row['first']:.2f} | {row['loader']:.0f} | "
                  f"{row['decode']:.0f} | {row['vs_decode']:.2f} | {row['used_kb']:.0f} | "
                  f"{_cell(row['read_kb'], '.0f')} | {_cell(row['amplification'], '.2f')} | {cores} | "
                  f"{row['rss'][1]:.0f} ({row['rss'][0]:.0f}) | "
                  f"{_cell(row['trainer'], '.1f')} | {_cell(row['vs_trainer'], '.1f')} | "
                  f"{row['device_ms']:.1f} ({row['pseudo_fakes']:.1f}) |", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
