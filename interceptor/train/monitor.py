"""What a run records: TensorBoard scalars and images, ``metrics.jsonl``, provenance. Rank 0 only."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from interceptor.report import figure_rgb, roc_figure


class RunMonitor:
    """TensorBoard events and ``metrics.jsonl`` in the run directory (a no-op on other ranks)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.run_dir = run_dir
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def scalars(self, values: dict[str, float], step: int, prefix: str) -> None:
        if not self.enabled:
            return
        for name, value in values.items():
            if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def evaluation(self, record: dict, labels, scores, samples, step: int, prefix: str) -> None:
        """Log one evaluation: a metrics.jsonl line, scalars, the ROC image and a few sample crops."""
        if not self.enabled:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps({**record, "time": time.time()}) + "\n")
        self.scalars({k: v for k, v in record.items() if k not in ("step", "epoch")}, step, prefix)
        roc = figure_rgb(roc_figure({prefix: (labels, scores)}, f"{prefix} ROC (clips)"))
        self.writer.add_image(f"{prefix}/roc", roc, step, dataformats="HWC")
        if samples is not None and len(samples):
            self.writer.add_images(f"{prefix}/samples", samples, step, dataformats="NCHW")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
