"""The cross-dataset matrix: after each stage, its best model on every available dataset split, video level.

Rows are stages, columns are the shard sets named by ``eval_sets`` in the curriculum file (globs such as
``dfdc/chunk-*/test`` make one column). Saved as ``cross_dataset.json`` and ``cross_dataset.md`` in the
specialist's run root. A row gets the splits built after its stage trained (a specialist trained a dataset at a
time) when a later training call updates it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from interceptor.data.shard_sets import DataError, resolve_shard_sets
from interceptor.distributed import DistInfo, barrier
from interceptor.inputs import InputSpec
from interceptor.models.export import load_model
from interceptor.models_dir import CROSS_DATASET
from interceptor.report import markdown_table
from interceptor.schema import Config
from interceptor.scoring import predict_clips
from interceptor.train.curriculum import load_curriculum
from interceptor.utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

CELL_METRICS = ("video_mean_auc", "video_mean_log_loss", "video_mean_eer", "video_confident_auc", "video_mean_count")


def update_cross_dataset(cfg: Config, stage_id: int, model_dir: Path, shards_root: Path, root: Path,
                         dist: DistInfo) -> dict:
    """Evaluate the model a stage ended with (``model_dir``) on every available eval set its row lacks, and record
    the row (collective)."""
    path = root / CROSS_DATASET
    matrix = json.loads(path.read_text()) if path.is_file() else {"columns": [], "rows": {}}
    row_name = f"stage {stage_id}"
    eval_sets = load_curriculum(cfg).eval_sets
    row = matrix["rows"].get(row_name, {})
    missing = {}
    for pattern in eval_sets:
        if pattern in row:
            continue
        try:
            missing[pattern] = resolve_shard_sets(shards_root, [pattern], "cross-dataset evaluation")
        except DataError:
            continue  # that dataset was not built: every *available* split is evaluated
    if row_name in matrix["rows"] and not missing:
        return matrix
    if missing:
        model = load_model(model_dir, map_location="cpu").to(dist.device)
        spec = InputSpec.of(model)
        for pattern, sets in missing.items():
            metrics = predict_clips(model, sets, cfg.data, spec, dist).metrics(
                cfg.train.threshold, cfg.train.confident_min_clips, cfg.eval.face_aggregation)
            row[pattern] = {k: metrics[k] for k in CELL_METRICS}
        del model
        if dist.device.type == "cuda":
            torch.cuda.empty_cache()
    matrix["rows"][row_name] = {pattern: row[pattern] for pattern in eval_sets if pattern in row}
    matrix["columns"] = [c for c in eval_sets if c in matrix["columns"] or c in row]
    if dist.is_main:
        atomic_write_json(path, matrix)
        atomic_write_text(root / "cross_dataset.md", matrix_markdown(matrix))
        log.info("cross-dataset row for %s: %s", row_name,
                 ", ".join(f"{c} AUC {v['video_mean_auc']:.3f}" for c, v in row.items()))
    barrier()
    return matrix


def matrix_markdown(matrix: dict) -> str:
    """The matrix as a markdown table of video-level AUCs (n/a where undefined)."""
    columns = matrix["columns"]
    rows = [[name, *[row.get(c, {}).get("video_mean_auc") for c in columns]] for name, row in matrix["rows"].items()]
    return ("Video-level ROC-AUC (mean of clip probabilities) of each stage's best model.\n\n"
            + markdown_table(["stage", *columns], rows) + "\n")
