"""The specialist deepfake detectors (the built-in LL, BG, AV, CM, RR, TM) and their shared building blocks.

    model = build_model("cm", backbone="efficientnet_b4", pretrained=True)
    logits = model(**model.example_inputs(batch_size=2, image_size=380))   # (2, 2), index 1 = fake

See ``docs/models.md`` for the input contract, the modules and their costs, and
``interceptor/models/registry.py`` for adding a specialist.
"""

from interceptor.models.blocks import SpecialistModule
from interceptor.models.detector import Detector, build_model
from interceptor.models.export import export_model, export_onnx, load_model
from interceptor.models.registry import SPECIALISTS, get_specialist, load_entry_points, register_specialist

# Importing the specialist files registers them, in the project's canonical order; installed packages' own
# specialists (the interceptor.specialists entry points) follow.
from interceptor.models import ll, bg, av, cm, rr, tm  # noqa: E402,F401,I001  isort:skip

load_entry_points()

__all__ = ["SPECIALISTS", "Detector", "SpecialistModule", "build_model", "export_model", "export_onnx", "get_specialist",
           "load_model", "register_specialist"]
