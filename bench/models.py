"""Training throughput of the six detectors against the bare backbone, on this machine's CPU.

    python bench/models.py [--backbone efficientnet_b4] [--sizes 224 380] [--batch 2] [--rounds 6]

For every crop size, forward+backward steps (batch ``--batch``, gradients only, no optimizer) are timed for
the bare backbone (feature map, global pooling, linear layer: what a plain classifier fine-tune costs) and for
each detector: a warm-up step each, then ``--rounds`` rounds of one step per model, interleaved so that a
burst of other load on the machine hits different models in each round. The fastest step of each (the one
least disturbed, as ``timeit`` does) gives samples/s and the overhead ratio (detector step time / bare
backbone step time). Clip models
get ``--frames`` frames (the backbone sees one key frame, the specialist module all of them).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn

from interceptor.models import SPECIALISTS, build_model
from interceptor.models.backbone import Backbone


class BareBackbone(nn.Module):
    """The baseline: the backbone with global average pooling and a linear layer to two logits."""

    def __init__(self, name: str):
        super().__init__()
        self.backbone = Backbone(name)
        self.head = nn.Linear(self.backbone.num_features, 2)
        self.input_names = ("image",)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image).mean(dim=(-2, -1)))

    def example_inputs(self, batch_size: int, image_size: int) -> dict[str, torch.Tensor]:
        return {"image": torch.rand(batch_size, 3, image_size, image_size)}


def train_step_seconds(model: nn.Module, inputs: dict[str, torch.Tensor]) -> float:
    start = time.perf_counter()
    model(**inputs).sum().backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def benchmark(backbone: str, size: int, batch: int, rounds: int, frames: int) -> list[tuple[str, float, float]]:
    """(name, samples/s, step time over the bare backbone's) for the bare backbone and every specialist."""
    torch.manual_seed(0)
    models = {"backbone": BareBackbone(backbone)}
    models.update({name.upper(): build_model(name, backbone=backbone, frames_per_clip=frames) for name in SPECIALISTS})
    inputs = {name: model.example_inputs(batch, size) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for name, model in models.items():  # warm-up: allocator, oneDNN kernel selection
        train_step_seconds(model, inputs[name])
    for _ in range(rounds):  # interleaved, so that a burst of other load hits different models in each round
        for name, model in models.items():
            times[name].append(train_step_seconds(model, inputs[name]))
    base = min(times["backbone"])
    return [(name, batch / min(t), min(t) / base) for name, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_b4")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 380])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6, help="timed steps per model, one per round")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip for TM and AV")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {size: benchmark(args.backbone, size, args.batch, args.rounds, args.frames) for size in args.sizes}
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}; "
          f"{args.backbone}, batch {args.batch}, {args.frames} frames per clip, best of {args.rounds} steps\n")
    header = " | ".join(f"{s} px samples/s | {s} px × backbone" for s in args.sizes)
    print(f"| model | {header} |")
    print("| --- |" + " ---: | ---: |" * len(args.sizes))
    for i, (name, _, _) in enumerate(results[args.sizes[0]]):
        cells = " | ".join(f"{results[s][i][1]:.2f} | {results[s][i][2]:.2f}" for s in args.sizes)
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
