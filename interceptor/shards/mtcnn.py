"""MTCNN (Zhang et al., 2016), the face detector of the DFDC winner: three small CNNs in cascade.

P-Net scans an image pyramid for face candidates, R-Net (24 px) and O-Net (48 px) re-score and refine them; each
stage regresses the boxes and drops overlaps (non-maximum suppression). The networks and the cascade follow
facenet-pytorch 2.6.0 (MIT licence), whose trained weights are used: three plain state dicts (``pnet.pt``,
``rnet.pt``, ``onet.pt``, 2 MB together) read from inside its wheel, or from a folder holding them, with
``torch.load(weights_only=True)``. The wheel itself is not installed (it pins torch < 2.3): ``make install``
downloads it with ``pip download --no-deps`` into :func:`default_weights`.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

VERSION = "2.6.0"  # the facenet-pytorch release whose weights these nets match (pinned in constraints.txt)
WHEEL = f"facenet_pytorch-{VERSION}-py3-none-any.whl"
NETS = ("pnet", "rnet", "onet")
_THRESHOLDS = (0.6, 0.7, 0.7)  # P-, R-, O-Net face probability to keep a candidate
_PYRAMID_STEP = 0.709  # scale ratio between pyramid levels
_CELL = 12  # P-Net's window, in pixels of a pyramid level; its stride is 2


def default_weights() -> Path:
    """Where ``make install`` puts the facenet-pytorch wheel: ``<venv>/share/interceptor/``."""
    return Path(sys.prefix) / "share" / "interceptor" / WHEEL


def read_state_dicts(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """The three nets' weights from the facenet-pytorch wheel at ``path``, or from a folder of ``<net>.pt``.

    Raises ValueError naming the file when one is missing or is not a plain state dict.
    """
    blobs = {}
    if path.is_dir():
        for net in NETS:
            file = path / f"{net}.pt"
            if not file.is_file():
                raise ValueError(f"{file}: no such file (the MTCNN weights are pnet.pt, rnet.pt, onet.pt)")
            blobs[net] = file.read_bytes()
    else:
        try:
            with zipfile.ZipFile(path) as wheel:
                for net in NETS:
                    blobs[net] = wheel.read(f"facenet_pytorch/data/{net}.pt")
        except (zipfile.BadZipFile, KeyError) as err:
            raise ValueError(f"{path}: not the facenet-pytorch wheel with the MTCNN weights ({err})") from None
    try:
        return {net: torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
                for net, blob in blobs.items()}
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for anything but tensors
        raise ValueError(f"{path}: the MTCNN weights do not load as plain state dicts: {err}") from None


class PNet(nn.Module):
    """Proposal net: fully convolutional, a face probability and a box offset per 12 px window (stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x)))))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement net on 24 px candidates: face probability and box offsets."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).flatten(1)  # the trained weights' (W, H, C) order
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48 px candidates: face probability and box offsets (its landmarks head is unused)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = self.pool2(self.prelu2(self.conv2(self.pool1(self.prelu1(self.conv1(x))))))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).flatten(1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), torch.softmax(self.dense6_1(x), dim=1)


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression of ``boxes`` (x0, y0, x1, y1, score); overlap is over the
    union, or over the smaller box (``by_min``)."""
    if not by_min:
        return nms(torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, 4]), threshold).numpy()
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order = np.argsort(boxes[:, 4])[::-1]
    keep = []
    while len(order):
        first, rest = order[0], order[1:]
        keep.append(first)
        w = np.maximum(0, np.minimum(boxes[first, 2], boxes[rest, 2]) - np.maximum(boxes[first, 0], boxes[rest, 0]) + 1)
        h = np.maximum(0, np.minimum(boxes[first, 3], boxes[rest, 3]) - np.maximum(boxes[first, 1], boxes[rest, 1]) + 1)
        order = rest[w * h / np.minimum(area[first], area[rest]) <= threshold]
    return np.array(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """The boxes made square around their centres (side: the longer one)."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2:4] = boxes[:, 0:2] + side[:, None]
    return boxes


def _regress(boxes: np.ndarray, offsets: np.ndarray, extra: float = 1.0) -> np.ndarray:
    """Apply a net's box offsets (fractions of the box's size, which is ``extra`` pixels more than x1 - x0)."""
    boxes = boxes.copy()
    size = np.stack([boxes[:, 2] - boxes[:, 0] + extra, boxes[:, 3] - boxes[:, 1] + extra] * 2, axis=1)
    boxes[:, :4] += offsets * size
    return boxes


def _normalise(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB to the nets' input: NCHW float, (v - 127.5) / 128."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) * 0.0078125


def _patches(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Each box's pixels (clipped to the image) resized to ``size`` x ``size``; black for a box outside it."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(np.trunc(boxes[:, :4]).astype(np.int64)):
        x0, y0, x1, y1 = max(x0, 1) - 1, max(y0, 1) - 1, min(x1, width), min(y1, height)
        if x0 < x1 and y0 < y1:
            out[k] = cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return out


class Mtcnn:
    """The three-stage cascade on an RGB image; :meth:`detect` gives boxes and O-Net's face probability."""

    def __init__(self, state_dicts: dict[str, dict[str, torch.Tensor]]):
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, name in zip((self.pnet, self.rnet, self.onet), NETS):
            net.load_state_dict(state_dicts[name])
            net.eval()

    @torch.inference_mode()
    def detect(self, image: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
        """Faces in ``image`` ((H, W, 3) uint8 RGB) of sides about ``min_side`` to ``max_side`` pixels:
        (N, 5) rows x0, y0, x1, y1, probability."""
        boxes = self._propose(image, max(min_side, _CELL), max_side)
        boxes = self._refine(image, boxes, self.rnet, 24, _THRESHOLDS[1])
        if len(boxes):
            boxes = self._refine(image, _square(boxes), self.onet, 48, _THRESHOLDS[2], last=True)
        return boxes

    @torch.inference_mode()
    def refine(self, image: np.ndarray, box) -> list[float] | None:
        """O-Net alone on ``box`` (x0, y0, x1, y1), made square: the regressed box and its face probability
        ``[x0, y0, x1, y1, probability]``, or None when O-Net sees no face there."""
        boxes = self._refine(image, _square(np.array([[*box, 1.0]], np.float32)), self.onet, 48, _THRESHOLDS[2],
                             last=True)
        return boxes[0].tolist() if len(boxes) else None

    def _propose(self, image: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
        height, width = image.shape[:2]
        scale = _CELL / min_side
        found = []
        while min(height, width) * scale >= _CELL and _CELL / scale <= max_side / _PYRAMID_STEP:
            level = cv2.resize(image, (int(width * scale + 1), int(height * scale + 1)), interpolation=cv2.INTER_AREA)
            offsets, prob = self.pnet(_normalise(level[None]))
            ys, xs = np.nonzero(prob[0, 1].numpy() >= _THRESHOLDS[0])
            if len(ys):
                cells = np.stack([xs, ys], axis=1).astype(np.float32)
                boxes = np.concatenate([np.floor((2 * cells + 1) / scale), np.floor((2 * cells + _CELL) / scale),
                                        prob[0, 1].numpy()[ys, xs, None], offsets[0].numpy()[:, ys, xs].T], axis=1)
                found.append(boxes[_nms(boxes[:, :5], 0.5)])
            scale *= _PYRAMID_STEP
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[_nms(boxes[:, :5], 0.7)]
        return _square(_regress(boxes[:, :5], boxes[:, 5:9], extra=0.0))

    def _refine(self, image: np.ndarray, boxes: np.ndarray, net: nn.Module, size: int, threshold: float,
                last: bool = False) -> np.ndarray:
        if not len(boxes):
            return boxes
        offsets, prob = (t.numpy() for t in net(_normalise(_patches(image, boxes, size))))
        keep = prob[:, 1] > threshold
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1).astype(np.float32)
        offsets = offsets[keep]
        if last:
            boxes = _regress(boxes, offsets)
            return boxes[_nms(boxes, 0.7, by_min=True)]
        pick = _nms(boxes, 0.7)
        return _square(_regress(boxes[pick], offsets[pick]))
