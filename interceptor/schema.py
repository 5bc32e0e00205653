"""The configuration schema: one dataclass per section, assembled into :class:`Config`.

Defaults are the production values (EfficientNet-B4, 380 px crops); ``configs/demo.yaml`` scales them down for
the synthetic corpus on a CPU. Every key documented here can be set in YAML or overridden on the command line
as ``section.key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SynthConfig:
    """The synthetic forgery corpus (``interceptor synth``)."""

    seed: int = 0
    videos: int = 60  # videos per dataset (approximately: originals plus their fakes)
    size: int = 180  # frame height in pixels; width is 16:9
    seconds: float = 3.0
    fps: int = 25
    audio_rate: int = 44100  # AAC sample rate of DFDC videos (FF++ and Celeb-DF have no audio)
    crf: int = 23  # H.264 constant rate factor: 23 matches FF++ "c23"
    dfdc_chunks: int = 10
    workers: int = 2  # processes used to render and encode videos


@dataclass
class ModelConfig:
    """The detectors (``interceptor.models.build_model``): backbone, input contract, fusion and classifier."""

    backbone: str = "efficientnet_b4"  # any timm CNN; its last-stage feature map feeds the fusion
    pretrained: bool = False  # timm's own pretrained weights (must be reachable); set true for real training
    pretrained_path: str | None = None  # local backbone weights (.safetensors, or a .pt/.pth state dict)
    image_size: int = 380  # side of the square face crop in pixels (any size works; this one is the default)
    context_margin: float = 0.25  # context kept around the face box, per side, as a fraction of the box side
    frames_per_clip: int = 8  # T: frames in a clip for TM and AV (the models accept any T >= 2)
    clip_seconds: float = 0.64  # time a clip spans: its frames are clip_seconds / T apart
    audio_rate: int = 16000  # AV waveform sample rate in Hz
    backbone_frames: int = 1  # frames of a clip the backbone sees, evenly spaced, features averaged; 1 = centre
    fusion_dim: int = 256  # common width of the backbone and specialist tokens
    fusion_heads: int = 8  # attention heads of the fusion
    classifier_hidden: list[int] = field(default_factory=lambda: [512, 256])  # hidden widths of the MLP head
    dropout: float = 0.3  # dropout in the fusion and the classifier


@dataclass
class Config:
    """The whole configuration of an Interceptor run."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
