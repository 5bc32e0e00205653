"""The timm backbone: any CNN, its last-stage feature map, ImageNet normalisation built in."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import Tensor, nn


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a local weights file: safetensors, or a ``torch.save``'d state dict read with weights_only.

    A checkpoint that nests its weights under ``state_dict`` or ``model`` is unwrapped, and a ``module.``
    prefix (DataParallel / DDP) is stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


class Backbone(nn.Module):
    """A timm model without its classifier, returning the last-stage feature map (B, num_features, h, w).

    Input is RGB in [0, 1]; the model's pretrained mean and std (from timm's ``pretrained_cfg``) normalise it.
    ``pretrained`` uses timm's own download; ``pretrained_path`` loads a local file instead (the classifier's
    weights in it are ignored; any other missing, unexpected or mis-shaped key is an error).
    """

    def __init__(self, name: str, pretrained: bool = False, pretrained_path: str | Path | None = None):
        super().__init__()
        self.name = name
        self.net = timm.create_model(name, pretrained=pretrained and not pretrained_path, num_classes=0,
                                     global_pool="")
        if pretrained_path:
            self.load_weights(pretrained_path)
        cfg = self.net.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1),
                             persistent=False)
        self.num_features: int = self.net.num_features

    def load_weights(self, path: str | Path) -> None:
        state = read_state_dict(path)
        classifier = self.net.pretrained_cfg.get("classifier") or "classifier"
        state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}
        try:
            self.net.load_state_dict(state)
        except RuntimeError as err:  # missing, unexpected or mis-shaped keys
            raise ValueError(f"{path}: weights do not fit backbone {self.name!r}: {err}") from None

    def forward(self, image: Tensor) -> Tensor:
        features = self.net.forward_features((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))
        if features.dim() != 4:
            raise ValueError(f"backbone {self.name!r} gives a {features.dim()}-D output; a CNN with a "
                             "(B, C, h, w) feature map is required")
        return features
