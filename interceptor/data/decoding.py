"""A raw shard sample (its tar members, shards/FORMAT.md) -> the model's inputs: decoding, and the training
augmentation (clip-consistent; pixel-preserving for the specialists that study pixels)."""

from __future__ import annotations

import functools
import io
import json
import re
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import get_worker_info

from interceptor import LABEL_FAKE
from interceptor.data.frame_samples import frame_names
from interceptor.inputs import InputKind, InputSpec, chosen_frames, clip_item, resize_frames, stack_inputs

PSEUDO_FAKE = "__pseudo_fake__"  # raw-sample entry: drawn as a pseudo-fake; its value: a partner real's audio


def sample_label(sample: dict) -> int:
    """A raw sample's label (its ``cls``): 0 real, 1 fake."""
    return int(sample["cls"])


def face_key(sample_key: str) -> str:
    """The face (of one video) a clip follows: its key without the ``-clipNN`` suffix (FORMAT.md). Shards of
    builder version 1 have one face per video and no ``-faceF`` part: the face is the video."""
    return sample_key.rsplit("-clip", 1)[0]


def video_key(sample_key: str) -> str:
    """The unique video of a clip: its key without the ``-faceF`` and ``-clipNN`` parts (FORMAT.md)."""
    return re.sub(r"-face\d+$", "", face_key(sample_key))


def decode_image(data: bytes) -> np.ndarray:
    """An encoded frame (PNG or JPEG bytes) -> (H, W, 3) uint8 RGB, decoded in RGB order (no conversion pass)."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    if image is None:
        raise ValueError("undecodable frame")
    return image


class Augmenter:
    """Clip-consistent augmentation; pixel-preserving for the specialists in ``preserve_pixels``.

    Whole-pixel crops, resampling and re-compression happen here, on the loader's core. The random resized
    crop of frames already at the model's size, the horizontal flip and the colour jitter are only drawn here and
    applied to the whole batch on the device (:func:`augment_on_device`): the loader delivers such frames whole.
    """

    def __init__(self, cfg, preserve_pixels: bool, image_size: int):
        self.cfg, self.preserve, self.size = cfg, preserve_pixels, image_size

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """(T, H, W, 3) uint8 frames -> frames at the model's size and the sample's device augmentation: ``crop``
        (top, left, height, width of the box to resize to the whole frame, in its pixels), ``flip`` and
        ``jitter`` (brightness, contrast, saturation factors)."""
        t, h, w, _ = frames.shape
        crop = np.array([0, 0, self.size, self.size], np.float32)  # the whole frame
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
            resample, recompress = rng.random() < self.cfg.resample_prob, rng.random() < self.cfg.recompress_prob
            if (h, w) == (self.size, self.size) and not (resample or recompress):
                crop[:] = y, x, ch, cw  # the device resizes the box of the whole frame
                y, x, ch, cw = 0, 0, h, w
            frames = frames[:, y:y + ch, x:x + cw]
            if resample:
                factor = rng.uniform(1.0, 2.0)
                frames = np.stack([cv2.resize(cv2.resize(f, None, fx=1 / factor, fy=1 / factor,
                                                         interpolation=cv2.INTER_AREA), (cw, ch)) for f in frames])
            if recompress:
                quality = int(rng.integers(60, 96))
                frames = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                                                cv2.IMREAD_UNCHANGED) for f in frames])
        flip = bool(rng.random() < self.cfg.hflip)
        jitter = (rng.uniform(1 - self.cfg.color_jitter, 1 + self.cfg.color_jitter, size=3)
                  if self.cfg.color_jitter > 0 else np.ones(3))
        return resize_frames(frames, self.size), {"crop": crop, "flip": flip, "jitter": jitter.astype(np.float32)}


class _EncodedFrames:
    """A shard sample's frames, decoded only when indexed (a frame model uses one of them)."""

    def __init__(self, sample: dict):
        self.sample, self.names = sample, frame_names(sample)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return decode_image(self.sample[self.names[index]])


def frames_to_decode(sample: dict, spec: InputSpec, rng: np.random.Generator | None,
                     eval_frames: str = "middle") -> list[str]:
    """The keys of the frames ``decode_sample`` decodes (its :func:`chosen_frames`)."""
    names = frame_names(sample)
    return [names[i] for i in chosen_frames(len(names), spec, rng, eval_frames)]


def _sample_audio(sample: dict, meta: dict) -> np.ndarray | None:
    """The clip's int16 audio, or None when its video has no audio track (``meta``: the sample's parsed json)."""
    if not meta.get("has_audio") or "audio.npy" not in sample:
        return None
    return np.load(io.BytesIO(sample["audio.npy"]), allow_pickle=False)


def no_pseudo_fake(frames: np.ndarray, audio: np.ndarray | None, rng: np.random.Generator) -> None:
    """The pseudo-fake draw of a sample the stream did not mark as one: none."""
    return None


def decode_sample(sample: dict, spec: InputSpec, rng: np.random.Generator | None,
                  augment: Augmenter | None, eval_frames: str = "middle", pseudo_fake: Callable | None = None,
                  out: np.ndarray | None = None) -> dict:
    """Raw shard sample -> :func:`clip_item` (uint8 pixels, int16 audio) plus label and video key; ``out``: the
    sample's slot in its batch's pixels (:func:`pixel_batch`), which its frames are decoded into.

    A real sample that the training stream drew as a pseudo-fake (its ``PSEUDO_FAKE`` entry) gets the parameters
    ``pseudo_fake`` (a family's ``draw``) draws for it and is labelled fake; where the family cannot alter it (AV
    without audio) it stays real.
    """
    meta = json.loads(sample["json"])
    audio = _sample_audio(sample, meta) if spec.kind.has_audio else None
    maker = None
    if pseudo_fake is not None:  # every sample of such a stream says whether it is a pseudo-fake
        maker = no_pseudo_fake
        if PSEUDO_FAKE in sample:
            partner = sample[PSEUDO_FAKE]
            partner_audio = (_sample_audio(partner, json.loads(partner["json"]))
                             if partner is not None and spec.kind.has_audio else None)
            maker = functools.partial(pseudo_fake, other_audio=partner_audio)
    item = clip_item(_EncodedFrames(sample), audio, spec, rng, augment, eval_frames, maker, out)
    label = LABEL_FAKE if item.get("pseudo_fake", False) else sample_label(sample)
    return {"label": label, "video": video_key(sample["__key__"]), "face": face_key(sample["__key__"]),
            "key": sample["__key__"], "source": f"{meta['dataset']}:{meta['source']}", **item}


def pixel_batch(batch_size: int, spec: InputSpec) -> torch.Tensor:
    """The uint8 (B, T, size, size, 3) pixels of a training batch (T 1 for frame models), for its samples to be
    decoded into (``decode_sample``'s ``out``). In a loader worker it is allocated in shared memory, as
    ``default_collate`` allocates its output there: the batch then reaches the training process without a copy."""
    shape = (batch_size, 1 if spec.kind is InputKind.FRAME else spec.frames, spec.image_size, spec.image_size, 3)
    if get_worker_info() is None:
        return torch.empty(shape, dtype=torch.uint8)
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def collate(items: list[dict], spec: InputSpec, pixels: torch.Tensor | None = None) -> dict:
    """Decoded samples as a batch: :func:`stack_inputs` plus labels, video, face and clip keys; ``pixels``: the
    batch's :func:`pixel_batch` the items were decoded into."""
    return {"label": torch.tensor([i["label"] for i in items]), "video": [i["video"] for i in items],
            "face": [i["face"] for i in items], "key": [i["key"] for i in items],
            "source": [i["source"] for i in items], **stack_inputs(items, spec, pixels)}
