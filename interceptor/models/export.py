"""Exported detectors: ``model.safetensors`` (weights) and ``model.json`` (everything needed to rebuild it).

    export_model(model, "runs/cm/export", threshold=0.42, epoch=7)
    model = load_model("runs/cm/export")   # eval mode, identical logits

Weights are read with safetensors only (no pickle). The export is written into a new folder that replaces the
old one in a single rename (:func:`~interceptor.utils.atomic_dir`), so a reader sees the complete old export or
the complete new one, never a half-written one or new weights beside an old description.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_weights
from safetensors.torch import save_file

from interceptor.config import ConfigError, from_dict, to_dict
from interceptor.models.detector import Detector, build_model
from interceptor.models.registry import SPECIALISTS
from interceptor.schema import ModelConfig
from interceptor.utils import atomic_dir, atomic_path, read_json

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
    with atomic_dir(directory) as folder:
        # fp32 copies: under DeepSpeed the weights may be fp16/bf16 views into one flat buffer (safetensors
        # refuses shared storage); the export is the portable fp32 model.
        tensors = {name: (t.float() if t.is_floating_point() else t).detach().cpu().clone().contiguous()
                   for name, t in model.state_dict().items()}
        save_file(tensors, str(folder / WEIGHTS),
                  metadata={"specialist": model.specialist_name, "backbone": model.config.backbone})
        (folder / DESCRIPTION).write_text(json.dumps(model_description(model, **meta), indent=2) + "\n")
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


class ExportError(ValueError):
    """An export that cannot be loaded (missing, truncated or malformed file); the message names the file."""


# model.json: the keys load_model and its users read, and their JSON types (``config`` is checked against
# ModelConfig itself; other keys are free metadata).
DESCRIPTION_SCHEMA = {"format": int, "specialist": str, "config": dict, "threshold": (int, float)}


def read_description(directory: str | Path) -> dict[str, Any]:
    """``model.json`` of an export, validated against :data:`DESCRIPTION_SCHEMA` and :class:`ModelConfig`."""
    path = Path(directory) / DESCRIPTION
    try:
        info = read_json(path, "model description")
    except ValueError as err:
        raise ExportError(str(err)) from None
    if not isinstance(info, dict):
        raise ExportError(f"{path}: expected a JSON object, got {type(info).__name__}")
    for key, kind in DESCRIPTION_SCHEMA.items():
        if key not in info:
            raise ExportError(f"{path}: missing key '{key}'")
        if not isinstance(info[key], kind) or isinstance(info[key], bool):
            raise ExportError(f"{path}: '{key}' has the wrong type ({type(info[key]).__name__}: {info[key]!r})")
    if info["format"] != EXPORT_FORMAT:
        raise ExportError(f"{path}: unsupported export format {info['format']!r} (this version reads {EXPORT_FORMAT})")
    if info["specialist"] not in SPECIALISTS:
        raise ExportError(f"{path}: unknown specialist {info['specialist']!r} (registered: {', '.join(SPECIALISTS)}; "
                          "a specialist of your own is registered by the config's specialist_modules or an "
                          "interceptor.specialists entry point, never by a model file)")
    try:  # keys of newer or older versions are ignored; the known ones must have the right types
        from_dict(ModelConfig, _known_config(info), str(path), prefix="config")
    except ConfigError as err:
        raise ExportError(str(err)) from None
    return info


def _known_config(info: dict) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return {k: v for k, v in info["config"].items() if k in known}


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> Detector:
    """Rebuild an exported detector with :func:`build_model` and load its weights, in eval mode. Any unusable
    file is an :class:`ExportError` naming it."""
    directory = Path(directory)
    info = read_description(directory)
    config = _known_config(info)
    config.update(pretrained=False, pretrained_path=None)  # the weights come from the export
    model = build_model(info["specialist"], **config)
    model.to(map_location)
    try:
        load_weights(model, directory / WEIGHTS, strict=True, device=str(map_location))
    except RuntimeError as err:
        raise ExportError(f"{directory / WEIGHTS}: weights do not fit the described model: {err}") from None
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{directory / WEIGHTS}: not a readable safetensors file: {err}") from None
    return model.eval()
