"""AV, audio-visual: speech that does not follow the mouth (shifted or unrelated audio)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interceptor.inputs import InputKind
from interceptor.models.blocks import GRID, ConvBNAct, ConvBranch, FrameEncoder, SpecialistModule, temporal_stats
from interceptor.models.filters import LogMelSpectrogram, luma
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import AUDIO_MISMATCH
from interceptor.schema import ModelConfig

LIPS_IN_FACE_BOX = ((0.6, 1.0), (0.2, 0.8))  # rows and columns of the mouth region, as fractions of the face box
LIP_WIDTH, AUDIO_WIDTH = 16, 32  # channels of the lip and audio encoders
EMBED, HEADS = 32, 4  # width of the lip and audio embeddings, and their similarity heads


def lip_region(clip: Tensor, margin: float) -> Tensor:
    """The lower-middle part of the face box of (B, T, 3, H, W) crops that keep ``margin`` context per side."""
    def span(start: float, stop: float, pixels: int) -> slice:
        first = int(round((margin + start) / (1 + 2 * margin) * pixels))
        return slice(first, max(first + 1, int(round((margin + stop) / (1 + 2 * margin) * pixels))))

    (top, bottom), (left, right) = LIPS_IN_FACE_BOX
    return clip[..., span(top, bottom, clip.shape[-2]), span(left, right, clip.shape[-1])]


def standardize(x: Tensor) -> Tensor:
    """Zero mean, unit variance over the last axis (time)."""
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, unbiased=False, keepdim=True) + 1e-4)


def similarity(a: Tensor, b: Tensor, heads: int) -> Tensor:
    """Cosine similarity of two sequences (B, T1, D) and (B, T2, D) per head: (B, heads, T1, T2)."""
    a = F.normalize(a.unflatten(-1, (heads, -1)), dim=-1).transpose(1, 2)
    b = F.normalize(b.unflatten(-1, (heads, -1)), dim=-1).transpose(1, 2)
    return a @ b.transpose(-1, -2)


def mouth_loudness_correlation(lip_pixels: Tensor, log_mel: Tensor) -> Tensor:
    """(B, 1, T, T): standardised mouth darkness of frame i (an open mouth is dark) times standardised audio
    loudness in frame window j; in sync, the diagonal is large. Computed in float32, returned in the pixels' dtype."""
    mouth = -luma(lip_pixels.float()).mean(dim=(-3, -2, -1))  # (B, T)
    loudness = F.adaptive_avg_pool1d(log_mel.float().mean(dim=2), mouth.shape[1]).squeeze(1)  # (B, T)
    return (standardize(mouth)[:, :, None] * standardize(loudness)[:, None, :])[:, None].to(lip_pixels.dtype)


@register_specialist("av")
class AudioVisualModule(SpecialistModule):
    """Four branches of 12 channels: 48 x 7 x 7 = 2352 features. The last three depend on the audio.

    - lips: the visual stream, per-frame CNN features of the lip region, their mean, spread and maximum over
      the clip's frames;
    - audio: the audio stream, a CNN over the log-mel spectrogram (64 mels, 25 ms windows every 10 ms) of the
      16 kHz waveform;
    - sync: audio-visual correlation, the cosine similarity of every frame's lip embedding with the audio
      embedding of every frame's time window (a (T, T) matrix per head: in sync its diagonal stands out),
      and the same matrix for fixed signals, mouth darkness against audio loudness;
    - consistency: temporal audio consistency, the self-similarity of the audio embedding over the clip.

    Where ``audio_mask`` is 0 the waveform is zeroed and the three audio branches are replaced by a learned
    "no audio" map, so the output does not depend on the waveform and missing audio carries no signal beyond
    that one learned constant.
    """

    input_kind = InputKind.CLIP_AUDIO
    vote_weight = 1.0
    relative_cost = 1.0
    widths = {"lips": 12, "audio": 12, "sync": 12, "consistency": 12}
    pseudo_fake = AUDIO_MISMATCH

    def __init__(self, config: ModelConfig):
        widths = self.widths
        super().__init__({
            "lips": ConvBranch(3 * LIP_WIDTH, widths["lips"], stride=1),
            "audio": ConvBranch(AUDIO_WIDTH, widths["audio"], stride=1),
            "sync": ConvBranch(HEADS + 1, widths["sync"], stride=1),
            "consistency": ConvBranch(HEADS, widths["consistency"], stride=2),
        })
        self.margin = config.context_margin
        self.lip_encoder = FrameEncoder(3, LIP_WIDTH)
        self.lip_embed = nn.Linear(LIP_WIDTH, EMBED)
        self.log_mel = LogMelSpectrogram(config.audio_rate)
        self.audio_encoder = nn.Sequential(nn.BatchNorm2d(1), ConvBNAct(1, 16, 3, 2), ConvBNAct(16, AUDIO_WIDTH, 3, 2))
        self.audio_embed = nn.Linear(AUDIO_WIDTH, EMBED)
        audio_channels = self.out_channels - widths["lips"]
        self.no_audio = nn.Parameter(torch.zeros(1, audio_channels, GRID, GRID))

    def signals(self, clip: Tensor, audio: Tensor) -> dict[str, Tensor]:
        frames = clip.shape[1]
        lip_pixels = lip_region(clip, self.margin)
        lips = self.lip_encoder(lip_pixels)  # (B, T, C, h, w)
        lip_sequence = self.lip_embed(lips.mean(dim=(-2, -1)))  # (B, T, E)
        log_mel = self.log_mel(audio)
        spectrum = self.audio_encoder(log_mel)  # (B, C, mels/4, steps)
        steps = spectrum.mean(dim=2)  # (B, C, steps)
        audio_fine = self.audio_embed(steps.transpose(1, 2))  # (B, steps, E)
        audio_per_frame = self.audio_embed(F.adaptive_avg_pool1d(steps, frames).transpose(1, 2))  # (B, T, E)
        return {
            "lips": temporal_stats(lips),
            "audio": spectrum,
            "sync": torch.cat([similarity(lip_sequence, audio_per_frame, HEADS),
                               mouth_loudness_correlation(lip_pixels, log_mel)], dim=1),
            "consistency": similarity(audio_fine, audio_fine, HEADS),
        }

    def forward(self, clip: Tensor, audio: Tensor, audio_mask: Tensor) -> Tensor:
        present = audio_mask.reshape(-1, 1) > 0.5
        audio = torch.where(present, audio, torch.zeros((), dtype=audio.dtype, device=audio.device))
        maps = super().forward(clip=clip, audio=audio)
        visual, audible = maps.split([self.branches["lips"].out_channels, self.no_audio.shape[1]], dim=1)
        audible = torch.where(present[:, :, None, None], audible, self.no_audio.to(audible.dtype))
        return torch.cat([visual, audible], dim=1)
