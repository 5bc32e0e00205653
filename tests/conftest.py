"""Shared fixtures: the synthetic corpus is built once and cached between test sessions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DFDC_SAMPLE = Path(os.environ.get("INTERCEPTOR_DFDC_SAMPLE") or REPO.parent / "shared" / "data" / "dfdc_sample")
CORPUS_DATASETS = {"ffpp": "FaceForensics++", "celebdf": "Celeb-DF-v2", "dfdc": "DFDC"}

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helper modules

# The fixtures that build (or need) the synthetic corpus, its shards, or a real cluster: every test using one is
# end-to-end, marked ``slow`` here so that ``make test-fast`` (``-m "not slow"``) never waits for them.
SLOW_FIXTURES = {"corpus", "corpus_manifest", "corpus_face_clips", "shards_root", "dfdc_sample", "slurm_cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def demo_config():
    from interceptor.config import load_config

    return load_config("demo")


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
    """The two real DFDC videos shipped beside the repository (or at $INTERCEPTOR_DFDC_SAMPLE); skipped if absent."""
    if not (DFDC_SAMPLE / "dfdc_train_part_0" / "metadata.json").is_file():
        pytest.skip(f"real DFDC sample not found at {DFDC_SAMPLE}")
    return DFDC_SAMPLE


def _shards_stamp(corpus: Path, cfg) -> str:
    """What the cached shards depend on: the corpus, the shards config and the builder's code."""
    from interceptor.config import to_dict

    digest = hashlib.sha256((corpus / "synth_manifest.json").read_bytes())
    digest.update(json.dumps(to_dict(cfg), sort_keys=True).encode())
    for source in sorted((REPO / "interceptor" / "shards").glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def shards_root(request, corpus, demo_config) -> Path:
    """The corpus built into shards with the demo config (Haar detector): ROOT/{ffpp,celebdf,dfdc}/.

    Built once with 2 workers and reused while the corpus, the config and the builder's code are unchanged.
    """
    from interceptor.shards.build import build_shards

    root = Path(request.config.cache.mkdir("synthetic-shards"))
    stamp = _shards_stamp(corpus, demo_config.shards)
    if (root / "stamp.txt").is_file() and (root / "stamp.txt").read_text() == stamp:
        return root
    shutil.rmtree(root)
    for dataset, directory in CORPUS_DATASETS.items():
        build_shards(dataset, corpus / directory, root / dataset, demo_config.shards, progress=False)
    (root / "stamp.txt").write_text(stamp)
    return root


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real two-node Slurm cluster on this machine (``slurm_cluster.SlurmCluster``), for the whole session.

    Slurm and munge are installed with apt-get when missing. In CI (``CI`` set) a cluster that cannot be had
    fails the tests; elsewhere they are skipped.
    """
    from slurm_cluster import SlurmCluster, install, missing_programs

    def unavailable(reason: str):
        if os.environ.get("CI"):
            pytest.fail(f"real Slurm cluster needed in CI: {reason}")
        pytest.skip(f"no real Slurm cluster: {reason}")

    if missing_programs() and (reason := install()):
        unavailable(reason)
    if missing := missing_programs():
        unavailable(f"{', '.join(missing)} not found after installing slurm-wlm and munge")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except RuntimeError as err:
        cluster.stop()
        unavailable(str(err))
    yield cluster
    cluster.stop()
