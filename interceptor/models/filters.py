"""Fixed signal-processing front-ends of the specialist modules: colour spaces, gradients, block DCT, pyramids
and the log-mel spectrogram.

Nothing here is learned. Kernels are non-persistent buffers (rebuilt by the constructor, absent from state
dicts), and every filter runs in float32 with autocast off: quantisation steps and sensor noise are finer than
bf16/fp16 can resolve. Learned layers after them run in whatever precision autocast picks.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interceptor.jpeg import dct_matrix

# ITU-R BT.601 (full range, as in JPEG): rows give Y, Cb, Cr from RGB in [0, 1].
_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def full_precision(fn):
    """Run method ``fn`` in float32 with autocast disabled: floating tensor arguments are cast to float32, and
    floating results (tensors, or lists and dicts of them) back to the first floating argument's dtype, so that a
    model cast to bf16 or fp16 (as DeepSpeed does) gets its own dtype back from these signal paths."""

    def cast(value, dtype):
        if isinstance(value, Tensor):
            return value.to(dtype) if value.is_floating_point() else value
        if isinstance(value, dict):
            return {k: cast(v, dtype) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(cast(v, dtype) for v in value)
        return value

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
        with torch.autocast(device_type=device_type, enabled=False):
            result = fn(self, *cast(args, torch.float32), **cast(kwargs, torch.float32))
        return cast(result, dtype)

    return wrapper


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB in [0, 1] to Y in [0, 1] and Cb, Cr centred on 0."""
    r, g, b = rgb.unbind(-3)
    return torch.stack([wr * r + wg * g + wb * b for wr, wg, wb in _YCBCR], dim=-3)


def luma(rgb: Tensor) -> Tensor:
    """(..., 3, H, W) RGB to (..., 1, H, W) Y of YCbCr."""
    r, g, b = rgb.unbind(-3)
    wr, wg, wb = _YCBCR[0]
    return (wr * r + wg * g + wb * b).unsqueeze(-3)


def gaussian_kernel(sigma: float) -> Tensor:
    """A normalised 2-D Gaussian kernel of odd side about 6 sigma."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


class FixedConv(nn.Module):
    """A fixed bank of 2-D kernels applied to each input channel separately (depthwise, reflect-padded).

    ``kernels`` is (K, k, k); an input of C channels gives C*K channels, grouped per input channel.
    """

    def __init__(self, kernels: Tensor | tuple, stride: int = 1, pad: bool = True):
        super().__init__()
        kernels = torch.as_tensor(kernels, dtype=torch.float32)
        if kernels.dim() == 2:
            kernels = kernels[None]
        self.register_buffer("kernels", kernels[:, None], persistent=False)
        self.stride = stride
        self.pad = kernels.shape[-1] // 2 if pad else 0

    @property
    def count(self) -> int:
        return self.kernels.shape[0]

    @full_precision
    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect" if min(x.shape[-2:]) > self.pad else "replicate")
        weight = self.kernels.repeat(channels, 1, 1, 1)
        return F.conv2d(x, weight, stride=self.stride, groups=channels)


class Sobel(FixedConv):
    """Horizontal and vertical Sobel derivatives: C channels in, 2C out (d/dx, d/dy per channel)."""

    def __init__(self):
        gx = torch.tensor(SOBEL_X) / 8
        super().__init__(torch.stack([gx, gx.T]))


class Laplacian(FixedConv):
    """The 4-neighbour Laplacian."""

    def __init__(self):
        super().__init__(LAPLACIAN)


class GaussianBlur(FixedConv):
    def __init__(self, sigma: float):
        super().__init__(gaussian_kernel(sigma))


class BlockDCT(nn.Module):
    """The JPEG 8x8 block DCT as a stride-8 convolution: (B, 1, H, W) to (B, 64, H/8, W/8).

    Channel ``8u + v`` is the coefficient of vertical frequency u and horizontal frequency v, in the units of
    the input. Input sides must be multiples of the block size.
    """

    def __init__(self, block: int = 8):
        super().__init__()
        basis = dct_matrix(block)
        kernels = torch.einsum("ui,vj->uvij", basis, basis).reshape(block * block, 1, block, block)
        self.register_buffer("kernels", kernels, persistent=False)
        self.block = block

    @full_precision
    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.kernels, stride=self.block)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Replicate-pad the bottom and right edges up to a multiple of ``multiple`` pixels."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class LaplacianPyramid(nn.Module):
    """Band-pass levels of a Laplacian pyramid: level k is at 1/2^k resolution."""

    def __init__(self, levels: int = 3):
        super().__init__()
        self.levels = levels
        self.blur = GaussianBlur(1.0)

    @full_precision
    def forward(self, x: Tensor) -> list[Tensor]:
        bands = []
        for _ in range(self.levels):
            low = self.blur(x)
            bands.append(x - low)
            x = low[..., ::2, ::2]
        return bands


def local_mean(x: Tensor, size: int) -> Tensor:
    """Box-filtered mean over ``size`` x ``size`` neighbourhoods, same size as ``x``."""
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 20.0, f_max: float | None = None):
    """(n_fft // 2 + 1, n_mels) triangular filters on the HTK mel scale."""
    f_max = f_max or sample_rate / 2
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    to_hz = lambda m: 700.0 * (10 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = to_hz(np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    rising = (bins[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - bins[:, None]) / (edges[2:] - edges[1:-1])
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0, None)).float()


class LogMelSpectrogram(nn.Module):
    """(B, S) waveform to a (B, 1, n_mels, frames) log-mel spectrogram, computed with ``torch.stft``.

    25 ms Hann windows every 10 ms at 16 kHz by default.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64, window_s: float = 0.025, hop_s: float = 0.010):
        super().__init__()
        self.n_fft = int(round(window_s * sample_rate))
        self.hop = int(round(hop_s * sample_rate))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(self.n_fft, n_mels, sample_rate), persistent=False)

    @full_precision
    def forward(self, waveform: Tensor) -> Tensor:
        spec = torch.stft(waveform, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = spec.real**2 + spec.imag**2  # (B, freq, frames)
        mel = torch.einsum("bft,fm->bmt", power, self.filters)
        return torch.log(mel + 1e-6)[:, None]
