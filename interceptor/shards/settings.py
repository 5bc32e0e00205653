"""Checks of the ``shards`` config section, and the part of it that determines the shards' contents."""

from __future__ import annotations

import hashlib
import json
import operator

from interceptor.config import ConfigError, to_dict
from interceptor.schema import ShardsConfig

# Keys that change how fast a build runs, not what it writes.
RUNTIME_KEYS = ("workers", "decode_threads")

_RULES = (  # dotted key under shards, check, what it must be
    ("crop_size", lambda v: v >= 16, "at least 16"),
    ("margin", lambda v: 0 <= v <= 2, "between 0 and 2"),
    ("jpeg_quality", lambda v: 95 <= v <= 100, "between 95 and 100 (lower adds artifacts CM would learn)"),
    ("frames_per_clip", lambda v: v >= 1, "at least 1"),
    ("frame_stride", lambda v: v >= 1, "at least 1"),
    ("clips_per_video", lambda v: v >= 1, "at least 1"),
    ("eval_clips_per_video", lambda v: v >= 1, "at least 1"),
    ("audio_rate", lambda v: 1000 <= v <= 192000, "a sample rate in Hz"),
    ("shard_max_samples", lambda v: v >= 1, "at least 1"),
    ("shard_max_bytes", lambda v: v >= 1 << 20, "at least 1 MiB"),
    ("ffpp_methods", lambda v: len(v) > 0, "a non-empty list"),
    ("face_change_threshold", lambda v: v >= 0, "0 or more"),
    ("celebdf_val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("dfdc_val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("dfdc_test_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("decode_threads", lambda v: v >= 0, "0 (FFmpeg's choice) or more"),
    ("workers", lambda v: v >= 1, "at least 1"),
    ("detector.every", lambda v: v >= 1, "at least 1"),
    ("detector.full_every", lambda v: v >= 1, "at least 1"),
    ("detector.size", lambda v: v >= 64, "at least 64"),
    ("detector.min_face", lambda v: 0 < v <= 1, "in (0, 1]"),
    ("detector.scale_factor", lambda v: 1 < v <= 2, "in (1, 2]"),
    ("detector.min_neighbors", lambda v: v >= 0, "0 or more"),
    ("detector.track_iou", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("detector.max_gap", lambda v: v >= 0, "0 or more"),
    ("detector.min_track_fraction", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("detector.min_face_ratio", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("detector.max_faces", lambda v: v >= 1, "at least 1"),
    ("detector.smooth", lambda v: v >= 1, "at least 1"),
)


def check_config(cfg: ShardsConfig) -> ShardsConfig:
    """Raise :class:`ConfigError` naming ``shards.<key>`` for the first value out of range."""
    for key, valid, what in _RULES:
        value = operator.attrgetter(key)(cfg)
        if not valid(value):
            raise ConfigError(f"shards.{key}: must be {what}, got {value!r}")
    if cfg.dfdc_val_fraction + cfg.dfdc_test_fraction >= 1:
        raise ConfigError("shards.dfdc_val_fraction + shards.dfdc_test_fraction: must leave some train, got "
                          f"{cfg.dfdc_val_fraction} + {cfg.dfdc_test_fraction}")
    return cfg


def content_settings(cfg: ShardsConfig) -> dict:
    """The settings recorded in manifests: everything but the runtime knobs."""
    return {k: v for k, v in to_dict(cfg).items() if k not in RUNTIME_KEYS}


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()
