"""The layout of a models directory, which ``interceptor export`` writes and ``eval`` and ``predict`` read:

    MODELS/<spec>_model/                    the specialist's final model, safetensors + JSON (export_model)
    MODELS/<spec>_model/cross_dataset.json  the cross-dataset matrix training recorded (each stage's best model)
    MODELS/<spec>_model/stages/<stage>/     the best model at the end of every stage
    MODELS/<spec>_model_student/            the distilled student, where the curriculum has a distillation stage
    MODELS/agent.json                       the ensemble weights (written by ``interceptor eval``)
"""

from __future__ import annotations

from pathlib import Path

from interceptor.models.export import WEIGHTS
from interceptor.models.registry import SPECIALISTS

MODEL_SUFFIX = "_model"
STUDENT_SUFFIX = "_model_student"
CROSS_DATASET = "cross_dataset.json"  # in the specialist's run root, and copied into its exported model directory
AGENT_FILE = "agent.json"


def model_dirs(models: Path, students: bool = False) -> dict[str, Path]:
    """The registered specialists' model directories found in ``models``, in registry order."""
    suffix = STUDENT_SUFFIX if students else MODEL_SUFFIX
    return {s: models / f"{s}{suffix}" for s in SPECIALISTS if (models / f"{s}{suffix}" / WEIGHTS).is_file()}
