"""Pseudo-fakes: real face crops turned into fakes of one artifact family, on the fly (``data.pseudo_fakes``).

In the manner of Self-Blended Images (Shiohara and Yamasaki, CVPR 2022): a real clip is altered inside a soft,
randomly shaped face mask, so the altered face is blended into its own untouched surroundings, and labelled
fake. Each specialist gets pseudo-fakes of its own family only, so every real video of every dataset becomes
training material for the artifact its module looks for. Nothing here knows how any dataset's fakes were
made (the synthetic corpus's generator is never used): each family is a generic image operation with wide,
randomised strength.

A maker takes ``(T, H, W, 3)`` uint8 RGB frames (the frames the model will see, before augmentation), the
clip's int16 audio or None, an RNG, the crop's context margin and another real clip's audio (or None), and
returns the altered frames and audio, or None where the clip cannot carry the family (AV without audio).
Each specialist names its maker in its own file (``pseudo_fake``).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Maker = Callable[..., "tuple[np.ndarray, np.ndarray | None] | None"]
MASK_MIN_SIDE = 96  # px: the smallest side a face mask is drawn at before it is enlarged to the crop
ELLIPSE_SHIFT = 4  # fractional bits of the mask ellipse's coordinates


def face_mask(height: int, width: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 1) float32 blend mask in [0, 1]: a randomly sized, shifted and blurred ellipse over the face box.

    A crop with ``margin`` context per side has its face box from ``margin / (1 + 2 margin)`` to
    ``(1 + margin) / (1 + 2 margin)`` of each side.
    """
    side = 1 / (1 + 2 * margin)
    cy, cx = (0.5 + rng.uniform(-0.06, 0.06, size=2) * side) * (height, width)
    ry, rx = rng.uniform(0.36, 0.55, size=2) * side * np.array([height, width])
    # The blurred mask is smooth: large crops draw and blur it at 1/factor of their size (at least 96 px), then
    # enlarge it. At 380 px that takes 0.3 ms instead of 7.6, and the mask differs from the full-size one by at
    # most 0.06 (0.02 for the median mask), far inside the spread of its random size and softness.
    factor = max(1, min(height, width) // MASK_MIN_SIDE)
    small = (-(-height // factor), -(-width // factor))
    mask = np.zeros(small, np.float32)
    fixed = 1 << ELLIPSE_SHIFT  # sub-pixel centre and axes (OpenCV's fixed-point coordinates)
    low_x, low_y = (cx + 0.5) / factor - 0.5, (cy + 0.5) / factor - 0.5  # pixel centres, as cv2.resize maps them
    grow = 0.5 - 0.5 / factor  # a filled ellipse covers its boundary pixels: half a pixel more than its axes
    cv2.ellipse(mask, (int(round(low_x * fixed)), int(round(low_y * fixed))),
                tuple(max(fixed, int(round((r / factor - grow) * fixed))) for r in (rx, ry)),
                float(rng.uniform(-15, 15)), 0, 360, 1.0, -1, cv2.LINE_AA, ELLIPSE_SHIFT)
    sigma = float(rng.uniform(0.04, 0.12)) * side * min(height, width) / factor
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=max(sigma, 0.5 / factor))
    if factor > 1:
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    return mask[..., None]


BLEND_FLOOR = 1 / 512  # mask weight under which a blend moves no pixel by half a grey level
FILTER_PAD = 16  # px of context around the mask's box that the makers' filters and warps read


def _mask_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns a blend with ``mask`` can change (weights from ``BLEND_FLOOR`` up), widened by
    ``FILTER_PAD`` so that the makers' filters see the same neighbourhood inside it as on the whole crop."""
    height, width = mask.shape[:2]
    rows = np.flatnonzero(mask[:, :, 0].max(axis=1) >= BLEND_FLOOR)
    cols = np.flatnonzero(mask[:, :, 0].max(axis=0) >= BLEND_FLOOR)
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    return (slice(max(0, rows[0] - FILTER_PAD), min(height, rows[-1] + 1 + FILTER_PAD)),
            slice(max(0, cols[0] - FILTER_PAD), min(width, cols[-1] + 1 + FILTER_PAD)))


def _blend(frames: np.ndarray, altered: np.ndarray, mask: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """``frames`` with ``altered`` (uint8, the ``box`` of every frame) blended in by ``mask``, in uint8; outside
    the box the mask is too weak to change a pixel, and the frames are copied as they are."""
    out = frames.copy()
    weight = np.ascontiguousarray(mask[box][:, :, 0])
    keep = 1 - weight
    for frame, alteration in zip(out, altered):
        frame[box] = cv2.blendLinear(frame[box], alteration, keep, weight)
    return out


def exposure(frames, audio, rng, margin, other_audio=None):
    """LL: the face in another exposure (gain or gamma on its low frequencies) with its sensor noise smoothed."""
    mask = face_mask(*frames.shape[1:3], margin, rng)
    gain = rng.uniform(1.3, 1.9) if rng.random() < 0.6 else rng.uniform(0.45, 0.75)
    gamma = rng.uniform(0.75, 1.3)
    smooth = rng.uniform(0.6, 1.0)
    box = _mask_box(mask)
    # The exposure curve of a uint8 level, as a table: lit = 255 (low gain / 255) ^ gamma
    exposed = (255 * np.power(np.clip(np.arange(256) * gain / 255, 0, 1), gamma)).astype(np.float32)
    altered = []
    for frame in frames[:, box[0], box[1]]:
        low = cv2.GaussianBlur(frame, (0, 0), sigmaX=float(rng.uniform(1.5, 4)))
        denoised = cv2.bilateralFilter(frame, 5, 30, 5)
        # lit + detail, the detail being (frame - low) (1 - smooth) + (denoised - low) smooth
        detail = cv2.addWeighted(frame, 1 - smooth, denoised, smooth, 0, dtype=cv2.CV_32F)
        altered.append(cv2.subtract(detail + cv2.LUT(low, exposed), low, dtype=cv2.CV_8U))
    return _blend(frames, np.stack(altered), mask, box), audio


def relighting(frames, audio, rng, margin, other_audio=None):
    """BG: the face under another light, a brightness ramp in a random direction or another colour balance."""
    t, height, width, _ = frames.shape
    mask = face_mask(height, width, margin, rng)
    box = _mask_box(mask)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[box[0], box[1]].astype(np.float32)
        side = min(height, width) / (1 + 2 * margin)
        ramp = ((xs - width / 2) * np.cos(angle) + (ys - height / 2) * np.sin(angle)) / side
        gain = np.clip(1 + rng.uniform(0.6, 1.6) * ramp, 0.3, 2.0)[..., None]
    else:
        shift = rng.uniform(0.1, 0.3) * rng.choice([-1, 1])
        gain = np.array([1 + shift, 1 + rng.uniform(-0.05, 0.05), 1 - shift], np.float32)
    gain = np.broadcast_to(np.asarray(gain, np.float32), (box[0].stop - box[0].start, box[1].stop - box[1].start, 3))
    altered = [cv2.multiply(frame, gain, dtype=cv2.CV_8U) for frame in frames[:, box[0], box[1]]]
    return _blend(frames, altered, mask, box), audio


def recompression(frames, audio, rng, margin, other_audio=None):
    """CM: the face compressed once more as JPEG at low quality, at a random scale and grid offset."""
    t, height, width, _ = frames.shape
    mask = face_mask(height, width, margin, rng)
    quality = int(rng.integers(8, 45))
    scale = rng.uniform(0.7, 1.3)
    dy, dx = rng.integers(0, 8, size=2)
    box = _mask_box(mask)
    altered = []
    for frame in frames[:, box[0], box[1]]:
        shifted = np.pad(frame, ((dy, 0), (dx, 0), (0, 0)), mode="edge")
        resized = cv2.resize(shifted, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        coded = cv2.imdecode(cv2.imencode(".jpg", resized[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                             cv2.IMREAD_COLOR)[..., ::-1]
        back = cv2.resize(coded, (shifted.shape[1], shifted.shape[0]), interpolation=cv2.INTER_CUBIC)
        altered.append(back[dy:, dx:])
    return _blend(frames, np.stack(altered), mask, box), audio


_DOWN = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_NEAREST)
_UP = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


def resampling(frames, audio, rng, margin, other_audio=None):
    """RR: the face rendered at a lower resolution and up-scaled (random factor and interpolations)."""
    t, height, width, _ = frames.shape
    mask = face_mask(height, width, margin, rng)
    factor = rng.uniform(1.6, 4.0)
    down, up = _DOWN[rng.integers(len(_DOWN))], _UP[rng.integers(len(_UP))]
    box = _mask_box(mask)
    region = frames[:, box[0], box[1]]
    size = (region.shape[2], region.shape[1])
    small = (max(1, int(round(size[0] / factor))), max(1, int(round(size[1] / factor))))
    altered = [cv2.resize(cv2.resize(f, small, interpolation=down), size, interpolation=up) for f in region]
    return _blend(frames, altered, mask, box), audio


def temporal_jitter(frames, audio, rng, margin, other_audio=None):
    """TM: the face pasted frame by frame with small independent shifts, scalings and brightness changes."""
    t, height, width, _ = frames.shape
    mask = face_mask(height, width, margin, rng)
    side = min(height, width) / (1 + 2 * margin)
    shift = rng.uniform(0.008, 0.035) * side
    zoom = rng.uniform(0.0, 0.02)
    flicker = rng.uniform(0.01, 0.06)
    box = _mask_box(mask)
    top, left = box[0].start, box[1].start
    size = (box[1].stop - left, box[0].stop - top)
    altered = []
    for frame in frames:
        scale = 1 + rng.normal(0, zoom)
        dx, dy = rng.normal(0, shift, size=2)
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0, scale)
        matrix[:, 2] += (dx - left, dy - top)  # the warped frame's box only
        warped = cv2.warpAffine(frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        altered.append(cv2.convertScaleAbs(warped, alpha=1 + rng.normal(0, flicker)))
    return _blend(frames, altered, mask, box), audio


def audio_mismatch(frames, audio, rng, margin, other_audio=None):
    """AV: speech that does not belong to the mouth: another clip's audio, or the clip's own audio rotated by a
    quarter to three quarters of its length. Frames are unchanged; a clip without audio cannot carry it."""
    if audio is None or len(audio) == 0:
        return None
    if other_audio is not None and len(other_audio) and rng.random() < 0.5:
        positions = np.linspace(0, len(other_audio) - 1, len(audio))
        return frames, np.interp(positions, np.arange(len(other_audio)), other_audio).astype(audio.dtype)
    return frames, np.roll(audio, int(rng.uniform(0.25, 0.75) * len(audio)))


def pseudo_fake_maker(specialist: str) -> Maker:
    """The pseudo-fake maker ``specialist`` declares for its artifact family (its ``pseudo_fake``); an unknown
    specialist, or one that declares none, is an error naming ``data.pseudo_fakes``."""
    from interceptor.models import get_specialist

    try:
        maker = get_specialist(specialist).pseudo_fake
    except KeyError as err:
        raise KeyError(f"data.pseudo_fakes: {err.args[0]}") from None
    if maker is None:
        raise KeyError(f"data.pseudo_fakes: specialist {specialist!r} declares no pseudo_fake maker; "
                       "set data.pseudo_fakes=0 for it")
    return maker
