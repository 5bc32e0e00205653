"""Face detection on every k-th frame, behind one interface.

Image backends find faces in an image:

- ``mtcnn`` (default): the MTCNN cascade of CNNs (:mod:`interceptor.shards.mtcnn`), with facenet-pytorch's
  weights read from its wheel (``detector.weights``; ``make install`` downloads it);
- ``haar``: OpenCV's frontal-face Haar cascade, whose weights ship inside the opencv pip package: the fallback
  that needs nothing, and the synthetic demo's detector;
- ``yunet``: OpenCV's YuNet CNN (``cv2.FaceDetectorYN``), given its ONNX weights (``detector.weights``).

Another one (RetinaFace, ...) is a class with ``pix_fmt``, ``detect(image, min_side, max_side)`` and
``follow(image, box)`` (:func:`search_window` will do) added to :data:`BACKENDS` and to ``DetectorConfig.backend``.

:class:`TrackingDetector` runs an image backend on a video's frames, downscaled so that their longest side is
``detector.size``: a full-frame detection on every ``detector.full_every``-th call (and whenever a followed face
is lost, or none is followed), and in between each face found last time is only followed (``follow``: Haar and
YuNet detect in a window around it, MTCNN runs its last stage, O-Net, on the last box), which costs a small
fraction of a full-frame pass.

The ``boxes`` backend reads precomputed boxes instead (the synthetic corpus's ground truth, or any detector run
offline): a JSON file ``{path relative to the dataset root: [[[x0, y0, x1, y1], ...boxes in frame i], ...]}``,
in upright pixels (after the display rotation).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from interceptor.config import ConfigError, resolve_path
from interceptor.schema import DetectorConfig
from interceptor.shards.mtcnn import VERSION, Mtcnn, default_weights, read_state_dicts
from interceptor.shards.video import UprightFrame, VideoError
from interceptor.utils import read_json

_WINDOW = 2.0  # side of the re-detection window around a followed face, in face sizes
_SIZE_RANGE = (0.6, 1.6)  # the face's size there, relative to its last size


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in source pixels
    score: float  # backend-specific confidence, higher is surer


class FaceDetector(Protocol):
    """What the decoder calls on every k-th frame of one video."""

    def __call__(self, frame: UprightFrame, index: int) -> list[Detection]:
        """Faces in ``frame``, the ``index``-th frame of the video, in source pixels."""


class ImageBackend(Protocol):
    pix_fmt: str  # the image format detect() takes: gray, rgb24 or bgr24

    def detect(self, image: np.ndarray, min_side: int, max_side: int) -> list[tuple[float, float, float, float, float]]:
        """Faces ``(x, y, w, h, score)`` in ``image`` pixels, of sides between ``min_side`` and ``max_side``."""

    def follow(self, image: np.ndarray, box) -> list[tuple[float, float, float, float, float]]:
        """The face last seen at ``box`` (x0, y0, x1, y1), found again in ``image``: ``[(x0, y0, x1, y1, score)]``,
        or ``[]`` when it is lost."""


def search_window(backend: ImageBackend, image: np.ndarray, box) -> list[tuple[float, float, float, float, float]]:
    """The face near ``box`` again, searched by ``backend.detect`` in a window around it (a small fraction of a
    full-frame pass): the candidate overlapping it most."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    half = side * _WINDOW / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(image.shape[1], int(cx + half)), min(image.shape[0], int(cy + half))
    window = image[top:bottom, left:right]
    low, high = int(side * _SIZE_RANGE[0]), int(side * _SIZE_RANGE[1])
    candidates = [(x + left, y + top, x + left + w, y + top + h, s)
                  for x, y, w, h, s in backend.detect(window, max(1, low), max(low + 1, high))]
    return [max(candidates, key=lambda c: iou(c, box))] if candidates else []


@functools.lru_cache(maxsize=None)
def _haar_cascade() -> cv2.CascadeClassifier:
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"{path}: cannot load OpenCV's Haar face cascade")
    return cascade


class HaarBackend:
    """OpenCV's frontal-face Haar cascade on the equalised grey image; the score is the cascade's level weight."""

    pix_fmt = "gray"

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        self.cascade = _haar_cascade()

    def detect(self, image: np.ndarray, min_side: int, max_side: int):
        if self.cfg.equalize:
            image = cv2.equalizeHist(image)
        boxes, _, weights = self.cascade.detectMultiScale3(
            image, scaleFactor=self.cfg.scale_factor, minNeighbors=self.cfg.min_neighbors,
            minSize=(min_side, min_side), maxSize=(max_side, max_side), outputRejectLevels=True)
        return [(*map(float, box), float(weight)) for box, weight in zip(boxes, weights)]

    follow = search_window


class YuNetBackend:
    """OpenCV's YuNet face detector (``cv2.FaceDetectorYN``) with user-supplied ONNX weights."""

    pix_fmt = "bgr24"

    def __init__(self, cfg: DetectorConfig):
        if not cfg.weights:
            raise ConfigError("shards.detector.weights: the yunet backend needs the path of its ONNX model "
                              "(face_detection_yunet_2023mar.onnx from the OpenCV model zoo)")
        weights = resolve_path(cfg.weights)
        if not weights.is_file():
            raise ConfigError(f"shards.detector.weights: {weights}: no such file")
        self.model = _yunet_model(str(weights), cfg.score_threshold)

    def detect(self, image: np.ndarray, min_side: int, max_side: int):
        self.model.setInputSize((image.shape[1], image.shape[0]))
        _, faces = self.model.detect(np.ascontiguousarray(image))
        return [(*map(float, face[:4]), float(face[-1])) for face in (faces if faces is not None else [])
                if min_side <= min(face[2], face[3]) and max(face[2], face[3]) <= max_side]

    follow = search_window


@functools.lru_cache(maxsize=2)
def _yunet_model(weights: str, score_threshold: float):
    return cv2.FaceDetectorYN.create(weights, "", (320, 320), score_threshold)


class MtcnnBackend:
    """MTCNN with facenet-pytorch's weights (``detector.weights``: its wheel, or a folder of the three ``.pt``);
    the score is O-Net's face probability."""

    pix_fmt = "rgb24"

    def __init__(self, cfg: DetectorConfig):
        self.cfg = cfg
        weights = resolve_path(cfg.weights) if cfg.weights else default_weights()
        if not weights.exists():
            raise ConfigError(
                f"shards.detector.weights: {weights}: no such file; the mtcnn backend reads its weights from the "
                f"facenet-pytorch {VERSION} wheel, which `make install` downloads (pip download --no-deps "
                f"facenet-pytorch=={VERSION} -d {default_weights().parent}); or set shards.detector.backend=haar, "
                "which needs nothing")
        try:
            self.model = _mtcnn_model(str(weights))
        except ValueError as err:
            raise ConfigError(f"shards.detector.weights: {err}") from None

    def detect(self, image: np.ndarray, min_side: int, max_side: int):
        image = stretch_levels(image) if self.cfg.equalize else image
        return [(x0, y0, x1 - x0, y1 - y0, score)
                for x0, y0, x1, y1, score in self.model.detect(image, min_side, max_side).tolist()]

    def follow(self, image: np.ndarray, box):
        """O-Net on the last box (about 1 ms): its box regression follows the face while it moves by a fraction
        of its size; a window search when O-Net no longer sees a face there. The levels are stretched in the box
        and a margin of half its size around it."""
        x0, y0, x1, y1 = box
        pad = max(x1 - x0, y1 - y0) / 2
        left, top = max(0, int(x0 - pad)), max(0, int(y0 - pad))
        window = image[top:min(image.shape[0], int(y1 + pad) + 1), left:min(image.shape[1], int(x1 + pad) + 1)]
        if not window.size:  # the box left the picture
            return []
        found = self.model.refine(stretch_levels(window) if self.cfg.equalize else window,
                                  (x0 - left, y0 - top, x1 - left, y1 - top))
        if found is None:
            return search_window(self, image, box)
        return [(found[0] + left, found[1] + top, found[2] + left, found[3] + top, found[4])]


def stretch_levels(image: np.ndarray) -> np.ndarray:
    """``image`` (uint8) with its 1st to 99th percentile levels stretched to 0-255: a dim face (a dark room)
    gets the contrast MTCNN was trained on."""
    cumulative = np.cumsum(np.bincount(image.ravel(), minlength=256))
    low, high = np.searchsorted(cumulative, [0.01 * cumulative[-1], 0.99 * cumulative[-1]])
    ramp = (np.arange(256, dtype=np.float32) - low) * (255 / max(1, high - low))
    return cv2.LUT(image, np.clip(ramp, 0, 255).astype(np.uint8))


@functools.lru_cache(maxsize=2)
def _mtcnn_model(weights: str) -> Mtcnn:
    return Mtcnn(read_state_dicts(Path(weights)))


BACKENDS = {"mtcnn": MtcnnBackend, "haar": HaarBackend, "yunet": YuNetBackend}


class TrackingDetector:
    """An image backend run on a video's frames: full-frame passes, and faces followed cheaply in between."""

    def __init__(self, backend: ImageBackend, cfg: DetectorConfig):
        self.backend = backend
        self.cfg = cfg
        self.calls = 0
        self.followed: list[tuple[float, float, float, float]] = []  # last boxes, detection-image pixels

    def __call__(self, frame: UprightFrame, index: int) -> list[Detection]:
        scale = min(1.0, self.cfg.size / max(frame.width, frame.height))
        width, height = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
        image = frame.image(self.backend.pix_fmt, width, height)
        scale = width / frame.width
        found = []
        if self.followed and self.calls % self.cfg.full_every:
            found = [face for box in self.followed for face in self.backend.follow(image, box)]
        if len(found) < len(self.followed) or not found:  # a face lost (or none followed): look everywhere
            min_side = max(1, int(self.cfg.min_face * height))
            found = [(x, y, x + w, y + h, s)
                     for x, y, w, h, s in self.backend.detect(image, min_side, max(width, height))]
        self.calls += 1
        self.followed = [f[:4] for f in found]
        return [Detection(tuple(v / scale for v in f[:4]), f[4]) for f in found]


def _boxes_path(cfg: DetectorConfig) -> str:
    if not cfg.boxes_file:
        raise ConfigError("shards.detector.boxes_file: the boxes backend needs a JSON file of per-frame boxes")
    return str(resolve_path(cfg.boxes_file))


@functools.lru_cache(maxsize=4)
def _boxes_file(path: str) -> dict:
    data = read_json(path, "boxes file")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: malformed boxes file: expected a mapping of video path to per-frame boxes")
    return data


class PrecomputedBoxes:
    """The ``boxes`` backend: per-frame boxes of one video, looked up in ``detector.boxes_file``; score 1."""

    def __init__(self, cfg: DetectorConfig, video: str | None):
        path = _boxes_path(cfg)
        if video is None:
            raise ConfigError("shards.detector.backend: 'boxes' needs the video's path in its dataset; "
                              "use a detecting backend (mtcnn, haar, yunet) for a single video")
        frames = _boxes_file(path).get(video)
        if frames is None:
            raise VideoError(f"no precomputed boxes for it in {path}")
        self.frames = frames

    def __call__(self, frame: UprightFrame, index: int) -> list[Detection]:
        if index >= len(self.frames):
            return []
        return [Detection(tuple(float(v) for v in box), 1.0) for box in self.frames[index]]


def check_detector(cfg: DetectorConfig) -> None:
    """Fail early, naming the key or file, if the configured detector cannot be built."""
    if cfg.backend == "boxes":
        _boxes_file(_boxes_path(cfg))
    else:
        make_detector(cfg)


def make_detector(cfg: DetectorConfig, video: str | None = None) -> FaceDetector:
    """A fresh detector for one video; ``video`` (its path relative to the dataset root) is needed by ``boxes``."""
    if cfg.backend == "boxes":
        return PrecomputedBoxes(cfg, video)
    return TrackingDetector(BACKENDS[cfg.backend](cfg), cfg)
