"""Shared fixtures: the synthetic corpus is built once and cached between test sessions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DFDC_SAMPLE = REPO.parent / "shared" / "data" / "dfdc_sample"

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helper modules


@pytest.fixture(scope="session")
def demo_config():
    from interceptor.config import load_config

    return load_config(REPO / "configs" / "demo.yaml")


@pytest.fixture(scope="session")
def corpus(request, demo_config) -> Path:
    """The default synthetic corpus (the demo's), generated once and reused while its config is unchanged."""
    from interceptor.synth import generate_corpus

    root = Path(os.environ.get("INTERCEPTOR_TEST_CORPUS") or request.config.cache.mkdir("synthetic-corpus"))
    return generate_corpus(root, demo_config.synth)


@pytest.fixture(scope="session")
def corpus_manifest(corpus) -> dict:
    return json.loads((corpus / "synth_manifest.json").read_text())["videos"]


@pytest.fixture(scope="session")
def corpus_face_clips(corpus, corpus_manifest) -> dict:
    """Every corpus video as face-crop clips cut with its ground-truth boxes (``face_crops.ClipSpec()``):
    path -> ((clips, T, 64, 64, 3) uint8, (clips, samples) float32 16 kHz audio or None)."""
    from face_crops import ClipSpec, video_clips

    spec = ClipSpec()
    return {path: video_clips(corpus / path, entry, spec) for path, entry in corpus_manifest.items()}


@pytest.fixture(scope="session")
def dfdc_sample() -> Path:
    """The two real DFDC videos shipped beside the repository; the test is skipped where they are absent."""
    if not (DFDC_SAMPLE / "dfdc_train_part_0" / "metadata.json").is_file():
        pytest.skip(f"real DFDC sample not found at {DFDC_SAMPLE}")
    return DFDC_SAMPLE
