"""The training and evaluation batch streams over shard sets, and their loader.

Training streams are infinite and deterministic: each (seed, epoch, rank, worker) has its own RNG, so every
rank runs the same number of steps whatever the shard sizes (no hang at uneven shards), and a resumed run
replays exactly the batches of an uninterrupted one. Each batch carries its logical worker id, how many
raw samples that worker has consumed, and how many corrupt samples (and unreadable shards) it skipped since its
previous batch, so that the trainer's sum over batches counts every worker's. The trainer stores the consumed
counts in its checkpoints and a resumed stream skips that many raw samples per worker, before any decoding.

Evaluation streams visit every sample of their shard sets exactly once, split between ranks and workers.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import threading
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from interceptor import LABEL_FAKE, LABEL_REAL
from interceptor.data.frame_samples import frame_samples, samples_per_clip
from interceptor.data.decoding import PSEUDO_FAKE, Augmenter, collate, decode_sample, pixel_batch, sample_label
from interceptor.data.shard_reading import tar_samples
from interceptor.data.shard_sets import DataError, ShardSet
from interceptor.distributed import STOP_SIGNALS
from interceptor.inputs import InputKind, InputSpec, evaluation_rows
from interceptor.pseudo_fakes import PseudoFake
from interceptor.schema import DataConfig
from interceptor.utils import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, mallopt

log = logging.getLogger(__name__)


def _raw_samples(urls: list[str], counters: dict, keep: Callable[[dict], bool] | None = None) -> Iterator[dict]:
    """Tar entries grouped into samples (those ``keep`` wants: :func:`tar_samples`); unreadable tars are counted
    and skipped, never fatal."""
    for url in urls:
        try:
            yield from tar_samples(url, keep)
        except Exception as err:  # noqa: BLE001 - a corrupt shard must not stop training
            counters["corrupt_shards"] += 1
            log.warning("skipping unreadable shard %s: %s", url, err)


def _take(counters: dict) -> int:
    """The corrupt samples and shards counted since the last call (the counters restart at zero)."""
    total = counters["corrupt"] + counters["corrupt_shards"]
    counters.update(corrupt=0, corrupt_shards=0)
    return total


def _shard_order(urls: list[str], rng: random.Random, sampling: str) -> Iterator[str]:
    """An endless sequence of shard urls: drawn with replacement, or shuffled passes over ``urls``."""
    if not urls:
        return
    while True:
        if sampling == "resample":
            yield rng.choice(urls)
        else:
            order = list(urls)
            rng.shuffle(order)
            yield from order


def _class_stream(urls: list[str], label: int | None, rng: random.Random, sampling: str,
                  counters: dict) -> Iterator[dict]:
    """Endless samples of one class (all classes for ``label`` None) from shards in ``_shard_order``."""
    barren = 0  # shards read since the last sample of this class
    for url in _shard_order(urls, rng, sampling):
        for sample in _raw_samples([url], counters, None if label is None else functools.partial(_wanted_by, label)):
            try:
                keep = label is None or sample_label(sample) == label
            except (KeyError, ValueError):
                counters["corrupt"] += 1
                continue
            if keep:
                barren = -1
                yield sample
        barren += 1
        if barren > 4 * len(urls) + 8:
            which = "any class" if label is None else f"class {label}"
            hint = ("; with data.sampling=partition each rank and worker needs both classes in its shards: "
                    "use data.sampling=resample or data.balance=loss") if sampling == "partition" else ""
            raise DataError(f"no readable samples of {which} in shards {urls[:3]}{'...' if len(urls) > 3 else ''}"
                            f"{hint}")


def _wanted_by(label: int, sample: dict) -> bool:
    """Whether a class stream reads the rest of ``sample``: its class is ``label``, or its label is unreadable
    (the stream then counts it as corrupt)."""
    try:
        return sample_label(sample) == label
    except (KeyError, ValueError):
        return True


def _mixed(streams: list[Iterator[dict]], class_mix: list[float], pseudo_share: float,
           rng: random.Random) -> Iterator[dict]:
    """Endless samples drawn from the real and fake streams by ``class_mix``; a ``pseudo_share`` of the fake
    draws are real samples marked as pseudo-fakes (``PSEUDO_FAKE`` holds the previous real sample's metadata and
    audio, which an AV pseudo-fake may borrow; not its frames, which the shuffle buffer would hold twice)."""
    previous_real = None
    while True:
        label = rng.choices((LABEL_REAL, LABEL_FAKE), class_mix)[0]
        if label == LABEL_FAKE and pseudo_share > 0 and rng.random() < pseudo_share:
            sample = dict(next(streams[LABEL_REAL]))
            sample[PSEUDO_FAKE] = previous_real
            yield sample
            continue
        sample = next(streams[label])
        if label == LABEL_REAL:
            previous_real = {k: sample[k] for k in ("json", "audio.npy") if k in sample}
        yield sample


def _shuffled(samples: Iterator[dict], size: int, rng: random.Random) -> Iterator[dict]:
    buffer: list[dict] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        buffer[i], sample = sample, buffer[i]
        yield sample
    rng.shuffle(buffer)
    yield from buffer


class TrainStream(IterableDataset):
    """Endless, deterministic batches for one rank; see the module docstring."""

    def __init__(self, shard_sets: list[ShardSet], cfg: DataConfig, spec: InputSpec, preserve_pixels: bool,
                 seed: int, epoch: int, rank: int, world: int, skip: dict[int, int] | None = None,
                 first_worker: int = 0, pseudo_fake: PseudoFake | None = None):
        """``pseudo_fake``: the specialist's pseudo-fake family
        (:func:`~interceptor.models.registry.pseudo_fake_maker`), drawn for a ``data.pseudo_fakes`` share of
        the fakes (the batches carry the parameters, the device makes them); None draws none."""
        self.urls = sorted({u for s in shard_sets for u in s.urls})
        self.cfg, self.spec, self.seed, self.epoch, self.rank, self.world = cfg, spec, seed, epoch, rank, world
        self.augment = Augmenter(cfg.augment, preserve_pixels, spec.image_size)
        self.pseudo_fake = None  # the family's draw, bound to the crops' margin
        if not 0 <= cfg.pseudo_fakes <= 1:
            raise DataError(f"data.pseudo_fakes: a share in [0, 1], got {cfg.pseudo_fakes}")
        if cfg.pseudo_fakes > 0 and pseudo_fake is not None:
            if cfg.balance != "stream":
                raise DataError(f"data.pseudo_fakes={cfg.pseudo_fakes} needs data.balance=stream (pseudo-fakes are "
                                "a share of the fake stream)")
            self.pseudo_fake = functools.partial(pseudo_fake.draw, margin=shard_sets[0].margin)
        self.per_clip = samples_per_clip(spec.kind, cfg)
        self.skip = dict(skip or {})
        self.first_worker = first_worker
        workers = max(1, cfg.workers)
        if cfg.balance == "stream" and min(sum(s.class_counts[c] for s in shard_sets) for c in (0, 1)) == 0:
            raise DataError(f"data.balance=stream needs real and fake samples; {', '.join(s.name for s in shard_sets)} "
                            "have only one class")
        if cfg.sampling == "partition" and len(self.urls) < world * workers:
            raise DataError(
                f"data.sampling=partition needs at least ranks x workers = {world} x {workers} = {world * workers} "
                f"shards, found {len(self.urls)} in {', '.join(s.name for s in shard_sets)}; "
                "use data.sampling=resample, fewer data.workers, or smaller shards")

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        physical, count = (info.id, info.num_workers) if info else (0, 1)
        # After a resume the loader restarts at worker 0; rotate so batch order matches the original run.
        return (physical + self.first_worker) % count, count

    def __iter__(self) -> Iterator[dict]:
        worker, workers = self._worker()
        stream_seed = (self.seed, self.epoch, self.rank, worker)
        rng = random.Random(repr(stream_seed))
        counters = {"corrupt": 0, "corrupt_shards": 0}
        if self.cfg.sampling == "partition":
            urls = self.urls[self.rank * workers + worker::self.world * workers]
        else:
            urls = self.urls
        if self.cfg.balance == "stream":
            streams = [_class_stream(urls, label, random.Random(repr((*stream_seed, label))), self.cfg.sampling,
                                     counters) for label in (0, 1)]
            mixed = _mixed(streams, self.cfg.class_mix, self.cfg.pseudo_fakes if self.pseudo_fake else 0.0, rng)
        else:
            mixed = _class_stream(urls, None, random.Random(repr((*stream_seed, "all"))), self.cfg.sampling, counters)
        if self.spec.kind is InputKind.FRAME:
            mixed = frame_samples(mixed, self.per_clip, random.Random(repr((*stream_seed, "frames"))))
        raw = _shuffled(mixed, self.cfg.shuffle_buffer * self.per_clip, rng)
        consumed = 0
        for _ in range(self.skip.get(worker, 0)):
            next(raw)
            consumed += 1
        _take(counters)  # what the skipped samples met, the batches before the checkpoint counted
        items, pixels = [], None
        for sample in raw:
            consumed += 1
            sample_rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, consumed])
            if pixels is None:
                pixels = pixel_batch(self.cfg.batch_size, self.spec)
            try:
                items.append(decode_sample(sample, self.spec, sample_rng, self.augment, pseudo_fake=self.pseudo_fake,
                                           out=pixels[len(items)].numpy()))
            except Exception as err:  # noqa: BLE001 - a corrupt sample is skipped and counted
                counters["corrupt"] += 1
                log.debug("skipping corrupt sample %s: %s", sample.get("__key__"), err)
                continue
            if len(items) == self.cfg.batch_size:
                batch = collate(items, self.spec, pixels)
                batch.update(worker=worker, consumed=consumed, corrupt=_take(counters))
                yield batch
                items, pixels = [], None


class EvalStream(IterableDataset):
    """Every sample of the shard sets exactly once, split by rank then by worker, in batches."""

    def __init__(self, shard_sets: list[ShardSet], cfg: DataConfig, spec: InputSpec, rank: int, world: int):
        self.urls = sorted({u for s in shard_sets for u in s.urls})
        self.cfg, self.spec, self.rank, self.world = cfg, spec, rank, world

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        urls = self.urls[self.rank::self.world][worker::workers]
        counters = {"corrupt": 0, "corrupt_shards": 0}
        items = []
        for sample in _raw_samples(urls, counters):
            try:
                items.append(decode_sample(sample, self.spec, None, None, self.cfg.eval_frames))
            except Exception as err:  # noqa: BLE001
                counters["corrupt"] += 1
                log.warning("skipping corrupt sample %s: %s", sample.get("__key__"), err)
                continue
            if len(items) == self.cfg.eval_batch_size:
                yield self._batch(items, counters)
                items = []
        if items:
            yield self._batch(items, counters)

    def _batch(self, items: list[dict], counters: dict) -> dict:
        batch = collate(evaluation_rows(items, self.spec, self.cfg.eval_frames), self.spec)
        batch["corrupt"] = _take(counters)  # skipped since the worker's previous batch
        return batch


def loader(dataset: IterableDataset, cfg: DataConfig, seed: int = 0) -> DataLoader:
    """A DataLoader over a batch stream. It draws its workers' base seed from its own generator, not from the
    global torch RNG, so creating a loader (at a resume, at an evaluation) leaves the model's dropout
    sequence untouched.

    With workers, OpenCV is set to one thread here, in the process that forks them: each worker is one core's
    work (torch sets its own threads to 1 there), and OpenCV's pool would start a thread per core in every
    worker. It cannot be set in the worker: ``cv2.setNumThreads`` in a child forked after the parent used the
    pool deadlocks (tests/test_data.py). The process that runs the loader keeps the memory it frees
    (:func:`keep_freed_memory`)."""
    workers = max(0, cfg.workers)
    if workers:
        cv2.setNumThreads(1)
    else:
        keep_freed_memory()
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=cfg.prefetch if workers else None, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed), worker_init_fn=start_worker)


MALLOC_KEEP_BYTES = 1 << 30  # allocations below this come from the heap, and freed heap memory stays mapped


def keep_freed_memory() -> None:
    """Make glibc's malloc keep and reuse the memory this process frees instead of returning it to the OS.

    Every batch's pixels (a batch of TM clips at 380 px is 55 MB) and every decoded frame are fresh allocations;
    by default glibc maps large ones anew and unmaps them when freed, so each write to them first faults its
    pages in: measured here, that made TM's loader 20% slower than its decoding. Reused heap memory is already
    mapped. Elsewhere than glibc this does nothing."""
    mallopt(M_MMAP_THRESHOLD, MALLOC_KEEP_BYTES)
    mallopt(M_TRIM_THRESHOLD, MALLOC_KEEP_BYTES)


def start_worker(worker_id: int) -> None:
    """A loader worker's set-up: :func:`keep_freed_memory`, :func:`ignore_outside_stop_signals`."""
    keep_freed_memory()
    ignore_outside_stop_signals()


def ignore_outside_stop_signals() -> None:
    """In a loader worker: leave preemption signals to the training process, which checkpoints, then ends its
    workers. Slurm signals every process of a job step, and a worker killed by that SIGTERM would crash the step;
    a SIGTERM from the training process itself (ending its workers, also at exit) still ends the worker."""
    for sig in STOP_SIGNALS:
        if sig != signal.SIGTERM:
            signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from here on inherit the mask
    threading.Thread(target=_exit_on_sigterm_from, args=(os.getppid(),), daemon=True).start()


def _exit_on_sigterm_from(parent: int) -> None:
    """Take every SIGTERM sent to this process; exit on the one its parent sends, ignore the others."""
    while True:
        if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
            os._exit(0)
