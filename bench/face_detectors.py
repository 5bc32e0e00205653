#!/usr/bin/env python3
"""Face detectors' recall and cost per frame on real DFDC frames: mtcnn against haar.

    python bench/face_detectors.py [--sample DFDC_SAMPLE] [--step 10] [KEY=VALUE ...]

Every ``--step``-th frame of each video of the real DFDC sample (one person per video) is arranged three ways:

- ``dfdc 1080p``: the frame as it is (faces about 100-130 px high);
- ``two people``: 360 x 360 squares around the face of each of two videos, side by side (720 x 360, faces about
  120 px, frontal): what a two-person DFDC video looks like to the builder;
- ``small faces``: four frames at half size in a 2 x 2 grid (1920 x 1080, four faces of about 50-65 px).

The reference boxes are MTCNN's on the full 1080p frame (levels stretched), one face per frame, moved and scaled
with the arrangement. A detector runs as the builder's full-frame pass does (``detector.size``, ``min_face``,
one thread); a reference face counts as found when a detection overlaps it by IoU >= 0.4; a detection
overlapping no reference face is a false one. ``follow`` is the per-face cost of following a face found on the
previous detection frame (haar: a window search; mtcnn: O-Net on the last box). The results go in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interceptor.config import load_config  # noqa: E402
from interceptor.schema import DetectorConfig  # noqa: E402
from interceptor.shards.faces import BACKENDS, iou  # noqa: E402

_MATCH = 0.4  # IoU of a detection with a reference face for it to count as found


def sampled_frames(path: Path, step: int) -> list[np.ndarray]:
    """Every ``step``-th frame of the video, RGB."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for i, frame in enumerate(container.decode(video=0)) if i % step == 0]


def reference_box(frame: np.ndarray, cfg: DetectorConfig) -> tuple[float, ...]:
    """The one face of a DFDC sample frame: MTCNN's most probable box on the full frame."""
    found = BACKENDS["mtcnn"](cfg).detect(frame, int(cfg.min_face * frame.shape[0]), max(frame.shape[:2]))
    if not found:
        raise SystemExit("the reference detector found no face in a sample frame")
    x, y, w, h, _ = max(found, key=lambda f: f[4])
    return x, y, x + w, y + h


def two_people(a, box_a, b, box_b, side: int = 360):
    """Squares of ``side`` around each face, side by side; the faces' boxes in the new image."""
    halves, boxes = [], []
    for k, (frame, box) in enumerate(((a, box_a), (b, box_b))):
        height, width = frame.shape[:2]
        left = int(min(max(0, (box[0] + box[2]) / 2 - side / 2), width - side))
        top = int(min(max(0, (box[1] + box[3]) / 2 - side / 2), height - side))
        halves.append(frame[top:top + side, left:left + side])
        boxes.append((box[0] - left + k * side, box[1] - top, box[2] - left + k * side, box[3] - top))
    return np.hstack(halves), boxes


def small_faces(frames, boxes):
    """Four frames at half size in a 2 x 2 grid; the faces' boxes in it."""
    height, width = frames[0].shape[:2]
    tiles = [cv2.resize(f, (width // 2, height // 2), interpolation=cv2.INTER_AREA) for f in frames]
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    offsets = [(0, 0), (width // 2, 0), (0, height // 2), (width // 2, height // 2)]
    return grid, [(b[0] / 2 + x, b[1] / 2 + y, b[2] / 2 + x, b[3] / 2 + y) for b, (x, y) in zip(boxes, offsets)]


def measure(backend_name: str, cfg: DetectorConfig, images) -> dict:
    """Recall, false detections and the cost of a full-frame pass and of following, over ``images``."""
    backend = BACKENDS[backend_name](cfg)
    found = faces = false = 0
    full, follow = [], []
    for image, truth in images:
        scale = min(1.0, cfg.size / max(image.shape[:2]))
        small = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
        small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if backend.pix_fmt == "gray" else small
        start = time.perf_counter()
        detections = backend.detect(small, max(1, int(cfg.min_face * small.shape[0])), max(small.shape[:2]))
        full.append(time.perf_counter() - start)
        boxes = [(x / scale, y / scale, (x + w) / scale, (y + h) / scale) for x, y, w, h, _ in detections]
        faces += len(truth)
        found += sum(any(iou(t, b) >= _MATCH for b in boxes) for t in truth)
        false += sum(not any(iou(t, b) >= _MATCH for t in truth) for b in boxes)
        for t in truth:
            start = time.perf_counter()
            backend.follow(small, tuple(v * scale for v in t))
            follow.append(time.perf_counter() - start)
    return {"recall": found / faces, "found": found, "faces": faces, "false": false,
            "full_ms": 1000 * statistics.median(full), "follow_ms": 1000 * statistics.median(follow)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", default=str(Path(__file__).resolve().parents[2] / "shared/data/dfdc_sample"),
                        help="the real DFDC sample folder (default: ../shared/data/dfdc_sample)")
    parser.add_argument("--step", type=int, default=10, help="every n-th frame of each video")
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    cfg = load_config("default", overrides).shards.detector
    videos = sorted(Path(args.sample).rglob("*.mp4"))
    if len(videos) < 2:
        raise SystemExit(f"{args.sample}: need two videos of the real DFDC sample")
    frames = [sampled_frames(v, args.step) for v in videos[:2]]
    count = min(map(len, frames))
    refs = [[reference_box(f, cfg) for f in video[:count]] for video in frames]
    sets = {
        "dfdc 1080p": [(f, [refs[v][i]]) for v in range(2) for i, f in enumerate(frames[v][:count])],
        "two people": [two_people(frames[0][i], refs[0][i], frames[1][i], refs[1][i]) for i in range(count)],
        "small faces": [small_faces([frames[0][i], frames[1][i], frames[1][i], frames[0][i]],
                                    [refs[0][i], refs[1][i], refs[1][i], refs[0][i]]) for i in range(count)],
    }
    print(f"{', '.join(v.name for v in videos[:2])}: {count} frames each (every {args.step}th); detection at "
          f"{cfg.size} px, min_face {cfg.min_face}; haar scale {cfg.scale_factor}, {cfg.min_neighbors} neighbours")
    print("| set | detector | recall | false detections | full-frame pass, ms | follow, ms per face |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, images in sets.items():
        for backend in ("haar", "mtcnn"):
            r = measure(backend, cfg, images)
            print(f"| {name} | {backend} | {r['recall']:.2f} ({r['found']}/{r['faces']}) | {r['false']} | "
                  f"{r['full_ms']:.1f} | {r['follow_ms']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
