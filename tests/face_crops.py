"""Face crops of the synthetic corpus cut with its ground-truth boxes: the models' input without the shards.

A crop is the square around the main face's box with ``margin`` context per side (as a fraction of the box
side), resized to ``size`` pixels; a clip keeps the box of its centre frame for all its frames, as a tracker
that smooths its boxes would. Audio comes as 16 kHz mono windows spanning each clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from artifact_measures import decode_audio, decode_frames


@dataclass(frozen=True)
class ClipSpec:
    size: int = 64  # crop side in pixels
    margin: float = 0.333  # context per side, fraction of the face box side (ModelConfig.context_margin)
    frames: int = 8  # frames per clip
    stride: int = 2  # video frames between clip frames: 8 frames every 2nd frame at 25 fps span 0.64 s
    clips: int = 3  # clips per video, evenly spread over it
    audio_rate: int = 16000


def crop_face(frame: np.ndarray, box, size: int, margin: float) -> np.ndarray:
    """The square crop of ``box`` with ``margin`` context per side, edges reflected, resized to ``size``."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side = int(round(side))
    pad = max(0, -left, -top, left + side - frame.shape[1], top + side - frame.shape[0])
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else frame
    crop = padded[top + pad:top + pad + side, left + pad:left + pad + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def video_clips(path: Path, entry: dict, spec: ClipSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """(clips, frames, size, size, 3) uint8 face crops and (clips, samples) float32 audio (None without audio)."""
    frames = decode_frames(path)
    boxes = entry["faces"][0]
    span = (spec.frames - 1) * spec.stride + 1
    starts = np.linspace(0, len(frames) - span, spec.clips).round().astype(int)
    clips = np.stack([
        np.stack([crop_face(frames[s + i * spec.stride], boxes[s + span // 2], spec.size, spec.margin)
                  for i in range(spec.frames)])
        for s in starts
    ])
    if not entry.get("has_audio"):
        return clips, None
    audio = decode_audio(path, spec.audio_rate)
    samples = int(round(spec.frames * spec.stride / entry["fps"] * spec.audio_rate))
    audio = np.pad(audio, (0, max(0, int(starts[-1] / entry["fps"] * spec.audio_rate) + samples - len(audio))))
    windows = [audio[int(round(s / entry["fps"] * spec.audio_rate)):][:samples] for s in starts]
    return clips, np.stack(windows).astype(np.float32)
