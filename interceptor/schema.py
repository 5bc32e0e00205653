"""The configuration schema: one dataclass per section, assembled into :class:`Config`.

Defaults are the production values (EfficientNet-B4, 380 px crops); ``configs/demo.yaml`` scales them down for
the synthetic corpus on a CPU. Every key documented here can be set in YAML or overridden on the command line
as ``section.key=value``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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


FFPP_METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]


@dataclass
class DetectorConfig:
    """Face detection and tracking for the shard builder (``shards.detector``)."""

    backend: Literal["haar", "yunet", "boxes"] = "haar"
    every: int = 10  # detect every k-th frame; boxes in between are tracked (interpolated and smoothed)
    full_every: int = 5  # a full-frame pass on every n-th detection; in between only around the followed faces
    size: int = 640  # longest side of the image the detector sees, in pixels (frames are downscaled to it)
    min_face: float = 0.05  # smallest face to look for, as a fraction of the frame height
    scale_factor: float = 1.15  # haar: image pyramid step
    min_neighbors: int = 4  # haar: overlapping detections needed to keep one
    equalize: bool = True  # haar: equalise the histogram first (finds faces in low light)
    score_threshold: float = 0.6  # yunet: minimum face score
    weights: str | None = None  # yunet: path of the ONNX model (face_detection_yunet_2023mar.onnx)
    boxes_file: str | None = None  # boxes: JSON of precomputed per-frame boxes, paths relative to the dataset root
    track_iou: float = 0.3  # a detection joins a track when it overlaps the track's last box this much
    max_gap: int = 2  # detection frames a track may miss and still continue
    min_track_fraction: float = 0.3  # a stable track is found in this share of detection frames (and in half as
    # many as the most often found track); the largest stable track is kept
    smooth: int = 3  # moving-average window over a track's detections (odd; 1 = no smoothing)


@dataclass
class ShardsConfig:
    """The WebDataset shard builder (``interceptor shards build``); see shards/FORMAT.md."""

    crop_size: int = 380  # side of the square face crops, in pixels
    margin: float = 0.333  # crop margin on each side, as a fraction of the face box (DFDC winners: 1/3)
    image_format: Literal["png", "jpg"] = "png"  # png is lossless; jpg only with quality >= 95
    jpeg_quality: int = 95
    frames_per_clip: int = 8
    frame_stride: int = 2  # take every n-th frame inside a clip
    clips_per_video: int = 4  # train split
    eval_clips_per_video: int = 8  # val and test splits
    audio_rate: int = 16000  # mono int16 audio per clip, when the video has a track
    shard_max_samples: int = 1000
    shard_max_bytes: int = 1_000_000_000
    ffpp_compression: Literal["raw", "c23", "c40"] = "c23"
    ffpp_methods: list[str] = field(default_factory=lambda: list(FFPP_METHODS))
    celebdf_val_fraction: float = 0.15  # share of non-test identities (and YouTube-real videos) held out as val
    dfdc_val_fraction: float = 0.1  # share of each chunk's clusters (an original and its fakes) held out as val
    dfdc_test_fraction: float = 0.1
    decode_threads: int = 1  # FFmpeg decoding threads per worker (0: FFmpeg's choice)
    workers: int = 2  # processes, one video at a time each
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass
class Config:
    """The whole configuration of an Interceptor run."""

    synth: SynthConfig = field(default_factory=SynthConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
