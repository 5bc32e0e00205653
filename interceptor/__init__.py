"""Interceptor: distributed training of six specialist deepfake detectors and their weighted-vote ensemble."""

__version__ = "0.1.0"

LABEL_REAL = 0
LABEL_FAKE = 1
SPECIALISTS = ("ll", "bg", "av", "cm", "rr", "tm")
