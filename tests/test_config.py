"""Typed configuration: errors name the key and the file; overrides apply on top."""

from __future__ import annotations

import subprocess

import pytest

from interceptor.config import ConfigError, load_config, save_resolved, to_dict
from interceptor.schema import Config

from conftest import REPO


def write(tmp_path, text: str):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_demo_config_loads(demo_config):
    assert isinstance(demo_config, Config)
    assert demo_config.synth.videos > 0


def test_production_config_is_the_full_model_on_gpus():
    """The packaged default config (the Slurm scripts' config): EfficientNet-B4 from pretrained weights, FP16 on GPU."""
    cfg = load_config("default")
    assert cfg.model.backbone == "efficientnet_b4" and cfg.model.pretrained and cfg.train.precision == "auto"
    assert cfg.model.context_margin == cfg.shards.margin and cfg.model.image_size == cfg.shards.crop_size


def test_the_demo_curriculum_is_the_real_one_with_fewer_epochs(demo_config):
    """Same stages, datasets, losses and chunk order; fewer epochs; learning rates that fall from stage to stage
    as the real ones do, the later stages' kept higher for a backbone trained from scratch (configs/demo_curriculum.yaml)."""
    from interceptor.train.curriculum import load_curriculum

    demo = load_curriculum(demo_config).stages
    real = {s.id: s for s in load_curriculum(load_config("default")).stages}
    assert [s.id for s in demo] == [1, 2, 4]
    for stage in demo:
        expected = real[stage.id]
        assert (stage.train, stage.val, stage.loss, stage.chunks) == \
            (expected.train, expected.val, expected.loss, expected.chunks)
        assert stage.epochs <= expected.epochs and stage.lr >= expected.lr
    assert demo[0].lr == real[1].lr and [s.lr for s in demo] == sorted((s.lr for s in demo), reverse=True)


def test_packaged_configs_and_the_files_they_name_resolve_from_any_directory(tmp_path, monkeypatch):
    """``demo``/``default`` name the packaged configs, and their curriculum and DeepSpeed JSON are found in the
    package, not the working directory; a path still names a file of one's own."""
    from interceptor.config import CONFIG_DIR
    from interceptor.train.curriculum import load_curriculum
    from interceptor.train.engine import deepspeed_config

    monkeypatch.chdir(tmp_path)
    for name in ("demo", "default"):
        cfg = load_config(name)
        assert to_dict(cfg) == to_dict(load_config(CONFIG_DIR / f"{name}.yaml"))
        assert load_curriculum(cfg).stages
        assert deepspeed_config(cfg, "fp32")["zero_optimization"]["stage"] == cfg.train.zero_stage
    assert load_config(None).model.backbone == load_config("demo").model.backbone == "test_efficientnet"
    (tmp_path / "mine.yaml").write_text("train:\n  lr: 0.5\n")
    assert load_config("mine.yaml").train.lr == 0.5


def test_a_checkout_reads_its_top_level_configs_by_name_and_by_path(monkeypatch):
    """In a checkout the packaged configs are the top-level ``configs/`` folder (the only copy): ``--config demo``
    and ``--config configs/demo.yaml`` from the checkout's root are the same file."""
    from interceptor.config import CONFIG_DIR, resolve_path

    assert CONFIG_DIR == REPO / "configs" and not (REPO / "interceptor" / "configs").exists()
    monkeypatch.chdir(REPO)
    assert to_dict(load_config("configs/demo.yaml")) == to_dict(load_config("demo"))
    assert resolve_path(load_config("demo").curriculum).resolve() == REPO / "configs" / "demo_curriculum.yaml"


def test_an_unknown_packaged_config_name_lists_the_packaged_ones(tmp_path, capsys):
    from interceptor.cli import main

    assert main(["synth", "--out", str(tmp_path / "corpus"), "--config", "prod"]) == 2
    assert "config error: --config prod: no packaged config of that name (packaged: " in capsys.readouterr().err
    assert not (tmp_path / "corpus").exists()


def test_the_demo_checks_its_dfdc_sample_folder_before_any_work(tmp_path, capsys):
    from interceptor.cli import main

    assert main(["demo", "--out", str(tmp_path / "demo"), "--dfdc-sample", str(tmp_path / "none")]) == 2
    assert f"error: --dfdc-sample {tmp_path / 'none'}: no dfdc_train_part_0/*.mp4 videos there" in \
        capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "synth:\n  vidoes: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "synth.vidoes" in str(err.value) and str(path) in str(err.value)


def test_unknown_section_names_key_and_file(tmp_path):
    path = write(tmp_path, "sinth:\n  videos: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sinth'") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_wrong_type_names_key_expected_type_and_value(tmp_path):
    path = write(tmp_path, "synth:\n  videos: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "synth.videos" in message and "expected int" in message and "'many'" in message and str(path) in message


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="synth.seed: expected int"):
        load_config(write(tmp_path, "synth:\n  seed: true\n"))


def test_section_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="synth: expected mapping"):
        load_config(write(tmp_path, "synth: 3\n"))


def test_malformed_yaml_names_file(tmp_path):
    path = write(tmp_path, "synth: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_apply_on_top(tmp_path):
    path = write(tmp_path, "synth:\n  videos: 3\n  seconds: 2.0\n")
    cfg = load_config(path, ["synth.videos=9", "synth.seconds=1e-1", "synth.seed=7"])
    assert (cfg.synth.videos, cfg.synth.seconds, cfg.synth.seed) == (9, 0.1, 7)
    assert isinstance(cfg.synth.seconds, float)


def test_int_is_accepted_for_float(tmp_path):
    assert load_config(write(tmp_path, "synth:\n  seconds: 2\n")).synth.seconds == 2.0


@pytest.mark.parametrize(
    "override, message",
    [
        ("synth.vidoes=3", "unknown key 'synth.vidoes'"),
        ("synth.videos", "expected KEY=VALUE"),
        ("synth.videos=lots", "synth.videos: expected int, got 'lots'"),
        ("synth.videos.count=3", "'synth.videos' is a value, not a section"),
        ("synth..videos=3", "malformed key"),
    ],
)
def test_bad_override_is_a_clear_error(tmp_path, override, message):
    path = write(tmp_path, "synth:\n  videos: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert message in str(err.value)
    assert override.split("=")[0] in str(err.value)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, "synth:\n  videos: 5\n"), ["synth.seed=3"])
    written = save_resolved(cfg, tmp_path / "run")
    assert written.name == "config.yaml"
    again = load_config(written)
    assert to_dict(again) == to_dict(cfg)
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_stage_overrides_can_name_one_specialist(tmp_path):
    from interceptor.train.curriculum import load_curriculum, stage_config

    curriculum = tmp_path / "curriculum.yaml"
    curriculum.write_text("stages:\n  - {id: 1, name: a, train: [x], val: [y], epochs: 1, lr: 1.0e-4, init: none,\n"
                          "     overrides: [data.batch_size=4, 'av:data.batch_size=2', 'av:train.lr=0.5']}\n")
    cfg = load_config("demo", [f"curriculum={curriculum}"])
    stage, = load_curriculum(cfg).stages
    av, ll = stage_config(cfg, stage, "av"), stage_config(cfg, stage, "ll")
    assert (av.data.batch_size, av.train.lr) == (2, 0.5)
    assert (ll.data.batch_size, ll.train.lr) == (4, pytest.approx(1e-4 * cfg.train.lr_scale))


def test_git_commit_is_the_checkouts_own_and_none_for_a_package_inside_another_repository(tmp_path):
    """Runs record the source's commit; an installed package (say, a venv inside some other checkout) has none."""
    from interceptor.utils import git_commit

    assert git_commit(REPO).split("-")[0] == subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                          capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "venv" / "interceptor").mkdir(parents=True)
    assert git_commit(tmp_path / "venv") is None
