"""The model input contract, shared by training, evaluation and prediction.

A specialist takes one :class:`InputKind` of input. A clip (its face crops and audio) becomes that model's
keyword inputs in three steps: :func:`clip_item` (the frames the model sees, resized, as uint8 (T, H, W, 3)),
then :func:`stack_inputs` (a batch of items), then :func:`model_inputs` (float (…, 3, H, W) tensors on the device,
channels_last for free). The training stream, the evaluation stream and ``interceptor predict`` all go through
these, so a model reads at prediction exactly what it was trained and selected on. Batches stay uint8 and
channels-last until the device: a quarter of float's bytes to copy, pin and transfer. A training batch also
carries each sample's resized-crop box, horizontal flip and colour jitter (``DEVICE_AUGMENTATION``), drawn in the
loader from the sample's RNG and applied on the device by :func:`model_inputs` (:func:`augment_on_device`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from interceptor.pseudo_fakes import apply_pseudo_fakes


class InputKind(StrEnum):
    """What a specialist consumes; the value is the name configs, exports and JSON use."""

    FRAME = "frame"  # one frame: ``image`` (B, 3, H, W)
    CLIP = "clip"  # a clip: ``clip`` (B, T, 3, H, W)
    CLIP_AUDIO = "clip+audio"  # a clip and its audio: ``clip``, ``audio`` (B, S), ``audio_mask`` (B,)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The keyword inputs of a model of this kind, in order."""
        return {InputKind.FRAME: ("image",), InputKind.CLIP: ("clip",),
                InputKind.CLIP_AUDIO: ("clip", "audio", "audio_mask")}[self]

    @property
    def has_audio(self) -> bool:
        return self is InputKind.CLIP_AUDIO


@dataclass(frozen=True)
class InputSpec:
    """What the model consumes: which keyword inputs to build, and at what size."""

    kind: InputKind
    image_size: int
    frames: int  # clip length the model expects (clips are sub-sampled or cropped to it)
    audio_samples: int = 0  # waveform length per clip for AV: clip_seconds x audio_rate

    def __post_init__(self):
        object.__setattr__(self, "kind", InputKind(self.kind))  # its name ("frame", ...) is accepted too

    @classmethod
    def of(cls, model) -> InputSpec:
        """The input spec of a built detector (``interceptor.models``), from its own config."""
        return cls.for_config(model.input_kind, model.config)

    @classmethod
    def for_config(cls, kind: InputKind | str, config) -> InputSpec:
        """The input spec of a model of input ``kind`` built with ``config`` (a ``ModelConfig``)."""
        return cls(kind, config.image_size, config.frames_per_clip, int(round(config.clip_seconds * config.audio_rate)))


def chosen_frames(count: int, spec: InputSpec, rng: np.random.Generator | None,
                  eval_frames: str = "middle") -> list[int]:
    """Which of a clip's ``count`` frames the model sees.

    Frame models: a random frame in training (``rng``), the middle one at evaluation (every frame with
    ``eval_frames="all"``). Clip models: ``spec.frames`` evenly strided frames.
    """
    if count == 0:
        raise ValueError("clip has no frames")
    if spec.kind is InputKind.FRAME:
        if rng is not None:
            return [int(rng.integers(count))]
        return list(range(count)) if eval_frames == "all" else [count // 2]
    chosen = list(range(0, count, max(1, count // spec.frames)))[:spec.frames]
    if len(chosen) < spec.frames:
        raise ValueError(f"clip has {count} frames, the model needs {spec.frames}")
    return chosen


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize (T, H, W, 3) frames to ``size`` x ``size`` (area interpolation when shrinking)."""
    t, h, w, _ = frames.shape
    if (h, w) == (size, size):
        return frames
    interp = cv2.INTER_AREA if h > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])


def stack_frames(frames: Sequence[np.ndarray], indices: list[int], out: np.ndarray | None = None) -> np.ndarray:
    """``frames[i]`` for ``indices`` as one (T, H, W, 3) array, each copied as soon as it is indexed (decoded, for
    a shard sample's frames): into ``out`` when it has their shape, else into a new array."""
    first = frames[indices[0]]
    if out is None or out.shape != (len(indices), *first.shape):
        out = np.empty((len(indices), *first.shape), first.dtype)
    out[0] = first
    for t, i in enumerate(indices[1:], 1):
        out[t] = frames[i]
    return out


def clip_item(frames: Sequence[np.ndarray], audio: np.ndarray | None, spec: InputSpec,
              rng: np.random.Generator | None = None, augment: Callable | None = None,
              eval_frames: str = "middle", pseudo_fake: Callable | None = None, out: np.ndarray | None = None) -> dict:
    """One clip's model inputs: ``pixels`` (T, H, W, 3) uint8, plus ``audio`` (int16) and ``audio_mask`` for AV.

    ``frames`` are the clip's (H, W, 3) uint8 RGB crops (indexed only where :func:`chosen_frames` picks), ``audio``
    its int16 samples or None without an audio track. ``rng`` None means evaluation: no augmentation.
    ``augment(frames, rng)`` (training only, :class:`~interceptor.data.decoding.Augmenter`) crops and resizes
    the chosen frames to the model's size and draws the item's ``DEVICE_AUGMENTATION`` (:func:`augment_on_device`).
    ``pseudo_fake(frames, audio, rng)`` (training only: a :class:`~interceptor.pseudo_fakes.PseudoFake`'s
    ``draw``) draws the item's pseudo-fake parameters (``pseudo``) before augmentation and alters its audio; the
    item's ``pseudo_fake`` says whether it drew them (:func:`model_inputs` applies them on the device).
    ``out``: the item's (T, size, size, 3) uint8 slot in a batch's pixels (:func:`stack_inputs`), which the frames
    are copied into as they are decoded and its pixels end in: no copy of its own to stack.
    """
    pixels = stack_frames(frames, chosen_frames(len(frames), spec, rng, eval_frames), out)
    drawn = pseudo_fake(pixels, audio, rng) if pseudo_fake is not None else None
    item = {}
    if pseudo_fake is not None:
        item.update(pseudo_fake=drawn is not None, pseudo=drawn[0] if drawn is not None else np.zeros(0, np.float32))
        audio = drawn[1] if drawn is not None else audio
    if augment is not None and rng is not None:
        pixels, device_augmentation = augment(pixels, rng)
        item.update(device_augmentation)
    else:
        pixels = resize_frames(pixels, spec.image_size)
    if out is not None and pixels is not out:
        out[...] = pixels
        pixels = out
    item["pixels"] = torch.from_numpy(np.ascontiguousarray(pixels))
    if spec.kind.has_audio:
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


def evaluation_rows(items: list[dict], spec: InputSpec, eval_frames: str) -> list[dict]:
    """Evaluation items as model rows: with ``eval_frames="all"`` every frame of a frame model's clip becomes its
    own row (sharing the clip's other fields), otherwise one row per clip."""
    if spec.kind is InputKind.FRAME and eval_frames == "all":
        return [{**i, "pixels": f[None]} for i in items for f in i["pixels"]]
    return items


def stack_inputs(items: list[dict], spec: InputSpec, pixels: torch.Tensor | None = None) -> dict:
    """Stack :func:`clip_item` outputs: frame models' (B, 1, H, W, 3) become (B, H, W, 3); audio gets the model's
    length (:func:`fit_audio`); training items' ``crop``, ``flip`` and ``jitter`` become (B, 4), (B,), (B, 3), and
    their ``pseudo_fake`` marks and ``pseudo`` parameters (B,) and (B, P) (zeros for the others).
    ``pixels``: the batch's pixels already there, the items made into its slots (``clip_item``'s ``out``)."""
    pixels = torch.stack([i["pixels"] for i in items]) if pixels is None else pixels[:len(items)]
    batch = {"pixels": pixels[:, 0] if spec.kind is InputKind.FRAME else pixels}
    if "flip" in items[0]:
        batch.update({key: torch.from_numpy(np.stack([i[key] for i in items])) for key in DEVICE_AUGMENTATION})
    if "pseudo_fake" in items[0]:
        drawn = [i["pseudo"] for i in items if i["pseudo_fake"]]
        none = np.zeros(len(drawn[0]) if drawn else 0, np.float32)
        batch["pseudo_fake"] = torch.tensor([i["pseudo_fake"] for i in items])
        batch["pseudo"] = torch.from_numpy(np.stack([i["pseudo"] if i["pseudo_fake"] else none for i in items]))
    if spec.kind.has_audio:
        batch["audio"] = torch.stack([fit_audio(i["audio"], spec.audio_samples) for i in items])
        batch["audio_mask"] = torch.tensor([i["audio_mask"] for i in items])
    return batch


def model_inputs(batch: dict, spec: InputSpec, device: torch.device, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, pseudo_fake=None) -> dict[str, torch.Tensor]:
    """Batch -> the model's keyword inputs (:attr:`InputKind.input_names`) on ``device``: uint8 (…, H, W, 3) pixels
    become float (…, 3, H, W) in [0, 1] there, audio in [-1, 1]. A training batch's pseudo-fakes are made there
    by ``pseudo_fake`` (the specialist's :class:`~interceptor.pseudo_fakes.PseudoFake`), then its
    ``DEVICE_AUGMENTATION`` is applied."""
    pixels = batch["pixels"].to(device, non_blocking=True).float().div_(255)
    pixels = pixels.movedim(-1, -3)  # a channels_last view of frames
    if pseudo_fake is not None and "pseudo_fake" in batch:
        pixels = apply_pseudo_fakes(pixels, batch["pseudo_fake"], batch["pseudo"], pseudo_fake)
    if "flip" in batch:
        pixels = augment_on_device(pixels, batch["crop"], batch["flip"].to(device, non_blocking=True),
                                   batch["jitter"].to(device, non_blocking=True))
    pixels = pixels.to(dtype).contiguous(
        memory_format=torch.channels_last if channels_last and pixels.dim() == 4 else torch.contiguous_format)
    if spec.kind is InputKind.FRAME:
        return {"image": pixels}
    inputs = {"clip": pixels}
    if spec.kind.has_audio:
        inputs["audio"] = batch["audio"].to(device, non_blocking=True).to(dtype).div_(32768)
        inputs["audio_mask"] = batch["audio_mask"].to(device, non_blocking=True).to(dtype)
    return inputs


DEVICE_AUGMENTATION = ("crop", "flip", "jitter")  # a training batch's per-sample augmentation, in that order
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as OpenCV's RGB2GRAY


def resized_crops(pixels: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
    """Each sample's box ``crop`` (B, 4: top, left, height, width in whole pixels, on the host) of float
    (B, [T,] 3, H, W) pixels, resized bilinearly to the whole frame, as ``cv2.resize`` resizes the box."""
    size = tuple(pixels.shape[-2:])
    boxes = [(i, box) for i, box in enumerate(crop.int().tolist()) if tuple(box[2:]) != size]
    if not boxes:  # whole frames stay as they are (the pixel-preserving specialists', frames cropped in the loader)
        return pixels
    out = pixels.clone()
    for i, (top, left, height, width) in boxes:
        box = out[i, ..., top:top + height, left:left + width]
        out[i] = torch.nn.functional.interpolate(box.reshape(-1, *box.shape[-3:]), size=size, mode="bilinear",
                                                 align_corners=False).reshape(out[i].shape)
    return out


def augment_on_device(pixels: torch.Tensor, crop: torch.Tensor, flip: torch.Tensor,
                      jitter: torch.Tensor) -> torch.Tensor:
    """A training batch's augmentation, per sample, on float (B, [T,] 3, H, W) pixels in [0, 1]: the resized crop
    (:func:`resized_crops`), then the colour jitter: brightness, then contrast about the sample's mean (over all
    its frames), each clipped to [0, 1], then saturation against grey (``jitter`` (B, 3) holds the three factors,
    ones: unchanged), then the horizontal flip of the samples ``flip`` (B,) names."""
    pixels = resized_crops(pixels, crop)
    shape = (-1,) + (1,) * (pixels.dim() - 1)
    brightness, contrast, saturation = (jitter[:, i].view(shape) for i in range(3))
    mean = pixels.mean(dim=tuple(range(1, pixels.dim())), keepdim=True) * brightness
    out = (pixels * (brightness * contrast) + mean * (1 - contrast)).clamp_(0, 1)
    weights = torch.tensor(GREY_WEIGHTS, device=pixels.device, dtype=pixels.dtype).view(3, 1, 1)
    grey = (out * weights).sum(dim=-3, keepdim=True)
    out = (out * saturation + grey * (1 - saturation)).clamp_(0, 1)
    return torch.where(flip.view(shape), out.flip(-1), out)
