"""The training and evaluation input pipeline over WebDataset shards (reads only what shards/FORMAT.md says).

Training streams are infinite and deterministic: each (seed, epoch, rank, worker) has its own RNG, so every
rank runs the same number of steps whatever the shard sizes (no hang at uneven shards), and a resumed run
replays exactly the batches of an uninterrupted one. Each batch carries its logical worker id and how many
raw samples that worker has consumed; the trainer stores those counts in its checkpoints and a resumed
stream skips that many raw samples per worker, before any decoding.

Evaluation streams visit every sample of their shard sets exactly once, split between ranks and workers.
"""

from __future__ import annotations

import functools
import glob
import io
import json
import logging
import os
import random
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from interceptor import LABEL_FAKE, LABEL_REAL
from interceptor.schema import DataConfig
from interceptor.train.distributed import STOP_SIGNALS
from interceptor.train.frame_samples import frame_names, frame_samples, samples_per_clip
from interceptor.train.pseudo_fakes import pseudo_fake_maker
from interceptor.train.shard_reading import tar_samples
from interceptor.utils import read_json

log = logging.getLogger(__name__)

AUDIO_RATE = 16000
PSEUDO_FAKE = "__pseudo_fake__"  # raw-sample entry: drawn as a pseudo-fake; its value: a partner real's audio
# Shard formats this pipeline reads: 1 (one face per video, keys without -faceF) and 2 (several faces).
READABLE_BUILDER_VERSIONS = (1, 2)


class DataError(ValueError):
    """Shard sets that cannot be used as configured; the message names the path or config key."""


# ------------------------------------------------------------------------------------------------ shard sets


@dataclass(frozen=True)
class ShardSet:
    """A directory holding ``manifest.json`` and its tar shards."""

    name: str  # relative to the shards root, e.g. "ffpp/train"
    urls: tuple[str, ...]
    samples: int
    class_counts: tuple[int, int]  # real, fake samples
    margin: float  # context margin the crops were cut with (shards.margin)

    @classmethod
    def load(cls, root: Path, directory: Path) -> ShardSet:
        manifest = read_json(directory / "manifest.json", "shard manifest")
        version = manifest.get("builder_version")
        if version not in READABLE_BUILDER_VERSIONS:
            raise DataError(f"{directory / 'manifest.json'}: shards of builder version {version!r}; this trainer reads "
                            f"versions {', '.join(map(str, READABLE_BUILDER_VERSIONS))} (shards/FORMAT.md): rebuild "
                            "them with `interceptor shards build`")
        try:
            shards = [(directory / s["name"], int(s["samples"])) for s in manifest["shards"]]
            counts = manifest["samples_by_label"]
            class_counts = (int(counts.get("0", 0)), int(counts.get("1", 0)))
            margin = float(manifest["settings"]["margin"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{directory / 'manifest.json'}: not a shard manifest ({err!r})") from None
        missing = [str(p) for p, _ in shards if not p.is_file()]
        if missing:
            raise DataError(f"{directory / 'manifest.json'}: shards listed but missing: {', '.join(missing[:3])}")
        return cls(str(directory.relative_to(root)), tuple(str(p) for p, n in shards if n > 0),
                   sum(n for _, n in shards), class_counts, margin)


def resolve_shard_sets(root: str | Path, patterns: list[str], what: str) -> list[ShardSet]:
    """Shard sets matching ``patterns`` (globs relative to ``root``); none found is an error naming them."""
    root = Path(root)
    sets = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in glob.glob(str(root / pattern)) if (Path(p) / "manifest.json").is_file())
        if not matches:
            raise DataError(f"{what}: no shard set matches {pattern!r} under {root} (each needs a manifest.json; "
                            "build them with `interceptor shards build`)")
        sets.extend(ShardSet.load(root, m) for m in matches)
    return sets


# ------------------------------------------------------------------------------------------------ decoding


def _label(sample: dict) -> int:
    return int(sample["cls"])


def face_key(sample_key: str) -> str:
    """The face (of one video) a clip follows: its key without the ``-clipNN`` suffix (FORMAT.md). Shards of
    builder version 1 have one face per video and no ``-faceF`` part: the face is the video."""
    return sample_key.rsplit("-clip", 1)[0]


def video_key(sample_key: str) -> str:
    """The unique video of a clip: its key without the ``-faceF`` and ``-clipNN`` parts (FORMAT.md)."""
    return re.sub(r"-face\d+$", "", face_key(sample_key))


def _decode_image(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("undecodable frame")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: a contiguous array copies fast later


@dataclass(frozen=True)
class InputSpec:
    """What the model consumes: which keyword inputs to build, and at what size."""

    kind: str  # "frame", "clip" or "clip+audio"
    image_size: int
    frames: int  # clip length the model expects (clips are sub-sampled or cropped to it)
    audio_samples: int = 0  # waveform length per clip for AV: clip_seconds x audio_rate

    @classmethod
    def of(cls, model) -> InputSpec:
        """The input spec of a built detector (``interceptor.models``), from its own config."""
        return cls.for_config(model.input_kind, model.config)

    @classmethod
    def for_config(cls, kind: str, config) -> InputSpec:
        """The input spec of a model of input ``kind`` built with ``config`` (a ``ModelConfig``)."""
        return cls(kind, config.image_size, config.frames_per_clip, int(round(config.clip_seconds * config.audio_rate)))


class Augmenter:
    """Clip-consistent augmentation; pixel-preserving for the specialists in ``preserve_pixels``."""

    def __init__(self, cfg, preserve_pixels: bool, image_size: int):
        self.cfg, self.preserve, self.size = cfg, preserve_pixels, image_size

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t, h, w, _ = frames.shape
        if self.preserve:  # integer-offset crop, no interpolation
            ch, cw = min(h, self.size), min(w, self.size)
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            frames = frames[:, y:y + ch, x:x + cw]
        else:
            area = rng.uniform(*self.cfg.crop_scale) * h * w
            aspect = np.exp(rng.uniform(np.log(0.9), np.log(1.1)))
            ch = int(min(h, round(np.sqrt(area / aspect))))
            cw = int(min(w, round(np.sqrt(area * aspect))))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            frames = frames[:, y:y + ch, x:x + cw]
            if rng.random() < self.cfg.resample_prob:
                factor = rng.uniform(1.0, 2.0)
                frames = np.stack([cv2.resize(cv2.resize(f, None, fx=1 / factor, fy=1 / factor,
                                                         interpolation=cv2.INTER_AREA), (cw, ch)) for f in frames])
            if rng.random() < self.cfg.recompress_prob:
                quality = int(rng.integers(60, 96))
                frames = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                                                cv2.IMREAD_UNCHANGED) for f in frames])
        frames = resize_frames(frames, self.size)
        flip = rng.random() < self.cfg.hflip
        if self.cfg.color_jitter > 0:
            frames = color_jitter(np.ascontiguousarray(frames), *rng.uniform(1 - self.cfg.color_jitter,
                                                                             1 + self.cfg.color_jitter, size=3))
        if flip:  # after the jitter, which it does not change: the jitter reads contiguous frames
            frames = frames[:, :, ::-1]
        return frames  # a view when flipped: decode_sample's one copy to (T, 3, H, W) makes it contiguous


def color_jitter(frames: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness, then contrast about the clip's mean, then saturation against grey, on uint8 frames.

    Brightness and contrast fold into one saturating affine map per clip; OpenCV does both steps in uint8.
    """
    mean = float(frames.mean()) * brightness
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        adjusted = cv2.convertScaleAbs(frame, alpha=brightness * contrast, beta=mean * (1 - contrast))
        grey = cv2.cvtColor(cv2.cvtColor(adjusted, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        out[i] = cv2.addWeighted(adjusted, saturation, grey, 1 - saturation, 0)
    return out


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize (T, H, W, 3) frames to ``size`` x ``size`` (area interpolation when shrinking)."""
    t, h, w, _ = frames.shape
    if (h, w) == (size, size):
        return frames
    interp = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


class _EncodedFrames:
    """A shard sample's frames, decoded only when indexed (a frame model uses one of them)."""

    def __init__(self, sample: dict):
        self.sample, self.names = sample, frame_names(sample)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return _decode_image(self.sample[self.names[index]])


def frames_to_decode(sample: dict, spec: InputSpec, rng: np.random.Generator | None,
                     eval_frames: str = "middle") -> list[str]:
    """The keys of the frames ``decode_sample`` decodes (its :func:`chosen_frames`)."""
    names = frame_names(sample)
    return [names[i] for i in chosen_frames(len(names), spec, rng, eval_frames)]


def _sample_audio(sample: dict) -> np.ndarray | None:
    """The clip's int16 audio, or None when its video has no audio track."""
    if not json.loads(sample["json"]).get("has_audio") or "audio.npy" not in sample:
        return None
    return np.load(io.BytesIO(sample["audio.npy"]), allow_pickle=False)


def chosen_frames(count: int, spec: InputSpec, rng: np.random.Generator | None,
                  eval_frames: str = "middle") -> list[int]:
    """Which of a clip's ``count`` frames the model sees.

    Frame models: a random frame in training (``rng``), the middle one at evaluation (every frame with
    ``eval_frames="all"``). Clip models: ``spec.frames`` evenly strided frames.
    """
    if count == 0:
        raise ValueError("clip has no frames")
    if spec.kind == "frame":
        if rng is not None:
            return [int(rng.integers(count))]
        return list(range(count)) if eval_frames == "all" else [count // 2]
    chosen = list(range(0, count, max(1, count // spec.frames)))[:spec.frames]
    if len(chosen) < spec.frames:
        raise ValueError(f"clip has {count} frames, the model needs {spec.frames}")
    return chosen


def clip_item(frames: Sequence[np.ndarray], audio: np.ndarray | None, spec: InputSpec,
              rng: np.random.Generator | None = None, augment: Augmenter | None = None,
              eval_frames: str = "middle", pseudo_fake: Callable | None = None) -> dict:
    """One clip's model inputs: ``pixels`` (T, 3, H, W) uint8, plus ``audio`` (int16) and ``audio_mask`` for AV.

    ``frames`` are the clip's (H, W, 3) uint8 RGB crops (indexed only where :func:`chosen_frames` picks), ``audio``
    its int16 samples or None without an audio track. ``rng`` None means evaluation: no augmentation.
    ``pseudo_fake`` (training only) alters the chosen frames and the audio before augmentation
    (:mod:`~interceptor.train.pseudo_fakes`); the item's ``pseudo_fake`` says whether it did.
    """
    pixels = np.stack([frames[i] for i in chosen_frames(len(frames), spec, rng, eval_frames)])
    altered = pseudo_fake(pixels, audio, rng) if pseudo_fake is not None else None
    if altered is not None:
        pixels, audio = altered
    pixels = augment(pixels, rng) if (augment is not None and rng is not None) else resize_frames(pixels, spec.image_size)
    item = {"pixels": torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))}
    if pseudo_fake is not None:
        item["pseudo_fake"] = altered is not None
    if spec.kind == "clip+audio":
        samples = np.zeros(0, np.int16) if audio is None else audio.astype(np.int16).reshape(-1)
        item.update(audio=torch.from_numpy(samples), audio_mask=audio is not None)
    return item


def fit_audio(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """A clip's int16 waveform brought to ``samples``: the audio spans exactly the clip's frames, so a clip of
    another duration (another frame rate) is stretched linearly, which keeps audio window i on frame i.
    No audio gives zeros."""
    if len(audio) == samples:
        return audio
    if len(audio) == 0:
        return torch.zeros(samples, dtype=torch.int16)
    positions = np.linspace(0, len(audio) - 1, samples)
    return torch.from_numpy(np.interp(positions, np.arange(len(audio)), audio.numpy()).round().astype(np.int16))


def decode_sample(sample: dict, spec: InputSpec, rng: np.random.Generator | None,
                  augment: Augmenter | None, eval_frames: str = "middle", pseudo_fake: Callable | None = None) -> dict:
    """Raw shard sample -> :func:`clip_item` (uint8 pixels, int16 audio) plus label and video key.

    A real sample that the training stream drew as a pseudo-fake (its ``PSEUDO_FAKE`` entry) is altered by
    ``pseudo_fake`` and labelled fake; where the maker cannot alter it (AV without audio) it stays real.
    """
    audio = _sample_audio(sample) if spec.kind == "clip+audio" else None
    meta = json.loads(sample["json"])
    maker = None
    if PSEUDO_FAKE in sample and pseudo_fake is not None:
        partner = sample[PSEUDO_FAKE]
        partner_audio = _sample_audio(partner) if partner is not None and spec.kind == "clip+audio" else None
        maker = functools.partial(pseudo_fake, other_audio=partner_audio)
    item = clip_item(_EncodedFrames(sample), audio, spec, rng, augment, eval_frames, maker)
    label = LABEL_FAKE if item.pop("pseudo_fake", False) else _label(sample)
    return {"label": label, "video": video_key(sample["__key__"]), "face": face_key(sample["__key__"]),
            "key": sample["__key__"], "source": f"{meta['dataset']}:{meta['source']}", **item}


def stack_inputs(items: list[dict], spec: InputSpec) -> dict:
    """Stack :func:`clip_item` outputs: frame models' (B, 1, 3, H, W) become (B, 3, H, W); audio gets the model's
    length (:func:`fit_audio`)."""
    pixels = torch.stack([i["pixels"] for i in items])
    batch = {"pixels": pixels[:, 0] if spec.kind == "frame" else pixels}
    if spec.kind == "clip+audio":
        batch["audio"] = torch.stack([fit_audio(i["audio"], spec.audio_samples) for i in items])
        batch["audio_mask"] = torch.tensor([i["audio_mask"] for i in items])
    return batch


def collate(items: list[dict], spec: InputSpec) -> dict:
    """Stack decoded samples into a batch: :func:`stack_inputs` plus labels, video, face and clip keys."""
    return {"label": torch.tensor([i["label"] for i in items]), "video": [i["video"] for i in items],
            "face": [i["face"] for i in items], "key": [i["key"] for i in items],
            "source": [i["source"] for i in items], **stack_inputs(items, spec)}


def evaluation_rows(items: list[dict], spec: InputSpec, eval_frames: str) -> list[dict]:
    """Evaluation items as model rows: with ``eval_frames="all"`` every frame of a frame model's clip becomes its
    own row (sharing the clip's other fields), otherwise one row per clip."""
    if spec.kind == "frame" and eval_frames == "all":
        return [{**i, "pixels": f[None]} for i in items for f in i["pixels"]]
    return items


def model_inputs(batch: dict, spec: InputSpec, device: torch.device, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Batch -> the model's keyword inputs on ``device``: pixels become float in [0, 1] there."""
    pixels = batch["pixels"].to(device, non_blocking=True).to(dtype).div_(255)
    if channels_last and pixels.dim() == 4:
        pixels = pixels.contiguous(memory_format=torch.channels_last)
    if spec.kind == "frame":
        return {"image": pixels}
    inputs = {"clip": pixels}
    if spec.kind == "clip+audio":
        inputs["audio"] = batch["audio"].to(device, non_blocking=True).to(dtype).div_(32768)
        inputs["audio_mask"] = batch["audio_mask"].to(device, non_blocking=True).to(dtype)
    return inputs


# ------------------------------------------------------------------------------------------------ streams


def _raw_samples(urls: list[str], counters: dict, keep: Callable[[dict], bool] | None = None) -> Iterator[dict]:
    """Tar entries grouped into samples (those ``keep`` wants: :func:`tar_samples`); unreadable tars are counted
    and skipped, never fatal."""
    for url in urls:
        try:
            yield from tar_samples(url, keep)
        except Exception as err:  # noqa: BLE001 - a corrupt shard must not stop training
            counters["corrupt_shards"] += 1
            log.warning("skipping unreadable shard %s: %s", url, err)


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
                keep = label is None or _label(sample) == label
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
        return _label(sample) == label
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
                 first_worker: int = 0, specialist: str | None = None):
        self.urls = sorted({u for s in shard_sets for u in s.urls})
        self.cfg, self.spec, self.seed, self.epoch, self.rank, self.world = cfg, spec, seed, epoch, rank, world
        self.augment = Augmenter(cfg.augment, preserve_pixels, spec.image_size)
        self.pseudo_fake = None  # the specialist's pseudo-fake maker, bound to the crops' margin
        if not 0 <= cfg.pseudo_fakes <= 1:
            raise DataError(f"data.pseudo_fakes: a share in [0, 1], got {cfg.pseudo_fakes}")
        if cfg.pseudo_fakes > 0 and specialist is not None:
            if cfg.balance != "stream":
                raise DataError(f"data.pseudo_fakes={cfg.pseudo_fakes} needs data.balance=stream (pseudo-fakes are "
                                "a share of the fake stream)")
            self.pseudo_fake = functools.partial(pseudo_fake_maker(specialist), margin=shard_sets[0].margin)
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
        if self.spec.kind == "frame":
            mixed = frame_samples(mixed, self.per_clip, random.Random(repr((*stream_seed, "frames"))))
        raw = _shuffled(mixed, self.cfg.shuffle_buffer * self.per_clip, rng)
        consumed = 0
        for _ in range(self.skip.get(worker, 0)):
            next(raw)
            consumed += 1
        items = []
        for sample in raw:
            consumed += 1
            sample_rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker, consumed])
            try:
                items.append(decode_sample(sample, self.spec, sample_rng, self.augment, pseudo_fake=self.pseudo_fake))
            except Exception as err:  # noqa: BLE001 - a corrupt sample is skipped and counted
                counters["corrupt"] += 1
                log.debug("skipping corrupt sample %s: %s", sample.get("__key__"), err)
                continue
            if len(items) == self.cfg.batch_size:
                batch = collate(items, self.spec)
                batch.update(worker=worker, consumed=consumed, corrupt=counters["corrupt"] + counters["corrupt_shards"])
                yield batch
                items = []


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
        batch["corrupt"] = counters["corrupt"] + counters["corrupt_shards"]
        return batch


def loader(dataset: IterableDataset, cfg: DataConfig, seed: int = 0) -> DataLoader:
    """A DataLoader over a batch stream. It draws its workers' base seed from its own generator, not from the
    global torch RNG, so creating a loader (at a resume, at an evaluation) leaves the model's dropout
    sequence untouched."""
    workers = max(0, cfg.workers)
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=torch.cuda.is_available(),
                      prefetch_factor=cfg.prefetch if workers else None, persistent_workers=False,
                      generator=torch.Generator().manual_seed(seed), worker_init_fn=init_worker)


def init_worker(worker_id: int) -> None:
    """A loader worker: one core's work (torch sets its own threads to 1 there; OpenCV's pool would otherwise
    start a thread per core in every worker), and the stop signals left to the training process."""
    cv2.setNumThreads(1)
    ignore_outside_stop_signals(worker_id)


def ignore_outside_stop_signals(worker_id: int) -> None:
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
