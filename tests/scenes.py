"""Small hand-made videos for the real-video tests: synthetic scenes (one or two people, as the corpus renders
them), optionally with one person's face altered, written as H.264 MP4 with an optional display rotation."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from interceptor.synth.encode import Mp4Writer
from interceptor.synth.scene import SceneRenderer, face_mask, sample_scene


def render_scene(seed: int, frames: int = 40, width: int = 320, height: int = 180, two_people: bool = False,
                 alter: int | None = None) -> tuple[list[np.ndarray], list[list[list[float]]]]:
    """RGB frames of a scene and each person's per-frame face boxes (main talker first).

    ``alter``: the person whose face is altered (a strong blur and colour shift inside the face mask, as a face
    swap blends a pasted face), or None for the untouched original.
    """
    scene = sample_scene(np.random.default_rng(seed), width, height, 25, frames / 25, identity=seed % 7,
                         two_people=two_people)
    renderer = SceneRenderer(scene)
    images, boxes = [], [[] for _ in scene.people]
    for index in range(scene.n_frames):
        layers = renderer.render(index)
        frame = layers.clean + layers.noise
        if alter is not None:
            mask = face_mask((height, width), layers.boxes[alter])[0][..., None]
            changed = cv2.GaussianBlur(frame, (0, 0), 3) * np.float32([1.25, 0.9, 0.8])
            frame = frame * (1 - mask) + changed * mask
        images.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        for person, box in enumerate(layers.boxes):
            boxes[person].append([float(v) for v in box])
    return images, boxes


def write_video(path: Path, frames: list[np.ndarray], rotation: int = 0, crf: int = 18) -> Path:
    """Write upright ``frames``; with ``rotation`` (degrees counter-clockwise) the file stores them turned the
    other way and a display matrix that turns them back, as a phone does."""
    coded = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in frames]
    writer = Mp4Writer(path, coded[0].shape[1], coded[0].shape[0], 25, crf, rotation=rotation)
    for frame in coded:
        writer.write(frame)
    return writer.close()
