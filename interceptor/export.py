"""Collect a curriculum's trained specialists into a self-contained models directory (its layout:
:mod:`interceptor.models_dir`; the final model is the last stage's best).

Every model loads with ``interceptor.models.export.load_model`` alone (no DeepSpeed, no pickle).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from interceptor.models.export import DESCRIPTION, WEIGHTS
from interceptor.models_dir import CROSS_DATASET, MODEL_SUFFIX, STUDENT_SUFFIX
from interceptor.train.curriculum import read_plan
from interceptor.utils import atomic_dir

log = logging.getLogger(__name__)

def _copy_model(source: Path, target: Path, children: dict[str, Path] | None = None,
                extras: list[Path] = ()) -> None:
    """Copy an exported model (and ``children``: name -> exported model, copied into ``target/name``, and the
    ``extras`` files) in one atomic replacement of ``target`` (:func:`~interceptor.utils.atomic_dir`)."""
    with atomic_dir(target) as folder:
        for name in (WEIGHTS, DESCRIPTION):
            shutil.copy2(source / name, folder / name)
        for extra in extras:
            shutil.copy2(extra, folder / extra.name)
        for name, child in (children or {}).items():
            (folder / name).mkdir(parents=True)
            for file in (WEIGHTS, DESCRIPTION):
                shutil.copy2(child / file, folder / name / file)


def collect_models(run_root: Path, out: Path, specialists: list[str]) -> dict[str, dict]:
    """Copy each specialist's final, per-stage and student models from ``run_root`` into ``out``, as the run plan
    training recorded (``RUN/<spec>/plan.json``) names them; specialists never trained (no ``RUN/<spec>``) are
    left out."""
    collected = {}
    for spec in specialists:
        if not (run_root / spec).is_dir():
            log.warning("%s: not trained (no %s)", spec, run_root / spec)
            continue
        final = student = None
        stages: dict[str, Path] = {}
        for run in read_plan(run_root / spec):
            if not (run.best / WEIGHTS).is_file():
                continue
            if run.distill:
                student = run.best
            else:
                final = stages[run.stage] = run.best  # a chunked stage's last chunk with a model wins
        if final is None:
            log.warning("%s: no trained model under %s", spec, run_root / spec)
            continue
        target = out / f"{spec}{MODEL_SUFFIX}"
        matrix = run_root / spec / CROSS_DATASET  # the cross-dataset matrix training recorded, for the report
        _copy_model(final, target, {f"stages/{name}": best for name, best in stages.items()},
                    [matrix] if matrix.is_file() else [])
        if student is not None:
            _copy_model(student, out / f"{spec}{STUDENT_SUFFIX}")
        collected[spec] = {"model": str(target), "stages": sorted(stages), "student": student is not None}
        log.info("%s: final model from %s%s", spec, final, ", student too" if student else "")
    return collected
