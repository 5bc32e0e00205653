"""Measurements of the planted artifacts on decoded video, independent of the generator's code.

Each function takes decoded frames (and the manifest's ground-truth face boxes) and returns a number that a
fake of that family should move relative to its original.
"""

from __future__ import annotations

import av
import cv2
import numpy as np


def decode_frames(path, every: int = 1) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(container.decode(video=0)) if i % every == 0]


def decode_audio(path, rate: int = 16000) -> np.ndarray:
    """Mono float audio resampled to ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks)


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def inner_face(box, shrink: float = 0.25) -> tuple[slice, slice]:
    """The central part of a face box, well inside the blending mask."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return slice(int(y0 + shrink * h), int(y1 - shrink * h)), slice(int(x0 + shrink * w), int(x1 - shrink * w))


def blockiness(frames, boxes) -> float:
    """Mean gradient across 8-pixel block boundaries over mean gradient elsewhere, in the inner face."""
    ratios = []
    for rgb, box in zip(frames, boxes):
        rows, cols = inner_face(box, 0.2)
        y = luma(rgb)
        dx = np.abs(np.diff(y, axis=1))[rows, cols.start:cols.stop - 1]  # dx[:, j] is between j and j+1
        dy = np.abs(np.diff(y, axis=0))[rows.start:rows.stop - 1, cols]
        xs = np.arange(cols.start, cols.stop - 1)
        ys = np.arange(rows.start, rows.stop - 1)
        on = np.concatenate([dx[:, (xs % 8) == 7].ravel(), dy[(ys % 8) == 7].ravel()])
        off = np.concatenate([dx[:, (xs % 8) != 7].ravel(), dy[(ys % 8) != 7].ravel()])
        ratios.append(on.mean() / max(off.mean(), 1e-6))
    return float(np.mean(ratios))


def high_frequency(frames, boxes) -> float:
    """Mean absolute Laplacian of the inner face (detail and noise energy)."""
    return float(np.mean([np.abs(cv2.Laplacian(luma(f), cv2.CV_32F))[inner_face(b)].mean()
                          for f, b in zip(frames, boxes)]))


def temporal_change(frames, boxes) -> float:
    """Mean absolute frame-to-frame change of the inner face's low-passed luma (motion and flicker, not noise)."""
    smooth = [cv2.GaussianBlur(luma(f), (0, 0), 2.0) for f in frames]
    changes = []
    for a, b, box in zip(smooth[:-1], smooth[1:], boxes[:-1]):
        region = inner_face(box)
        changes.append(np.abs(a[region] - b[region]).mean())
    return float(np.mean(changes))


def mouth_motion(frames, boxes, mouth_in_box) -> np.ndarray:
    """Darkness of the mouth region per frame: rises as the mouth opens."""
    values = []
    for rgb, (x0, y0, x1, y1) in zip(frames, boxes):
        w, h = x1 - x0, y1 - y0
        mx, my = x0 + mouth_in_box[0] * w, y0 + mouth_in_box[1] * h
        region = luma(rgb)[int(my - 0.06 * h):int(my + 0.1 * h), int(mx - 0.15 * w):int(mx + 0.15 * w)]
        values.append(-region.mean())
    return np.asarray(values)


def audio_envelope(audio: np.ndarray, rate: int, fps: float, n_frames: int) -> np.ndarray:
    """RMS loudness of the audio in each video frame's time window."""
    hop = rate / fps
    return np.asarray([np.sqrt(np.mean(audio[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n_frames)])


def av_sync(frames, boxes, mouth_in_box, audio, rate, fps) -> float:
    """Correlation between mouth motion and audio loudness (high in sync, low when shifted or unrelated)."""
    mouth = mouth_motion(frames, boxes, mouth_in_box)
    env = audio_envelope(audio, rate, fps, len(frames))
    return float(np.corrcoef(mouth, env)[0, 1])


def face_noise(frames, boxes) -> float:
    """Sensor-noise level of the inner face: residual after a 3x3 median filter."""
    out = []
    for rgb, box in zip(frames, boxes):
        y = luma(rgb)
        residual = y - cv2.medianBlur(y.astype(np.uint8), 3).astype(np.float32)
        out.append(np.abs(residual[inner_face(box)]).mean())
    return float(np.mean(out))


def face_to_background_luma(frames, boxes) -> float:
    """Inner-face luma over the luma of the whole frame outside the face box."""
    out = []
    for rgb, (x0, y0, x1, y1) in zip(frames, boxes):
        y = luma(rgb)
        outside = np.ones(y.shape, bool)
        outside[max(0, int(y0)):int(y1), max(0, int(x0)):int(x1)] = False
        out.append(y[inner_face((x0, y0, x1, y1))].mean() / max(y[outside].mean(), 1e-3))
    return float(np.mean(out))


def face_lighting(frames, boxes) -> np.ndarray:
    """Lighting signature of the inner face: (log red/blue ratio, log right/left luma ratio)."""
    out = []
    for rgb, box in zip(frames, boxes):
        region = rgb[inner_face(box)].astype(np.float32) + 1
        half = region.shape[1] // 2
        y = region.mean(axis=2)
        out.append((np.log(region[..., 0].mean() / region[..., 2].mean()),
                    np.log(y[:, half:].mean() / y[:, :half].mean())))
    return np.mean(out, axis=0)
