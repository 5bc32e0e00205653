"""Distributed evaluation over shard sets: clip predictions gathered from all ranks, metrics at video level.

Used by the trainer (validation and model selection), by the curriculum's cross-dataset matrix, and by
``interceptor eval``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from interceptor.metrics import clip_and_video_metrics
from interceptor.schema import DataConfig
from interceptor.data.decoding import face_key, video_key
from interceptor.data.shard_sets import ShardSet
from interceptor.data.streams import EvalStream, loader
from interceptor.distributed import DistInfo, all_gather_objects
from interceptor.inputs import InputSpec, model_inputs


@dataclass
class ClipPredictions:
    """One row per clip, sorted by clip key, identical on every rank."""

    keys: list[str]
    videos: list[str]
    faces: list[str]  # the face of its video each clip follows (data.face_key)
    labels: list[int]
    probs: list[float]
    sources: list[str]  # "dataset:path relative to the dataset root" of each clip's video
    has_input: list[bool]  # False where the model's input was missing (AV: no audio track)
    samples: np.ndarray | None  # a few uint8 crops (N, 3, H, W) from rank 0, for TensorBoard

    def metrics(self, threshold: float = 0.5, min_confident: int = 11,
                face_aggregation: str = "max") -> dict[str, float]:
        return clip_and_video_metrics(self.videos, self.labels, self.probs, threshold,
                                      {"min_confident": min_confident}, self.faces, face_aggregation)


@torch.no_grad()
def predict_clips(model: nn.Module, shard_sets: list[ShardSet], data_cfg: DataConfig, spec: InputSpec,
                  dist: DistInfo, dtype: torch.dtype = torch.float32, channels_last: bool = False,
                  sample_images: int = 0, stop: Callable[[], bool] | None = None) -> ClipPredictions | None:
    """P(fake) for every clip of ``shard_sets``; each rank scores its share, the results are gathered.

    ``stop`` is asked between batches; when it says so on any rank, every rank returns None (collective).
    """
    was_training = model.training
    model.eval()
    keys, labels, probs, sources, present, samples = [], [], [], [], [], None
    stream = EvalStream(shard_sets, data_cfg, spec, dist.rank, dist.world)
    stopped = False
    with torch.autocast(dist.device.type, dtype=dtype, enabled=dtype != torch.float32):
        for batch in loader(stream, data_cfg):
            if stop is not None and stop():
                stopped = True
                break
            inputs = model_inputs(batch, spec, dist.device, dtype, channels_last)
            probs += torch.softmax(model(**inputs).float(), dim=-1)[:, 1].cpu().tolist()
            keys += batch["key"]
            labels += batch["label"].tolist()
            sources += batch["source"]
            present += batch["audio_mask"].tolist() if "audio_mask" in batch else [True] * len(batch["key"])
            if samples is None and sample_images and dist.is_main:
                pixels = batch["pixels"] if batch["pixels"].dim() == 4 else batch["pixels"][:, 0]
                samples = pixels[:sample_images].permute(0, 3, 1, 2).numpy()
    model.train(was_training)
    gathered = all_gather_objects((stopped, keys, labels, probs, sources, present))
    if any(rank_rows[0] for rank_rows in gathered):
        return None
    # Rows of one clip (frame models with data.eval_frames=all) average into one clip score.
    by_key: dict[str, tuple] = {}
    for rank_rows in gathered:
        for key, label, prob, source, has_input in zip(*rank_rows[1:]):
            by_key.setdefault(key, (label, [], source, bool(has_input)))[1].append(prob)
    ordered = sorted(by_key)
    return ClipPredictions(keys=ordered, videos=[video_key(k) for k in ordered], faces=[face_key(k) for k in ordered],
                           labels=[by_key[k][0] for k in ordered],
                           probs=[float(np.mean(by_key[k][1])) for k in ordered],
                           sources=[by_key[k][2] for k in ordered], has_input=[by_key[k][3] for k in ordered],
                           samples=samples)
