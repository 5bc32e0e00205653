"""Frame specialists' training samples: several frames of each clip read, each its own sample.

A frame model trains on one frame at a time. Reading a clip's T frames to train on one of them reads T times
what it uses (8x at production settings); instead each clip read gives ``data.frame_samples_per_clip`` samples,
distinct frames of it, which the shuffle buffer then spreads apart like any others. A frame sample is a raw
shard sample holding one frame file (its key stays the clip's), so everything downstream decodes it as a clip
of one frame. Clip models (TM, AV) read whole clips, one sample each. An epoch counts samples: a frame model's
has ``frame_samples_per_clip`` times as many as its shard sets hold clips.
"""

from __future__ import annotations

import random
from typing import Iterator

from interceptor.config import ConfigError
from interceptor.inputs import InputKind
from interceptor.schema import DataConfig

FRAME_SUFFIXES = (".png", ".jpg")


def frame_names(sample: dict) -> list[str]:
    """A raw sample's frame files (``fNN.png`` or ``fNN.jpg``, shards/FORMAT.md), in clip order."""
    return sorted(k for k in sample if k.startswith("f") and k.endswith(FRAME_SUFFIXES) and k[1:3].isdigit())


def samples_per_clip(input_kind: str, cfg: DataConfig) -> int:
    """Training samples one clip read gives a model of ``input_kind``: ``data.frame_samples_per_clip`` for
    frame models, 1 for clip models."""
    if cfg.frame_samples_per_clip < 1:
        raise ConfigError(f"data.frame_samples_per_clip: at least 1, got {cfg.frame_samples_per_clip}")
    return cfg.frame_samples_per_clip if input_kind == InputKind.FRAME else 1


def epoch_samples(clips: int, specialist: str, cfg: DataConfig) -> int:
    """Training samples in one pass over ``clips`` clips for ``specialist``: what an epoch's length counts."""
    from interceptor.models import get_specialist  # the model registry (timm) only where epochs are sized

    return clips * samples_per_clip(get_specialist(specialist).input_kind, cfg)


def frame_samples(clips: Iterator[dict], count: int, rng: random.Random) -> Iterator[dict]:
    """Each raw clip sample as ``count`` raw samples of one distinct frame each (drawn by ``rng``; every frame,
    in clip order, when the clip has ``count`` or fewer). The frame samples keep the clip's key, label, json
    and pseudo-fake mark; they drop its other frames and its audio, so the shuffle buffer holds one frame each."""
    for clip in clips:
        names = frame_names(clip)
        chosen = names if len(names) <= count else sorted(rng.sample(names, count))
        shared = {k: v for k, v in clip.items() if k not in names and k != "audio.npy"}
        for name in chosen:
            yield {**shared, name: clip[name]}
