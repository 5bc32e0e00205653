"""Interceptor: distributed training of specialist deepfake detectors and their weighted-vote ensemble.

The specialists are the registry of :mod:`interceptor.models.registry` (six built in)."""

__version__ = "0.1.0"

LABEL_REAL = 0
LABEL_FAKE = 1
# Datasets the shard builder reads: FF++, Celeb-DF v2, DFDC (training parts), FF++'s DeepFakeDetection and the
# DFDC public test set (evaluation only).
DATASETS = ("ffpp", "celebdf", "dfdc", "dfd", "dfdc_test")
