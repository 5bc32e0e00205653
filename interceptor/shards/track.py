"""From sparse detections to one smooth track per face of a video.

Detections (every k-th frame) are linked into tracks by overlap; every stable track is kept (found in a good
share of the detection frames, and not much smaller than the largest face), up to ``detector.max_faces``,
largest first (face 0 is the largest); each track's boxes are smoothed with a moving average over detections
and interpolated linearly to every frame in between. Smooth boxes matter: the
TM specialist looks for frame-to-frame jitter, which a jittery crop would add to real videos too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from interceptor.schema import DetectorConfig
from interceptor.shards.faces import Detection, iou


@dataclass
class FaceTrack:
    """Per-frame boxes (x0, y0, x1, y1, upright source pixels) of one face; NaN rows where it is not tracked."""

    boxes: np.ndarray  # (num_frames, 4) float64
    scores: np.ndarray  # (num_frames,) float64, interpolated detection scores
    width: int  # size of the frames the boxes belong to
    height: int

    def box(self, index: int) -> np.ndarray:
        """The box at frame ``index`` (NaN beyond the track)."""
        return self.boxes[index] if index < len(self.boxes) else np.full(4, np.nan)

    def score(self, index: int) -> float:
        return float(self.scores[index]) if index < len(self.scores) else math.nan

    def to_json(self) -> dict:
        """A JSON-able copy; floats are kept exactly, so a reloaded track crops exactly the same windows."""
        rows = [None if np.isnan(b).any() else [float(v) for v in b] for b in self.boxes]
        scores = [None if np.isnan(s) else float(s) for s in self.scores]
        return {"width": self.width, "height": self.height, "boxes": rows, "scores": scores}

    @classmethod
    def from_json(cls, data: dict) -> FaceTrack:
        boxes = np.array([b if b is not None else [np.nan] * 4 for b in data["boxes"]], dtype=np.float64)
        scores = np.array([s if s is not None else np.nan for s in data["scores"]], dtype=np.float64)
        return cls(boxes.reshape(-1, 4), scores, int(data["width"]), int(data["height"]))


def link_tracks(detections: dict[int, list[Detection]], min_iou: float, max_gap: int) -> list[list[tuple[int, Detection]]]:
    """Greedy overlap linking over the detection frames, in order; a track may miss ``max_gap`` of them."""
    finished: list[list[tuple[int, Detection]]] = []
    active: list[tuple[list[tuple[int, Detection]], int]] = []  # (track, detection frames missed in a row)
    for frame in sorted(detections):
        found = detections[frame]
        pairs = sorted(((iou(track[-1][1].box, det.box), t, d) for t, (track, _) in enumerate(active)
                        for d, det in enumerate(found)), reverse=True)
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        for overlap, t, d in pairs:
            if overlap < min_iou:
                break
            if t not in used_tracks and d not in used_dets:
                active[t][0].append((frame, found[d]))
                used_tracks.add(t)
                used_dets.add(d)
        continuing = []
        for t, (track, missed) in enumerate(active):
            missed = 0 if t in used_tracks else missed + 1
            if missed > max_gap:
                finished.append(track)
            else:
                continuing.append((track, missed))
        active = continuing + [([(frame, det)], 0) for d, det in enumerate(found) if d not in used_dets]
    return finished + [track for track, _ in active]


def _area(det: Detection) -> float:
    x0, y0, x1, y1 = det.box
    return (x1 - x0) * (y1 - y0)


def _side(track: list[tuple[int, Detection]]) -> float:
    """The face's size: the median over its detections of the box's longer side."""
    return float(np.median([max(d.box[2] - d.box[0], d.box[3] - d.box[1]) for _, d in track]))


def choose_tracks(tracks: list[list[tuple[int, Detection]]], detection_frames: int, cfg: DetectorConfig,
                  ) -> list[list[tuple[int, Detection]]]:
    """The stable tracks, largest (median box area) first, at most ``cfg.max_faces``.

    Stable: found in at least ``min_track_fraction`` of the detection frames and at least half as often as the
    most often found track (an intermittent false detection on the background is not stable beside a real face),
    with a size (median longer side) of at least ``min_face_ratio`` of the largest stable face's.
    """
    if not tracks:
        return []
    most = max(len(t) for t in tracks)
    needed = max(1, math.ceil(cfg.min_track_fraction * detection_frames), math.ceil(most / 2))
    stable = sorted((t for t in tracks if len(t) >= needed),
                    key=lambda t: (float(np.median([_area(d) for _, d in t])), len(t)), reverse=True)
    if not stable:
        return []
    largest = _side(stable[0])
    return [t for t in stable if _side(t) >= cfg.min_face_ratio * largest][:cfg.max_faces]


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, the window shrinking symmetrically at the ends."""
    half = max(0, window // 2)
    out = np.empty_like(values)
    for i in range(len(values)):
        reach = min(half, i, len(values) - 1 - i)
        out[i] = values[i - reach:i + reach + 1].mean(axis=0)
    return out


def interpolate_track(track: list[tuple[int, Detection]], num_frames: int, smooth: int, hold: int,
                      width: int, height: int) -> FaceTrack:
    """Per-frame boxes: smoothed detections, linearly interpolated, held ``hold`` frames past either end."""
    frames = np.array([f for f, _ in track], dtype=np.float64)
    xyxy = np.array([d.box for _, d in track], dtype=np.float64)
    centre_size = np.column_stack([(xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2,
                                   xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]])
    centre_size = _moving_average(centre_size, smooth)
    index = np.arange(num_frames, dtype=np.float64)
    cx, cy, w, h = (np.interp(index, frames, centre_size[:, k]) for k in range(4))
    boxes = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    scores = np.interp(index, frames, [d.score for _, d in track])
    outside = (index < frames[0] - hold) | (index > frames[-1] + hold)
    boxes[outside] = np.nan
    scores[outside] = np.nan
    return FaceTrack(boxes, scores, width, height)


def build_tracks(detections: dict[int, list[Detection]], num_frames: int, cfg: DetectorConfig,
                 width: int, height: int) -> list[FaceTrack]:
    """Every kept face's per-frame track, largest first; empty when no face is found in enough detection frames."""
    tracks = link_tracks(detections, cfg.track_iou, cfg.max_gap)
    return [interpolate_track(track, num_frames, cfg.smooth, cfg.every, width, height)
            for track in choose_tracks(tracks, len(detections), cfg)]
