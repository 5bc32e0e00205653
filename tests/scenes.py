"""Small hand-made videos for the real-video tests: synthetic scenes (one or two people, as the corpus renders
them), optionally with one person's face altered, written as H.264 MP4 with an optional display rotation."""

from __future__ import annotations

from pathlib import Path

import av
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


# Where the face is in the first 60 frames of each real DFDC sample video (1920x1080; the person barely moves),
# and the square around it that two_person_video scales to 360 px so that both faces are about 120 px high.
DFDC_FACE_SQUARES = {"abofeumbvv.mp4": (766, 51, 360), "abqwwspghj.mp4": (600, 0, 600)}  # left, top, side


def two_person_video(sample: Path, path: Path, frames: int = 60, swap_right_face: bool = False) -> Path:
    """The two real DFDC sample videos side by side (720x360, a frontal face of about 120 px in each half); with
    ``swap_right_face`` the right person's face is replaced by the left person's (a crude face swap: the same
    frames elsewhere, so only that face differs from the plain video)."""
    halves = []
    for name, (left, top, side) in DFDC_FACE_SQUARES.items():
        with av.open(str(sample / "dfdc_train_part_0" / name)) as container:
            decoded = (f.to_ndarray(format="rgb24") for f in container.decode(video=0))
            halves.append([cv2.resize(image[top:top + side, left:left + side], (360, 360), interpolation=cv2.INTER_AREA)
                           for _, image in zip(range(frames), decoded)])
    writer = Mp4Writer(path, 720, 360, 25, 18)
    for left, right in zip(*halves):
        if swap_right_face:
            right = right.copy()
            right[65:185, 130:230] = left[120:240, 130:230]  # the face areas of the two halves
        writer.write(np.hstack([left, right]))
    return writer.close()
