"""The detector every specialist shares: backbone + specialist module + attention fusion + MLP classifier."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from interceptor.inputs import InputKind
from interceptor.models.backbone import Backbone
from interceptor.models.blocks import SpecialistModule
from interceptor.models.classifier import MLPClassifier
from interceptor.models.fusion import AttentionFusion
from interceptor.models.registry import get_specialist
from interceptor.schema import ModelConfig


def key_frame_indices(frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices of a ``frames``-long clip: the centres of equal segments."""
    count = max(1, min(count, frames))
    return [int((i + 0.5) * frames / count) for i in range(count)]


class Detector(nn.Module):
    """A deepfake detector: logits ``(B, 2)`` (index 1 = fake) from face crops in [0, 1].

    Inputs are keyword tensors named by :attr:`input_names`: ``image`` (B, 3, H, W) for frame specialists,
    ``clip`` (B, T, 3, H, W) for clip specialists, plus ``audio`` (B, S) and ``audio_mask`` (B,) for AV.
    The backbone sees ``config.backbone_frames`` evenly spaced frames of a clip and averages their feature
    maps; the specialist module sees the whole clip.
    """

    def __init__(self, specialist: str, config: ModelConfig):
        super().__init__()
        self.specialist_name = specialist.lower()
        self.config = config
        self.backbone = Backbone(config.backbone, config.pretrained, config.pretrained_path)
        self.specialist: SpecialistModule = get_specialist(self.specialist_name)(config)
        self.fusion = AttentionFusion(self.backbone.num_features, self.specialist.out_channels, config.fusion_dim,
                                      config.fusion_heads, config.dropout)
        self.classifier = MLPClassifier(config.fusion_dim, config.classifier_hidden, 2, config.dropout)

    @property
    def input_kind(self) -> InputKind:
        return self.specialist.input_kind

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.input_kind.input_names

    @property
    def specialist_features(self) -> int:
        return self.specialist.features

    def backbone_features(self, image: Tensor | None = None, clip: Tensor | None = None, **_: Tensor) -> Tensor:
        """The backbone's feature map of the image, or the mean over the clip's key frames."""
        if image is not None:
            return self.backbone(image)
        batch, frames = clip.shape[:2]
        indices = key_frame_indices(frames, self.config.backbone_frames)
        selected = clip[:, indices] if len(indices) < frames else clip
        return self.backbone(selected.flatten(0, 1)).unflatten(0, (batch, len(indices))).mean(dim=1)

    def forward(self, **inputs: Tensor) -> Tensor:
        if set(inputs) != set(self.input_names):
            raise TypeError(f"{self.specialist_name} model takes {', '.join(self.input_names)}; "
                            f"got {', '.join(sorted(inputs)) or 'nothing'}")
        fused = self.fusion(self.backbone_features(**inputs), self.specialist(**inputs))
        return self.classifier(fused)

    def example_inputs(self, batch_size: int = 2, image_size: int | None = None) -> dict[str, Tensor]:
        """Random inputs of the model's contract: keys :attr:`input_names`, on the model's device."""
        size = image_size or self.config.image_size
        frames = self.config.frames_per_clip
        device = self.backbone.mean.device
        generator = torch.Generator().manual_seed(0)
        frame_shape = (3, size, size) if self.input_kind is InputKind.FRAME else (frames, 3, size, size)
        inputs = {self.input_names[0]: torch.rand((batch_size, *frame_shape), generator=generator)}
        if self.input_kind.has_audio:
            samples = int(round(self.config.clip_seconds * self.config.audio_rate))
            inputs["audio"] = (torch.rand(batch_size, samples, generator=generator) * 2 - 1) * 0.5
            inputs["audio_mask"] = torch.ones(batch_size)
        return {name: tensor.to(device) for name, tensor in inputs.items()}

    def extra_repr(self) -> str:
        return f"specialist={self.specialist_name!r}, backbone={self.config.backbone!r}"


def build_model(specialist: str, backbone: str = "efficientnet_b4", pretrained: bool = False,
                pretrained_path: str | None = None, **cfg) -> Detector:
    """Build the detector of ``specialist`` (``ll bg av cm rr tm``, any case).

    ``cfg`` takes the other :class:`~interceptor.schema.ModelConfig` keys (``image_size``, ``frames_per_clip``,
    ``fusion_dim``, ...); an unknown key is a TypeError naming it. ``build_model(name, **to_dict(cfg.model))``
    builds from a loaded config.
    """
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise TypeError(f"build_model: unknown model option(s) {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(known))})")
    config = ModelConfig(backbone=backbone, pretrained=pretrained,
                         pretrained_path=str(pretrained_path) if pretrained_path else None, **cfg)
    config.classifier_hidden = list(config.classifier_hidden)
    return Detector(specialist, config)
