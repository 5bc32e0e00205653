"""Pseudo-fakes: real face crops turned into fakes of one artifact family, on the fly (``data.pseudo_fakes``).

In the manner of Self-Blended Images (Shiohara and Yamasaki, CVPR 2022): a real clip is altered inside a soft,
randomly shaped face mask, so the altered face is blended into its own untouched surroundings, and labelled
fake. Each specialist gets pseudo-fakes of its own family only, so every real video of every dataset becomes
training material for the artifact its module looks for. Nothing here knows how any dataset's fakes were
made (the synthetic corpus's generator is never used): each family is a generic image operation with wide,
randomised strength.

A family is a fact of its specialist: the specialist's file declares it (``pseudo_fake = RECOMPRESSION``), the
registry reads it (:func:`~interceptor.models.registry.pseudo_fake_maker`), and the data path draws and applies it,
so this module sits below the models and imports none of them. A family is a :class:`PseudoFake` and works in two
halves, as the rest of the augmentation does (``interceptor/inputs.py``): the loader only *draws* a sample's
parameters from the sample's RNG (the face mask's ellipse and softness, the family's strengths), and the batch
carries them (``pseudo_fake``, ``pseudo``); the device *applies* them to the whole batch's pseudo-fakes in
:func:`~interceptor.inputs.model_inputs`, before the resized crop, jitter and flip. At 380 px the image operations
(filters, JPEG, resampling, warps) cost 1-3 PNG decodes a frame on a loader core, where a GPU does them in
microseconds. Audio (AV's family) is altered in the loader: it is small. A resumed run draws the same parameters, so
it makes the same pseudo-fakes. Where the loader itself changes the frames (crops of another size than the model's,
``augment.resample_prob``, ``augment.recompress_prob``), the pseudo-fake is made on the frames it delivers, after
those changes.

Pixels on the device are float (N, T, 3, H, W) in [0, 1]; the operations work on 0-255 levels, as the image
codecs and filters they stand for.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interceptor.jpeg import CHROMA_TABLE, LUMA_TABLE, dct_matrix

MASK_MIN_SIDE = 96  # px: the face mask is drawn and blurred at about this side, then enlarged (it is smooth)
MASK_PARAMS = 6  # centre y, x and radii y, x (fractions of the frame's height and width), angle (degrees), softness


class PseudoFake:
    """One artifact family: ``draw`` in the loader, ``apply`` on the device.

    ``draw(frames, audio, rng, margin, other_audio)`` takes the (T, H, W, 3) uint8 frames the model will see,
    the clip's int16 audio or None, the sample's RNG, the crop's context margin and another real clip's audio
    (or None); it returns the parameters (a float32 vector, the same length for every clip of a batch) and the
    audio, or None where the clip cannot carry the family. ``apply(levels, params)`` alters float
    (N, T, 3, H, W) pixels in 0-255 levels with (N, P) parameters. Families that alter only the audio set
    ``alters_frames`` False.
    """

    alters_frames = True

    def draw(self, frames: np.ndarray, audio: np.ndarray | None, rng: np.random.Generator, margin: float,
             other_audio: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None] | None:
        raise NotImplementedError

    def apply(self, levels: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError


def draw_mask(rng: np.random.Generator, margin: float) -> list[float]:
    """A face mask's parameters: a randomly sized and shifted, rotated ellipse over the face box, and its
    softness. A crop with ``margin`` context per side has its face box from ``margin / (1 + 2 margin)`` to
    ``(1 + margin) / (1 + 2 margin)`` of each side."""
    side = 1 / (1 + 2 * margin)
    cy, cx = 0.5 + rng.uniform(-0.06, 0.06, size=2) * side
    ry, rx = rng.uniform(0.36, 0.55, size=2) * side
    angle = rng.uniform(-15, 15)
    softness = rng.uniform(0.04, 0.12) * side  # the blur's sigma, a fraction of the frame's shorter side
    return [cy, cx, ry, rx, angle, softness]


def face_masks(params: Tensor, height: int, width: int, device: torch.device | None = None) -> Tensor:
    """(N, 1, H, W) blend masks in [0, 1] on ``device`` from (N, ≥6) parameters on the host (:func:`draw_mask`):
    each ellipse filled, blurred by its softness and enlarged, drawn at 1/factor of the frame (at least
    ``MASK_MIN_SIDE``)."""
    factor = max(1, min(height, width) // MASK_MIN_SIDE)
    small = (-(-height // factor), -(-width // factor))
    ys = (torch.arange(small[0], device=device, dtype=torch.float32) + 0.5) * factor - 0.5
    xs = (torch.arange(small[1], device=device, dtype=torch.float32) + 0.5) * factor - 0.5
    mask = params[:, :MASK_PARAMS].float()
    cy, cx, ry, rx, angle = (_per_sample(mask[:, i] * scale, device, 2) for i, scale in
                             enumerate((height, width, height, width, math.pi / 180)))
    dy, dx = ys[None, :, None] - cy, xs[None, None, :] - cx
    u = dx * torch.cos(angle) + dy * torch.sin(angle)
    v = -dx * torch.sin(angle) + dy * torch.cos(angle)
    inside = ((u / rx) ** 2 + (v / ry) ** 2 <= 1).float()[:, None]
    masks = gaussian_blur(inside, (mask[:, 5] * min(height, width) / factor).tolist())
    return F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False) if factor > 1 else masks


def _per_sample(values: Tensor, device: torch.device | None, dims: int) -> Tensor:
    """(N,) host values on ``device``, shaped (N, 1, ...) with ``dims`` trailing ones to broadcast per sample."""
    return values.to(device, torch.float32).view(-1, *(1,) * dims)


def gaussian_blur(images: Tensor, sigmas: list[float]) -> Tensor:
    """(N, C, H, W) images, image i blurred by a Gaussian of ``sigmas[i]`` px: separable, 3 of the largest sigma
    each side, in one grouped convolution; edges reflected where the image is large enough, else extended."""
    n, channels = images.shape[:2]
    radius = max(1, int(math.ceil(3 * max(sigmas))))
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    sigma = torch.tensor(sigmas, dtype=images.dtype).clamp_min(1e-3).to(images.device)[:, None]
    kernels = torch.exp(-0.5 * (taps[None] / sigma) ** 2)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, 0)[:, None]  # (N C, 1, K)
    mode = "reflect" if min(images.shape[-2:]) > radius else "replicate"
    flat = images.reshape(1, n * channels, *images.shape[-2:])
    out = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode=mode), kernels[:, :, None, :], groups=n * channels)
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode=mode), kernels[:, :, :, None], groups=n * channels)
    return out.reshape(images.shape)


def _blend(levels: Tensor, altered: Tensor, params: Tensor) -> Tensor:
    """``altered`` (N, T, 3, H, W) blended into ``levels`` by each sample's face mask, the same in every frame."""
    masks = face_masks(params, *levels.shape[-2:], levels.device)[:, None].to(levels.dtype)  # (N, 1, 1, H, W)
    return levels + (altered - levels) * masks


def _frames(levels: Tensor) -> Tensor:
    """(N, T, 3, H, W) as (N T, 3, H, W)."""
    return levels.reshape(-1, *levels.shape[2:])


class Exposure(PseudoFake):
    """LL: the face in another exposure (gain or gamma on its low frequencies) with its sensor noise smoothed
    (an edge-preserving bilateral filter)."""

    def draw(self, frames, audio, rng, margin, other_audio=None):
        mask = draw_mask(rng, margin)
        gain = rng.uniform(1.3, 1.9) if rng.random() < 0.6 else rng.uniform(0.45, 0.75)
        return np.array(mask + [gain, rng.uniform(0.75, 1.3), rng.uniform(0.6, 1.0), rng.uniform(1.5, 4)],
                        np.float32), audio

    def apply(self, levels, params):
        frames = levels.shape[1]
        gain, gamma, smooth = (_per_sample(params[:, MASK_PARAMS + i], levels.device, 4) for i in range(3))
        sigmas = params[:, MASK_PARAMS + 3].repeat_interleave(frames).tolist()
        low = gaussian_blur(_frames(levels), sigmas).view(levels.shape)
        detail = levels * (1 - smooth) + bilateral_filter(_frames(levels)).view(levels.shape) * smooth
        lit = 255 * (low * (gain / 255)).clamp(0, 1) ** gamma
        return _blend(levels, (detail + lit - low).clamp(0, 255), params)


def bilateral_filter(levels: Tensor, radius: int = 2, sigma_color: float = 30, sigma_space: float = 5) -> Tensor:
    """OpenCV's ``bilateralFilter(d=5, sigmaColor=30, sigmaSpace=5)`` on (N, 3, H, W) levels: each pixel the
    mean of its disc of neighbours, weighted by distance and by the summed absolute colour difference."""
    padded = F.pad(levels, (radius,) * 4, mode="reflect")
    height, width = levels.shape[-2:]
    total = torch.zeros_like(levels)
    weights = torch.zeros_like(levels[:, :1])
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx > radius * radius:
                continue
            neighbour = padded[..., radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            difference = (neighbour - levels).abs().sum(dim=1, keepdim=True)
            weight = math.exp(-(dy * dy + dx * dx) / (2 * sigma_space ** 2)) * torch.exp(
                -difference.square() / (2 * sigma_color ** 2))
            total += weight * neighbour
            weights += weight
    return total / weights


class Relighting(PseudoFake):
    """BG: the face under another light, a brightness ramp in a random direction or another colour balance."""

    def draw(self, frames, audio, rng, margin, other_audio=None):
        mask = draw_mask(rng, margin)
        if rng.random() < 0.5:  # a ramp: its angle, and its strength per face side (as a share of the shorter side)
            light = [1.0, rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.6) * (1 + 2 * margin), 0.0, 0.0]
        else:  # another colour balance: a red-blue shift and a small green one
            light = [0.0, 0.0, 0.0, rng.uniform(0.1, 0.3) * rng.choice([-1, 1]), rng.uniform(-0.05, 0.05)]
        return np.array(mask + light, np.float32), audio

    def apply(self, levels, params):
        height, width = levels.shape[-2:]
        ramp, angle, strength, shift, green = (_per_sample(params[:, MASK_PARAMS + i], levels.device, 2)
                                               for i in range(5))
        ys = torch.arange(height, device=levels.device, dtype=torch.float32)[:, None] - height / 2
        xs = torch.arange(width, device=levels.device, dtype=torch.float32)[None, :] - width / 2
        slope = (xs * torch.cos(angle) + ys * torch.sin(angle)) / min(height, width)
        ramps = (1 + strength * slope).clamp(0.3, 2.0)[:, None]  # (N, 1, H, W): the same gain in each channel
        balance = torch.stack([1 + shift, 1 + green, 1 - shift], 1)  # (N, 3, 1, 1)
        gains = torch.where(ramp[:, None] > 0.5, ramps, balance)
        return _blend(levels, (levels * gains[:, None]).clamp(0, 255), params)


class Recompression(PseudoFake):
    """CM: the face compressed once more as JPEG at low quality, at a random scale and 8x8 grid offset."""

    def draw(self, frames, audio, rng, margin, other_audio=None):
        mask = draw_mask(rng, margin)
        quality, scale = rng.integers(8, 45), rng.uniform(0.7, 1.3)
        dy, dx = rng.integers(0, 8, size=2)
        return np.array(mask + [quality, scale, dy, dx], np.float32), audio

    def apply(self, levels, params):
        altered = []
        for sample, (quality, scale, dy, dx) in zip(levels, params[:, MASK_PARAMS:].tolist()):
            dy, dx = int(dy), int(dx)
            shifted = F.pad(sample, (dx, 0, dy, 0), mode="replicate")  # (T, 3, H + dy, W + dx)
            size = tuple(shifted.shape[-2:])
            scaled = _resized(shifted, (max(8, round(size[0] * scale)), max(8, round(size[1] * scale))), "bicubic")
            back = _resized(jpeg_round_trip(scaled, int(quality)), size, "bicubic")
            altered.append(back[..., dy:, dx:])
        return _blend(levels, torch.stack(altered), params)


def _resized(levels: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """(N, 3, H, W) levels resized to ``size``, as whole levels (an 8-bit image resized)."""
    if tuple(levels.shape[-2:]) == tuple(size):
        return levels
    extra = {} if mode in ("nearest", "area") else {"align_corners": False}
    return F.interpolate(levels, size=size, mode=mode, **extra).round().clamp(0, 255)


def quantization_table(base: tuple[tuple[int, ...], ...], quality: int) -> Tensor:
    """libjpeg's (8, 8) table for ``quality`` (1-100): the example table ``base`` (:mod:`interceptor.jpeg`) scaled
    by 5000 / q below 50, 200 - 2 q above."""
    quality = min(max(quality, 1), 100)
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return ((torch.tensor(base, dtype=torch.float32) * scale + 50) // 100).clamp(1, 255)


def _quantized(planes: Tensor, table: Tensor) -> Tensor:
    """(N, C, H, W) level planes (H, W multiples of 8) through JPEG's 8x8 DCT, quantization and inverse DCT."""
    n, c, h, w = planes.shape
    dct = dct_matrix().to(planes.device)  # orthonormal DCT-II: JPEG's 8x8 transform
    blocks = (planes - 128).reshape(n, c, h // 8, 8, w // 8, 8).transpose(3, 4)
    coefficients = dct @ blocks @ dct.T
    table = table.to(planes.device)
    restored = dct.T @ ((coefficients / table).round() * table) @ dct
    return restored.transpose(3, 4).reshape(n, c, h, w) + 128


def jpeg_round_trip(rgb: Tensor, quality: int) -> Tensor:
    """(N, 3, H, W) RGB levels encoded and decoded as a baseline JPEG of ``quality``: YCbCr, 4:2:0 chroma,
    8x8 DCT quantized by libjpeg's tables, whole output levels (the entropy coding is lossless: left out)."""
    height, width = rgb.shape[-2:]
    pad = (0, -width % 16, 0, -height % 16)
    r, g, b = F.pad(rgb, pad, mode="replicate").unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    luma = _quantized(y[:, None], quantization_table(LUMA_TABLE, quality))
    chroma = _quantized(F.avg_pool2d(torch.stack([cb, cr], 1), 2), quantization_table(CHROMA_TABLE, quality))
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False) - 128
    y, cb, cr = luma[:, 0], chroma[:, 0], chroma[:, 1]
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return out[..., :height, :width].round().clamp(0, 255)


_DOWN = ("area", "bilinear", "bicubic", "nearest")
_UP = ("bilinear", "bicubic")


class Resampling(PseudoFake):
    """RR: the face rendered at a lower resolution and up-scaled (random factor and interpolations)."""

    def draw(self, frames, audio, rng, margin, other_audio=None):
        mask = draw_mask(rng, margin)
        factor = rng.uniform(1.6, 4.0)
        return np.array(mask + [factor, rng.integers(len(_DOWN)), rng.integers(len(_UP))], np.float32), audio

    def apply(self, levels, params):
        altered = []
        size = tuple(levels.shape[-2:])
        for sample, (factor, down, up) in zip(levels, params[:, MASK_PARAMS:].tolist()):
            small = (max(1, round(size[0] / factor)), max(1, round(size[1] / factor)))
            altered.append(_resized(_resized(sample, small, _DOWN[int(down)]), size, _UP[int(up)]))
        return _blend(levels, torch.stack(altered), params)


class TemporalJitter(PseudoFake):
    """TM: the face pasted frame by frame with small independent shifts, scalings and brightness changes."""

    def draw(self, frames, audio, rng, margin, other_audio=None):
        mask = draw_mask(rng, margin)
        side = 1 / (1 + 2 * margin)  # the face box, as a share of the frame
        shift, zoom, flicker = rng.uniform(0.008, 0.035) * side, rng.uniform(0.0, 0.02), rng.uniform(0.01, 0.06)
        per_frame = [[1 + rng.normal(0, zoom), *rng.normal(0, shift, size=2), 1 + rng.normal(0, flicker)]
                     for _ in range(len(frames))]  # scale, shift x and y (shares of the frame), brightness
        return np.array(mask + [v for frame in per_frame for v in frame], np.float32), audio

    def apply(self, levels, params):
        scale, dx, dy, brightness = params[:, MASK_PARAMS:].reshape(-1, 4).to(levels.device, levels.dtype).unbind(1)
        theta = torch.zeros(len(scale), 2, 3, device=levels.device, dtype=levels.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale  # the output's point p' = s p + d, read where p' came from
        theta[:, 0, 2], theta[:, 1, 2] = -2 * dx / scale, -2 * dy / scale
        frames = _frames(levels)
        grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
        warped = F.grid_sample(frames, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        altered = (warped * brightness.view(-1, 1, 1, 1)).clamp(0, 255)
        return _blend(levels, altered.view(levels.shape), params)


class AudioMismatch(PseudoFake):
    """AV: speech that does not belong to the mouth: another clip's audio, or the clip's own audio rotated by a
    quarter to three quarters of its length. Frames are unchanged; a clip without audio cannot carry it."""

    alters_frames = False

    def draw(self, frames, audio, rng, margin, other_audio=None):
        if audio is None or len(audio) == 0:
            return None
        none = np.zeros(0, np.float32)
        if other_audio is not None and len(other_audio) and rng.random() < 0.5:
            positions = np.linspace(0, len(other_audio) - 1, len(audio))
            return none, np.interp(positions, np.arange(len(other_audio)), other_audio).astype(audio.dtype)
        return none, np.roll(audio, int(rng.uniform(0.25, 0.75) * len(audio)))

    def apply(self, levels, params):
        return levels


def apply_pseudo_fakes(pixels: Tensor, flags: Tensor, params: Tensor, family: PseudoFake) -> Tensor:
    """Float (B, [T,] 3, H, W) pixels in [0, 1] with the samples ``flags`` (B,) marks made into ``family``'s
    pseudo-fakes by their drawn ``params`` (B, P). ``flags`` and ``params`` stay on the host: no device sync."""
    rows = flags.nonzero().flatten().tolist()
    if not rows or not family.alters_frames:
        return pixels
    clips = pixels if pixels.dim() == 5 else pixels[:, None]
    index = torch.tensor(rows, device=pixels.device)
    # whole levels, as the reals are: an 8-bit image altered, never a shortcut of fractional levels
    altered = family.apply(clips[index].float() * 255, params[rows].float()).round_() / 255
    out = clips.index_copy(0, index, altered.to(clips.dtype))
    return out if pixels.dim() == 5 else out[:, 0]


EXPOSURE, RELIGHTING, RECOMPRESSION = Exposure(), Relighting(), Recompression()
RESAMPLING, TEMPORAL_JITTER, AUDIO_MISMATCH = Resampling(), TemporalJitter(), AudioMismatch()
