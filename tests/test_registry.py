"""The registry is the list of specialists: each declares its facts in its own file, everything else derives
from the registry, and a user's specialist (a config's ``specialist_modules``, or an installed package's
``interceptor.specialists`` entry point) is trained, exported, evaluated and voted with no edit to the package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from interceptor.config import ConfigError, load_config, to_dict
from interceptor.models import build_model, export_model, load_model
from interceptor.models import registry
from interceptor.models.export import ExportError
from interceptor.pseudo_fakes import PseudoFake

from training import REPO, torchrun, write_curriculum

PLUGIN = "xx_edges"
PLUGIN_SOURCE = '''"""XX, edges: a seventh specialist, defined outside the package in this one file."""

from interceptor.models.blocks import ConvBranch, SpecialistModule
from interceptor.models.filters import Sobel
from interceptor.models.registry import register_specialist
from interceptor.pseudo_fakes import RESAMPLING


@register_specialist("xx")
class EdgeModule(SpecialistModule):
    """One branch on the Sobel derivatives of R, G and B."""

    input_kind = "frame"
    vote_weight = 0.5
    relative_cost = 3.0
    widths = {"edges": 8}
    pseudo_fake = RESAMPLING

    def __init__(self, config):
        super().__init__({"edges": ConvBranch(6, self.widths["edges"])})
        self.sobel = Sobel()

    def signals(self, image):
        return {"edges": self.sobel(image)}
'''
TINY = dict(backbone="test_efficientnet", frames_per_clip=3, fusion_dim=32, fusion_heads=4, classifier_hidden=[32, 16])


def write_plugin(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    return directory


@pytest.fixture
def restored_registry():
    """The registry and the imported modules as they were before the test."""
    saved = dict(registry.SPECIALISTS)
    yield registry.SPECIALISTS
    registry.SPECIALISTS.clear()
    registry.SPECIALISTS.update(saved)
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def plugin(tmp_path, monkeypatch, restored_registry) -> str:
    """The seventh specialist's module, importable (on sys.path) but not imported."""
    monkeypatch.syspath_prepend(str(write_plugin(tmp_path / "plugins")))
    return PLUGIN


# ------------------------------------------------------------------------------------------------ the facts


def test_the_built_in_specialists_declare_their_facts():
    assert registry.fixed_vote_weights() == {"ll": 1.0, "bg": 1.0, "av": 1.0, "cm": 2.0, "rr": 1.0, "tm": 1.0}
    assert registry.fixed_vote_weights({"cm": 3.0})["cm"] == 3.0
    assert registry.costliest_first(["ll", "cm", "tm", "rr"]) == ["tm", "ll", "cm", "rr"]  # stable among equals
    kinds = {name: cls.input_kind for name, cls in registry.SPECIALISTS.items()}
    assert kinds == {"ll": "frame", "bg": "frame", "av": "clip+audio", "cm": "frame", "rr": "frame", "tm": "clip"}
    for name, cls in registry.SPECIALISTS.items():
        module = cls(build_model(name, **TINY).config)
        assert {n: b.out_channels for n, b in module.branches.items()} == cls.widths
        assert module.features == sum(cls.widths.values()) * 49
        assert isinstance(cls.pseudo_fake, PseudoFake)


def test_a_specialist_that_leaves_out_a_fact_or_builds_other_widths_is_named(restored_registry):
    from interceptor.models.blocks import ConvBranch, SpecialistModule

    class Undeclared(SpecialistModule):
        input_kind = "frame"
        widths = {"edges": 4}

    with pytest.raises(TypeError, match="Undeclared does not declare vote_weight, relative_cost, pseudo_fake"):
        registry.register_specialist("yy")(Undeclared)
    assert "yy" not in registry.SPECIALISTS

    @registry.register_specialist("yy")
    class Miswired(Undeclared):
        vote_weight, relative_cost, pseudo_fake = 1.0, 1.0, None

        def __init__(self, config):
            super().__init__({"edges": ConvBranch(3, 5)})

    with pytest.raises(ValueError, match=r"Miswired: its branches \{'edges': 5\} are not its declared widths"):
        build_model("yy", **TINY)
    with pytest.raises(ValueError, match="input_kind 'video' is not one of frame, clip, clip\\+audio"):
        registry.register_specialist("zz")(type("Video", (Miswired,), {"input_kind": "video"}))
    with pytest.raises(ValueError, match="pseudo_fake must be a PseudoFake family"):
        registry.register_specialist("zz")(type("Function", (Miswired,), {"pseudo_fake": print}))


# ------------------------------------------------------------------------------------------------ derivations


def test_a_seventh_specialist_from_the_config_is_in_everything_derived_from_the_registry(plugin, tmp_path):
    from interceptor.models_dir import model_dirs
    from interceptor.predict import load_agent
    from interceptor.train.launch import parse_specialists
    from interceptor.pseudo_fakes import RESAMPLING

    assert "xx" not in registry.SPECIALISTS
    cfg = load_config(None, [f"specialist_modules=[{plugin}]", "agent.fixed_weights={xx: 0.25}",
                             "data.augment.preserve_pixels=[cm, rr, xx]"], check=registry.check_specialists)
    assert parse_specialists("all") == ["ll", "bg", "av", "cm", "rr", "tm", "xx"]
    assert parse_specialists("XX,cm") == ["xx", "cm"]
    assert registry.fixed_vote_weights()["xx"] == 0.5
    assert registry.fixed_vote_weights(cfg.agent.fixed_weights)["xx"] == 0.25
    assert registry.costliest_first(parse_specialists("all"))[:2] == ["xx", "tm"]
    assert registry.pseudo_fake_maker("xx") is RESAMPLING
    model = build_model("xx", **to_dict(cfg.model))
    assert model.input_names == ("image",) and model.specialist_features == 8 * 49
    assert model(**model.example_inputs(2)).shape == (2, 2)
    export_model(model, tmp_path / "models" / "xx_model")
    export_model(build_model("cm", **to_dict(cfg.model)), tmp_path / "models" / "cm_model")
    assert list(model_dirs(tmp_path / "models")) == ["cm", "xx"]
    assert load_model(tmp_path / "models" / "xx_model").specialist_name == "xx"
    agent = load_agent(tmp_path / "models", cfg.agent)  # no agent.json: the fixed vote of every specialist
    assert agent.weights["xx"] == 0.25 and agent.weights["cm"] == 2.0


def test_interceptor_specialists_lists_the_registry_with_the_configs_own(plugin, capsys):
    """What slurm/all_specialists.sh maps its array tasks to."""
    from interceptor.cli import main

    assert main(["specialists", f"specialist_modules=[{plugin}]"]) == 0
    assert capsys.readouterr().out.split() == ["ll", "bg", "av", "cm", "rr", "tm", "xx"]


@pytest.mark.parametrize("override, message", [
    ("specialist_modules=[no_such_module]", "specialist_modules: cannot import 'no_such_module': No module named"),
    ("agent.fixed_weights={zz: 1.0}", "agent.fixed_weights: unknown specialist(s) zz (known: ll, bg, av, cm, rr, tm)"),
    ("data.augment.preserve_pixels=[cm, zz]", "data.augment.preserve_pixels: unknown specialist(s) zz"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match="override") as error:
        load_config(None, [override], check=registry.check_specialists)
    assert message in str(error.value)


def test_a_model_file_never_names_code_to_import(tmp_path, monkeypatch):
    """An export of an unregistered specialist is refused; the module its file names is not imported."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "planted.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\n")
    export = export_model(build_model("cm", **TINY), tmp_path / "cm_model")
    description = json.loads((export / "model.json").read_text())
    (export / "model.json").write_text(json.dumps({**description, "specialist": "planted"}))
    with pytest.raises(ExportError, match="unknown specialist 'planted'.*never by a model file"):
        load_model(export)
    assert not (tmp_path / "imported").exists() and "planted" not in sys.modules


def test_an_installed_package_registers_its_specialists_by_entry_point(tmp_path):
    """A distribution on the path whose metadata lists the module in the interceptor.specialists group."""
    site = write_plugin(tmp_path / "site")
    info = site / "xx_edges-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xx-edges\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[interceptor.specialists]\nxx = {PLUGIN}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])}
    listing = "from interceptor.models import SPECIALISTS; print(list(SPECIALISTS))"
    result = subprocess.run([sys.executable, "-c", listing], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(["ll", "bg", "av", "cm", "rr", "tm", "xx"])


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_a_seventh_specialist_is_trained_exported_evaluated_and_voted(tmp_path, shards_root, corpus,
                                                                       corpus_manifest):
    """The seventh specialist's one file and a config naming it: torchrun trains it beside CM (the supervisor's
    separate torchrun jobs import it too), export collects it, eval fits the agent on it, predict votes with it."""
    env = {"PYTHONPATH": os.pathsep.join([str(write_plugin(tmp_path / "plugins")), str(REPO),
                                          os.environ.get("PYTHONPATH", "")])}
    curriculum = write_curriculum(tmp_path / "curriculum.yaml", [{"id": 1, "name": "ffpp", "train": ["ffpp/train"],
                                                                  "val": ["ffpp/val"], "epochs": 1, "lr": 1e-3,
                                                                  "init": "none"}])
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config.update(specialist_modules=[PLUGIN], curriculum=str(curriculum))
    config["agent"] = {"fit_sets": ["ffpp/val"]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    common = ["--config", tmp_path / "config.yaml"]

    trained = torchrun(["--specialist", "cm,xx", "--shards", shards_root, "--run-dir", tmp_path / "runs", *common,
                        "data.batch_size=8", "data.steps_per_epoch=4"], nproc=2, timeout=900,
                       log=tmp_path / "train.log", env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert re.search(r"xx started on CPU slots", trained.stderr).start() < trained.stderr.index("cm started")
    assert (tmp_path / "runs" / "xx" / "stage1-ffpp" / "best" / "model.safetensors").is_file()

    def interceptor(*args) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "interceptor", *map(str, args)], cwd=REPO, capture_output=True,
                              text=True, timeout=900, env={**os.environ, **env})

    exported = interceptor("export", "--runs", tmp_path / "runs", "--out", tmp_path / "models", *common)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"xx: {tmp_path / 'models' / 'xx_model'}" in exported.stdout
    evaluated = interceptor("eval", "--models", tmp_path / "models", "--shards", shards_root, "--splits", "ffpp/test",
                            "--out", tmp_path / "report", *common)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    agent = json.loads((tmp_path / "models" / "agent.json").read_text())
    assert set(agent["weights"]) == {"cm", "xx"} and agent["weights"]["xx"] > 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert 0 <= metrics["splits"]["ffpp/test"]["xx"]["all"]["auc"] <= 1

    video = next(p for p, v in corpus_manifest.items() if v["dataset"] == "ffpp")
    predicted = interceptor("predict", corpus / video, "--models", tmp_path / "models", "--json", "--config",
                            tmp_path / "config.yaml")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    voted = json.loads(predicted.stdout)["specialists"]["xx"]
    assert voted["weight"] > 0 and 0 <= voted["probability"] <= 1
