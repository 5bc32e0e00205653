"""Exported detectors: ``model.safetensors`` (weights) and ``model.json`` (everything needed to rebuild it).

    export_model(model, "runs/cm/export", threshold=0.42, epoch=7)
    model = load_model("runs/cm/export")   # eval mode, identical logits

Weights are read with safetensors only (no pickle). Both files are written under temporary names and renamed
into place, so a reader never sees a half-written export.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model as load_weights
from safetensors.torch import save_file

from interceptor.config import to_dict
from interceptor.models.detector import Detector, build_model
from interceptor.schema import ModelConfig
from interceptor.utils import atomic_path, atomic_write_json, read_json

WEIGHTS = "model.safetensors"
DESCRIPTION = "model.json"
EXPORT_FORMAT = 1


def model_description(model: Detector, **meta: Any) -> dict[str, Any]:
    """The JSON description of ``model``: what it is, its input contract and ``meta`` (e.g. threshold)."""
    config = model.config
    return {
        "format": EXPORT_FORMAT,
        "specialist": model.specialist_name,
        "backbone": config.backbone,
        "config": to_dict(config),
        "input_kind": model.input_kind,
        "input_names": list(model.input_names),
        "image_size": config.image_size,
        "frames_per_clip": config.frames_per_clip,
        "clip_seconds": config.clip_seconds,
        "audio_rate": config.audio_rate,
        "input_range": [0.0, 1.0],
        "normalization": {"mean": model.backbone.mean.flatten().tolist(), "std": model.backbone.std.flatten().tolist()},
        "labels": ["real", "fake"],
        "threshold": 0.5,
        **meta,
    }


def export_model(model: Detector, directory: str | Path, **meta: Any) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``; return the directory.

    ``meta`` is added to the JSON (a ``threshold`` in it replaces the default 0.5 on P(fake)).
    """
    directory = Path(directory)
    with atomic_path(directory / WEIGHTS) as tmp:
        # fp32 copies: under DeepSpeed the weights may be fp16/bf16 views into one flat buffer (safetensors
        # refuses shared storage); the export is the portable fp32 model.
        tensors = {name: (t.float() if t.is_floating_point() else t).detach().cpu().clone().contiguous()
                   for name, t in model.state_dict().items()}
        save_file(tensors, str(tmp), metadata={"specialist": model.specialist_name, "backbone": model.config.backbone})
    atomic_write_json(directory / DESCRIPTION, model_description(model, **meta))
    return directory


class _PositionalInputs(torch.nn.Module):
    """A detector called with its inputs in :attr:`~Detector.input_names` order (ONNX graphs take positions)."""

    def __init__(self, model: Detector):
        super().__init__()
        self.model = model

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.model.input_names, tensors)))


def export_onnx(model: Detector, path: str | Path, opset: int = 18) -> Path:
    """Write ``model`` as an ONNX graph: inputs named as :attr:`~Detector.input_names` (any batch size, the
    model's image size), output ``logits``. The file appears atomically."""
    path = Path(path)
    model = model.eval()
    inputs = model.example_inputs(2, model.config.image_size)
    names = list(inputs)
    with atomic_path(path) as tmp, torch.no_grad():
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(_PositionalInputs(model), tuple(inputs.values()), str(tmp), input_names=names,
                          output_names=["logits"], dynamic_shapes=(tuple({0: batch} for _ in names),),
                          opset_version=opset, dynamo=True, verbose=False)
    return path


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> Detector:
    """Rebuild an exported detector with :func:`build_model` and load its weights, in eval mode."""
    directory = Path(directory)
    info = read_json(directory / DESCRIPTION, "model description")
    if info.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{directory / DESCRIPTION}: unsupported export format {info.get('format')!r}")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    config = {k: v for k, v in info["config"].items() if k in known}
    config.update(pretrained=False, pretrained_path=None)  # the weights come from the export
    model = build_model(info["specialist"], **config)
    model.to(map_location)
    try:
        load_weights(model, directory / WEIGHTS, strict=True, device=str(map_location))
    except RuntimeError as err:
        raise ValueError(f"{directory / WEIGHTS}: weights do not fit the described model: {err}") from None
    return model.eval()
