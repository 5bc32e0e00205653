"""One row per specialist: input kind, specialist features, parameters and multiply-accumulates per sample.

    python -m interceptor.models.summary [--backbone efficientnet_b4] [--size 380] [--frames 8]

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products, attention;
element-wise operations and the FFT of the log-mel are not counted) and split into the backbone's share, the
specialist module's share and the rest (fusion and classifier). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from interceptor.models.detector import Detector, build_model
from interceptor.models.registry import SPECIALISTS


@dataclass(frozen=True)
class ModelSummary:
    specialist: str
    input_kind: str
    specialist_features: int
    total_params: int
    trainable_params: int
    macs: float  # per sample, whole model
    backbone_macs: float
    specialist_macs: float


def count_macs(model: Detector, image_size: int) -> dict[str, float]:
    """Multiply-accumulates per sample of one forward pass, in total and per top-level submodule."""
    batch = 2  # BatchNorm1d needs more than one sample in train mode; eval mode is used, the count is per sample
    inputs = model.example_inputs(batch, image_size)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.enable_grad():  # grad on: nn.MultiheadAttention skips its uncounted fused fast path
        model(**inputs)
    model.train(was_training)
    counts = {name: sum(ops.values()) / 2 / batch for name, ops in counter.get_flop_counts().items()}
    prefix = type(model).__name__
    return {"total": counts.get("Global", 0.0), **{k.removeprefix(prefix + "."): v for k, v in counts.items()}}


def summarize(specialist: str, backbone: str, image_size: int, frames: int) -> ModelSummary:
    model = build_model(specialist, backbone=backbone, image_size=image_size, frames_per_clip=frames)
    macs = count_macs(model, image_size)
    params = list(model.parameters())
    return ModelSummary(
        specialist=specialist.upper(),
        input_kind=model.input_kind,
        specialist_features=model.specialist_features,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        macs=macs["total"],
        backbone_macs=macs.get("backbone", 0.0),
        specialist_macs=macs.get("specialist", 0.0),
    )


def markdown_table(rows: list[ModelSummary]) -> str:
    lines = [
        "| specialist | input kind | specialist features | total params | trainable params | GMACs/sample "
        "| backbone | specialist module | fusion + classifier |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        rest = r.macs - r.backbone_macs - r.specialist_macs
        lines.append(f"| {r.specialist} | {r.input_kind} | {r.specialist_features:,} | {r.total_params:,} | "
                     f"{r.trainable_params:,} | {r.macs / 1e9:.3f} | {r.backbone_macs / 1e9:.3f} | "
                     f"{r.specialist_macs / 1e9:.3f} | {rest / 1e9:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_b4", help="timm model name (default efficientnet_b4)")
    parser.add_argument("--size", type=int, default=380, help="face crop side in pixels (default 380)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip for TM and AV (default 8)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = [summarize(name, args.backbone, args.size, args.frames) for name in SPECIALISTS]
    print(f"backbone {args.backbone}, {args.size} px crops, {args.frames} frames per clip\n")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
