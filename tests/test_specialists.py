"""A specialist that stayed near chance before pseudo-fakes (LL) learns its own artifact family through the real
trainer under torchrun, measured on held-out test videos as ``interceptor eval``'s specialization matrix does."""

from __future__ import annotations

import pytest
import torch

from interceptor.evaluation import collect_scores, family_lookup, specialization_matrix
from interceptor.models import load_model
from interceptor.distributed import DistInfo
from training import torchrun, write_curriculum

pytestmark = pytest.mark.slow

TEST_SPLITS = ["ffpp/test", "celebdf/test", "dfdc/chunk-*/test"]


def test_ll_learns_its_own_family_from_pseudo_fakes(tmp_path, shards_root, corpus, demo_config):
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [{
        "id": 1, "name": "all", "train": ["ffpp/train", "celebdf/train", "dfdc/chunk-*/train"],
        "val": ["ffpp/val", "celebdf/val"], "epochs": 3, "lr": 1e-3, "init": "none"}])
    result = torchrun(["--specialist", "ll", "--shards", shards_root, "--run-dir", tmp_path / "runs",
                       f"curriculum={curriculum}", "train.lr_scale=1", "data.batch_size=8", "data.steps_per_epoch=120",
                       "data.workers=1", "data.pseudo_fakes=0.5", "train.checkpoint_every=1000"],
                      timeout=900, log=tmp_path / "train.log")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = load_model(tmp_path / "runs" / "ll" / "stage1-all" / "best")
    dist = DistInfo(0, 1, 0, torch.device("cpu"))
    tables = {split: collect_scores({"ll": model}, shards_root, split, demo_config, dist) for split in TEST_SPLITS}
    matrix = specialization_matrix(tables, family_lookup(corpus / "synth_manifest.json"))
    own = matrix["rows"]["ll"]["LL"]
    assert own["fakes"] >= 10 and own["auc"] >= 0.85, matrix["rows"]["ll"]
