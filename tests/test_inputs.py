"""Inputs that are not videos: damaged model exports, a video whose scoring fails, nonsensical synth settings."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from interceptor.cli import main
from interceptor.config import load_config, to_dict
from interceptor.models import build_model, export_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_config):
    """A models directory holding one exported specialist (random weights)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    export_model(build_model("cm", **to_dict(demo_config.model)), root / "cm_model")
    return root


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def edit_json(change):
    def apply(path):
        info = json.loads(path.read_text())
        change(info)
        path.write_text(json.dumps(info))
    return apply


DAMAGE = {
    "truncated weights": ("model.safetensors", truncate, "not a readable safetensors file"),
    "garbage weights": ("model.safetensors", lambda p: p.write_bytes(b"\x00" * 64), "not a readable safetensors"),
    "malformed json": ("model.json", lambda p: p.write_text('{"format": 1,'), "malformed model description"),
    "json not an object": ("model.json", lambda p: p.write_text("[1, 2]"), "expected a JSON object, got list"),
    "json lacks config": ("model.json", edit_json(lambda i: i.pop("config")), "missing key 'config'"),
    "json lacks specialist": ("model.json", edit_json(lambda i: i.pop("specialist")), "missing key 'specialist'"),
    "wrong config type": ("model.json", edit_json(lambda i: i["config"].update(image_size="big")),
                          "config.image_size: expected int, got 'big'"),
    "wrong threshold type": ("model.json", edit_json(lambda i: i.update(threshold="high")),
                             "'threshold' has the wrong type"),
}


@pytest.fixture(params=sorted(DAMAGE))
def damaged(request, exported, tmp_path):
    """A copy of the models directory with one file damaged: (directory, damaged file, expected message)."""
    name, damage, message = DAMAGE[request.param]
    models = tmp_path / "models"
    shutil.copytree(exported / "cm_model", models / "cm_model")  # follows the export's link: real files
    damage(models / "cm_model" / name)
    return models, models / "cm_model" / name, message


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_a_damaged_export_is_one_line_naming_the_file_and_exit_2(damaged, tmp_path, capsys, command):
    models, path, message = damaged
    args = {"predict": ["predict", str(tmp_path / "video.mp4"), "--models", str(models)],
            "eval": ["eval", "--models", str(models), "--shards", str(tmp_path), "--out", str(tmp_path / "report")]}
    assert main(args[command]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {path}:") and message in errors[0], errors


def test_a_video_that_fails_in_any_way_gets_its_error_line_and_the_next_is_scored(exported, corpus,
                                                                                    corpus_manifest):
    from interceptor.predict import Predictor, predict_videos

    videos = [corpus / path for path in list(corpus_manifest)[:2]]

    class RunsOutOfMemoryOnce(Predictor):
        def predict(self, path):
            if path == videos[0]:
                raise RuntimeError("CUDA out of memory")  # not a VideoError: a failure nobody foresaw
            return super().predict(path)

    predictor = RunsOutOfMemoryOnce.load(exported, load_config(), torch.device("cpu"))
    first, second = predict_videos(videos, predictor)
    assert first == {"video": str(videos[0]), "error": f"{videos[0]}: RuntimeError: CUDA out of memory",
                     "seconds": first["seconds"]}
    assert second["label"] in ("real", "fake") and "error" not in second


@pytest.mark.parametrize("overrides, key", [
    (["synth.videos=-5", "synth.seconds=-1"], "synth.videos"),
    (["synth.videos=0"], "synth.videos"),
    (["synth.seconds=0"], "synth.seconds"),
    (["synth.seconds=-1"], "synth.seconds"),
    (["synth.size=0"], "synth.size"),
    (["synth.fps=-25"], "synth.fps"),
    (["synth.dfdc_chunks=0"], "synth.dfdc_chunks"),
    (["synth.crf=99"], "synth.crf"),
])
def test_synth_rejects_non_positive_counts_and_durations_naming_the_key(tmp_path, capsys, overrides, key):
    assert main(["synth", "--out", str(tmp_path / "corpus"), *overrides]) == 2
    assert f"config error: {key}: must be" in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()
