"""Exports that a kill never leaves missing or mixed: ``best/`` of a run and ``interceptor export``'s models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from crash import kill_everywhere


@pytest.fixture(scope="module")
def two_models(demo_config):
    from interceptor.config import to_dict
    from interceptor.models import build_model

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_model("cm", **to_dict(demo_config.model)).eval())
    return models


def exported_version(directory: Path, models) -> int:
    """Which of ``models`` the export at ``directory`` holds (its description's step), checking that the weights
    are that model's."""
    from interceptor.models.export import load_model

    step = json.loads((directory / "model.json").read_text())["step"]
    loaded = load_model(directory).state_dict()
    for name, tensor in models[step].state_dict().items():
        expected = tensor.float() if tensor.is_floating_point() else tensor
        torch.testing.assert_close(loaded[name], expected, msg=f"{directory}: step {step} but other weights")
    return step


def test_a_kill_anywhere_in_an_export_leaves_one_complete_model(tmp_path, monkeypatch, two_models):
    from interceptor.models.export import export_model

    best = lambda number: tmp_path / str(number) / "best"  # noqa: E731
    points = kill_everywhere(monkeypatch, lambda n: export_model(two_models[0], best(n), step=0),
                             lambda n: export_model(two_models[1], best(n), step=1),
                             lambda n: exported_version(best(n), two_models))
    assert points >= 2
    assert exported_version(best(points + 1), two_models) == 1
    assert sorted(p.name for p in best(points + 1).parent.iterdir() if not p.is_symlink()) == [
        Path(os.readlink(best(points + 1))).name]  # no replaced folder left behind


def test_a_kill_anywhere_in_interceptor_export_leaves_the_previous_or_the_new_model(tmp_path, monkeypatch,
                                                                                     two_models):
    from interceptor.export import _copy_model
    from interceptor.models.export import export_model

    sources = [export_model(model, tmp_path / f"run{step}", step=step) for step, model in enumerate(two_models)]
    target = lambda number: tmp_path / str(number) / "cm_model"  # noqa: E731

    def check(number):
        step = exported_version(target(number), two_models)
        assert exported_version(target(number) / "stages" / "stage1", two_models) == step  # one consistent tree

    points = kill_everywhere(monkeypatch, lambda n: _copy_model(sources[0], target(n), {"stages/stage1": sources[0]}),
                             lambda n: _copy_model(sources[1], target(n), {"stages/stage1": sources[1]}), check)
    assert points >= 2
