"""Which faces of a fake were manipulated: each face compared with the same face of its original.

A fake whose original is in the same shard set reuses the original's face tracks, so both videos' crops of a
face cut the same windows at the same frames. The *change* of a face is how much more the fake's crops differ
from the original's inside the face box (the crop's central square) than around it (the margin ring): mean
absolute differences in 8-bit levels, over the clips both have. The ring measures what re-encoding alone does to
this pair of files (a fake is a separately encoded file), so an untouched face scores about 0 whatever the
compression; a swapped or re-enacted face scores well above. In a DFDC video with two people often only one
face is swapped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from interceptor import LABEL_FAKE, LABEL_REAL
from interceptor.schema import ShardsConfig
from interceptor.shards.extract import VideoClips
from interceptor.shards.samples import Member, group_samples, read_members

CropsByClip = dict[tuple[int, int], np.ndarray]  # (face, clip) -> (T, S, S, 3) uint8 RGB crops


def work_file_crops(path: Path) -> CropsByClip:
    """The crops stored in a video's work file (its record first, then its samples), by face and clip."""
    members = read_members(path)
    next(members)  # the record
    crops = {}
    for sample in group_samples(members):
        files = dict(_files(sample))
        meta = json.loads(files["json"])
        frames = [cv2.imdecode(np.frombuffer(files[f"f{t:02d}.{meta['image_format']}"], np.uint8),
                               cv2.IMREAD_COLOR)[..., ::-1] for t in range(meta["num_frames"])]
        crops[(meta["face"], meta["clip"])] = np.stack(frames)
    return crops


def _files(sample: list[Member]):
    for name, data in sample:
        yield name.split(".", 1)[1], data


def face_changes(video: VideoClips, original: CropsByClip, margin: float) -> dict[int, float]:
    """Each face's change against the original: the mean absolute difference inside the face box less the one in
    the margin ring around it (the re-encoding noise of this pair of files)."""
    size = video.clips[0].frames.shape[1]
    inner = int(round(size / (1 + 2 * margin)))
    box = np.zeros((size, size), bool)
    low = (size - inner) // 2
    box[low:low + inner, low:low + inner] = True
    totals: dict[int, list[float]] = {}
    for clip in video.clips:
        before = original.get((clip.face, clip.index))
        if before is None:
            continue
        diff = np.abs(clip.frames.astype(np.int16) - before.astype(np.int16)).mean(axis=(0, 3))
        noise = float(diff[~box].mean()) if (~box).any() else 0.0
        totals.setdefault(clip.face, []).append(float(diff[box].mean()) - noise)
    return {face: float(np.mean(values)) for face, values in totals.items()}


@dataclass
class FaceLabels:
    """The label of each face of a video, the faces dropped, and how it was decided."""

    labels: dict[int, int]  # face -> label, for the faces kept
    changes: dict[int, float | None]  # face -> change against the original (None: no original to compare)
    decision: str  # real | changed (per face) | no_original | no_changed_face
    unchanged: int = 0  # faces of a fake found unchanged (dropped, or labelled real)


def label_faces(label: int, faces: list[int], changes: dict[int, float] | None, cfg: ShardsConfig) -> FaceLabels:
    """Per-face labels of a video labelled ``label``.

    A real video's faces are real. A fake's faces changed beyond ``cfg.face_change_threshold`` are fake; its
    unchanged faces are dropped (``cfg.unchanged_faces`` = ``drop``) or real (``real``). Without an original to
    compare with (``changes`` None), or when no face changed (a manipulation of the audio alone, or one too
    subtle to measure), every face keeps the video's label.
    """
    if label == LABEL_REAL:
        return FaceLabels({f: LABEL_REAL for f in faces}, {f: None for f in faces}, "real")
    if changes is None:
        return FaceLabels({f: LABEL_FAKE for f in faces}, {f: None for f in faces}, "no_original")
    changed = {f for f in faces if changes.get(f, 0.0) > cfg.face_change_threshold}
    known = {f: changes.get(f) for f in faces}
    if not changed:
        return FaceLabels({f: LABEL_FAKE for f in faces}, known, "no_changed_face")
    labels = {f: LABEL_FAKE for f in changed}
    if cfg.unchanged_faces == "real":
        labels.update({f: LABEL_REAL for f in faces if f not in changed})
    return FaceLabels(labels, known, "changed", len(faces) - len(changed))
