"""Real face photographs shipped inside pip packages, turned into animatable portrait sprites.

Two photographs carry the corpus: scikit-image's ``astronaut`` (Eileen Collins) and matplotlib's
``grace_hopper`` sample image. Identities are variations of them (mirroring, skin tone, contrast), enough for
the identity-named file layouts of FF++ and Celeb-DF. Each sprite knows where its face box and mouth are, so
the renderer can open the mouth in step with the audio and report ground-truth face boxes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Photo:
    """A source photograph with its face box (as OpenCV's frontal Haar cascade finds it) and mouth centre."""

    name: str
    face_box: tuple[int, int, int, int]  # x, y, w, h in photo pixels
    mouth: tuple[int, int]  # x, y in photo pixels


PHOTOS = (
    Photo("astronaut", face_box=(177, 66, 95, 95), mouth=(223, 144)),
    Photo("grace_hopper", face_box=(155, 105, 222, 222), mouth=(263, 274)),
)


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """RGB uint8 pixels of a bundled photograph."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut())
    if name == "grace_hopper":
        from matplotlib import cbook
        from matplotlib.image import imread

        return np.ascontiguousarray(imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    raise KeyError(f"unknown photo {name!r}")


@dataclass(frozen=True)
class Sprite:
    """An RGBA head-and-shoulders cut-out with its face box and mouth in sprite coordinates."""

    rgba: np.ndarray  # float32 (h, w, 4), colour in [0, 255], alpha in [0, 1]
    face_box: tuple[float, float, float, float]  # x, y, w, h
    mouth: tuple[float, float]


# Identity variations: (mirror, per-channel skin gains, contrast). Index i maps to one combination.
_TONES = (
    (1.00, 1.00, 1.00),
    (1.06, 0.98, 0.90),
    (0.92, 0.96, 1.06),
    (1.10, 1.02, 0.94),
    (0.86, 0.88, 0.92),
)
_CONTRASTS = (1.0, 1.12, 0.9)


def identity_count() -> int:
    return len(PHOTOS) * 2 * len(_TONES) * len(_CONTRASTS)


@functools.lru_cache(maxsize=None)
def make_sprite(identity: int) -> Sprite:
    """The portrait sprite of ``identity`` (deterministic; cached per process)."""
    photo = PHOTOS[identity % len(PHOTOS)]
    mirror = (identity // len(PHOTOS)) % 2 == 1
    tone = _TONES[(identity // (2 * len(PHOTOS))) % len(_TONES)]
    contrast = _CONTRASTS[(identity // (2 * len(PHOTOS) * len(_TONES))) % len(_CONTRASTS)]

    pixels = load_photo(photo.name).astype(np.float32)
    x, y, w, h = photo.face_box
    # Head and shoulders: the face box widened 2.3x and stretched down to the shoulders.
    cx, cy = x + w / 2, y + h * 0.62
    half_w, half_h = w * 1.15, h * 1.3
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    x1, y1 = int(min(pixels.shape[1], cx + half_w)), int(min(pixels.shape[0], cy + half_h))
    rgb = pixels[y0:y1, x0:x1].copy()
    mean = rgb.mean(axis=(0, 1), keepdims=True)
    rgb = np.clip((rgb - mean) * contrast + mean, 0, 255) * np.asarray(tone, np.float32)
    rgb = np.clip(rgb, 0, 255)

    sh, sw = rgb.shape[:2]
    # Silhouette: a head ellipse around the face box and a wider one for the shoulders.
    face_box = (x - x0, y - y0, float(w), float(h))
    fcx = face_box[0] + w / 2
    alpha = np.zeros((sh, sw), np.float32)
    cv2.ellipse(alpha, (int(fcx), int(face_box[1] + 0.42 * h)), (int(0.7 * w), int(0.88 * h)), 0, 0, 360, 1.0, -1)
    cv2.ellipse(alpha, (int(fcx), int(face_box[1] + 2.05 * h)), (int(1.15 * w), int(0.95 * h)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=max(1.0, w * 0.04))
    mouth = (photo.mouth[0] - x0, photo.mouth[1] - y0)
    if mirror:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
        face_box = (sw - face_box[0] - face_box[2], face_box[1], face_box[2], face_box[3])
        mouth = (sw - mouth[0], mouth[1])
    rgba = np.ascontiguousarray(np.dstack([rgb, alpha]).astype(np.float32))
    return Sprite(rgba=rgba, face_box=tuple(float(v) for v in face_box), mouth=tuple(float(v) for v in mouth))


def open_mouth(sprite: Sprite, opening: float) -> np.ndarray:
    """A copy of the sprite's RGBA with the mouth opened by ``opening`` in [0, 1] (dark oral cavity)."""
    rgba = sprite.rgba.copy()
    if opening <= 0.02:
        return rgba
    fw, fh = sprite.face_box[2], sprite.face_box[3]
    mx, my = sprite.mouth
    half_w = max(2.0, 0.17 * fw)
    half_h = max(1.0, 0.085 * fh * opening)
    pad = int(half_w + 4)
    x0, y0 = int(max(0, mx - pad)), int(max(0, my - pad))
    x1, y1 = int(min(rgba.shape[1], mx + pad)), int(min(rgba.shape[0], my + pad))
    patch = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(patch, (int(mx - x0), int(my - y0 + half_h * 0.3)), (int(half_w), int(half_h)), 0, 0, 360, 1.0, -1)
    patch = cv2.GaussianBlur(patch, (0, 0), sigmaX=max(0.8, fw * 0.012))[..., None]
    cavity = np.asarray([58.0, 22.0, 24.0], np.float32)
    region = rgba[y0:y1, x0:x1, :3]
    rgba[y0:y1, x0:x1, :3] = region * (1 - 0.9 * patch) + cavity * 0.9 * patch
    return rgba
