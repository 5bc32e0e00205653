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
class Config:
    """The whole configuration of an Interceptor run."""

    synth: SynthConfig = field(default_factory=SynthConfig)
