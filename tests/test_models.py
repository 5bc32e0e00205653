"""The six specialist detectors: registry, input contract, gradients, precision, layouts, weights and export."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import timm
import torch

from interceptor.config import load_config, to_dict
from interceptor.models import SPECIALISTS, build_model, export_model, load_model
from interceptor.models.detector import key_frame_indices
from interceptor.schema import ModelConfig

FEATURES = {"ll": 32 * 49, "bg": 44 * 49, "av": 48 * 49, "cm": 40 * 49, "rr": 36 * 49, "tm": 52 * 49}
KINDS = {"ll": "frame", "bg": "frame", "av": "clip+audio", "cm": "frame", "rr": "frame", "tm": "clip"}
TINY = dict(backbone="test_efficientnet", frames_per_clip=3, fusion_dim=32, fusion_heads=4, classifier_hidden=[32, 16])
BACKBONES = {"efficientnet_b4": (dict(backbone="efficientnet_b4", frames_per_clip=3), 224), "tiny": (TINY, 64)}


def tiny_model(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, **{**TINY, **overrides})


def grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------------ registry


def test_registry_holds_the_six_specialists_in_any_case():
    assert list(SPECIALISTS) == ["ll", "bg", "av", "cm", "rr", "tm"]
    assert tiny_model("CM").specialist_name == "cm"
    with pytest.raises(KeyError, match="unknown specialist 'xx'.*ll, bg, av, cm, rr, tm"):
        tiny_model("xx")


def test_unknown_model_option_is_named():
    with pytest.raises(TypeError, match="fusion_dims"):
        build_model("cm", backbone="test_efficientnet", fusion_dims=64)


def test_model_section_of_the_demo_config_builds_every_specialist():
    cfg = load_config()
    assert ModelConfig().backbone == "efficientnet_b4" and ModelConfig().image_size == 380
    assert cfg.model.backbone == "test_efficientnet" and cfg.model.image_size == 112
    for name in SPECIALISTS:
        model = build_model(name, **to_dict(cfg.model)).eval()
        inputs = model.example_inputs(1)
        assert next(iter(inputs.values())).shape[-1] == 112
        assert model(**inputs).shape == (1, 2)


# ------------------------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("backbone", [pytest.param(b, marks=pytest.mark.slow) if b == "efficientnet_b4" else b
                                      for b in BACKBONES])  # a full B4 forward and backward: about a minute each
@pytest.mark.parametrize("name", list(SPECIALISTS))
def test_detector_contract(name, backbone, tmp_path):
    """Shapes, feature size, gradients, batch size 1, bf16 autocast and a safetensors round trip."""
    options, size = BACKBONES[backbone]
    torch.manual_seed(0)
    model = build_model(name, **options)
    assert model.input_kind == KINDS[name] and model.specialist_features == FEATURES[name]
    assert model.specialist_features == model.specialist(**model.example_inputs(1, size)).flatten(1).shape[1]
    inputs = model.example_inputs(2, size)
    assert tuple(inputs) == model.input_names
    if model.input_kind != "frame":
        assert inputs["clip"].shape == (2, 3, 3, size, size)

    logits = model(**inputs)
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
    logits[:, 1].sum().backward()
    for part in (model.backbone, model.fusion, model.classifier):
        assert grad_norm(part) > 0
    for branch_name, branch in model.specialist.branches.items():
        assert grad_norm(branch) > 0, f"no gradient reaches branch {branch_name}"

    model.eval()
    with torch.no_grad():
        single = model(**{k: v[:1] for k, v in inputs.items()})
        reference = model(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_precision = model(**inputs)
    assert single.shape == (1, 2)
    torch.testing.assert_close(single[0], reference[0], rtol=1e-4, atol=1e-4)
    assert low_precision.shape == (2, 2) and torch.isfinite(low_precision).all()
    assert (low_precision.float() - reference).abs().max() < 0.5

    safetensors.torch.save_model(model, str(tmp_path / "model.safetensors"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    safetensors.torch.load_model(model, str(tmp_path / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(model(**inputs), reference)


@pytest.mark.slow  # the ONNX exporter takes 20-40 s a model
@pytest.mark.parametrize("name", ["cm", "av"])
def test_onnx_export_runs_in_onnxruntime_with_the_same_logits(name, tmp_path):
    """A frame model and the clip+audio model; any batch size (the graph's batch axis is dynamic)."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from interceptor.models import export_onnx

    model = tiny_model(name, image_size=64).eval()
    path = export_onnx(model, tmp_path / "model.onnx")
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == list(model.input_names)
    inputs = model.example_inputs(3, 64)
    with torch.no_grad():
        reference = model(**inputs).numpy()
    logits = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})[0]
    assert logits.shape == (3, 2) and abs(logits - reference).max() < 1e-4


@pytest.mark.parametrize("name", list(SPECIALISTS))
def test_a_model_cast_to_bf16_as_deepspeed_does_runs_in_bf16(name):
    """DeepSpeed's bf16/fp16 modes cast the parameters (not the buffers) and feed inputs in that dtype; the
    trainer then gives batch-norm statistics the same dtype. The fixed filters run in float32 and hand back bf16."""
    from interceptor.train.engine import match_norm_statistics

    model = tiny_model(name).eval()
    inputs = model.example_inputs(2, 64)
    with torch.no_grad():
        reference = model(**inputs)
        for p in model.parameters():
            p.data = p.data.bfloat16()
        match_norm_statistics(model)
        logits = model(**{k: v.bfloat16() if v.is_floating_point() else v for k, v in inputs.items()})
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert (logits.float() - reference).abs().max() < 0.5


@pytest.mark.parametrize("name", list(SPECIALISTS))
def test_channels_last_gives_the_same_logits(name):
    model = tiny_model(name).eval()
    inputs = model.example_inputs(2, 64)
    with torch.no_grad():
        reference = model(**inputs)
        model.to(memory_format=torch.channels_last)
        as_channels_last = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v
                            for k, v in inputs.items()}
        torch.testing.assert_close(model(**as_channels_last), reference, rtol=1e-4, atol=1e-4)
    model.train()
    model(**as_channels_last).sum().backward()


def test_inputs_are_checked_by_name():
    model = tiny_model("tm")
    with pytest.raises(TypeError, match="tm model takes clip; got image"):
        model(image=torch.rand(2, 3, 64, 64))


# ------------------------------------------------------------------------------------------------ clips and audio


@pytest.mark.parametrize("name", ["tm", "av"])
@pytest.mark.parametrize("frames,samples", [(2, 3000), (5, 12345)])
def test_clip_models_take_any_frame_count_and_audio_length(name, frames, samples):
    model = tiny_model(name).eval()
    inputs = {"clip": torch.rand(2, frames, 3, 48, 48)}
    if name == "av":
        inputs.update(audio=torch.rand(2, samples) - 0.5, audio_mask=torch.ones(2))
    with torch.no_grad():
        assert model(**inputs).shape == (2, 2)


def test_backbone_sees_evenly_spaced_key_frames():
    assert key_frame_indices(8, 1) == [4]
    assert key_frame_indices(8, 3) == [1, 4, 6]
    assert key_frame_indices(4, 8) == [0, 1, 2, 3]
    model = tiny_model("tm").eval()
    clip = torch.rand(1, 8, 3, 64, 64)
    changed = clip.clone()
    changed[:, [0, 1, 2, 3, 5, 6, 7]] = torch.rand(1, 7, 3, 64, 64)
    with torch.no_grad():
        key_frame = model.backbone(clip[:, 4])
        assert torch.equal(model.backbone_features(clip=clip), key_frame)
        assert torch.equal(model.backbone_features(clip=changed), key_frame)
        model.config.backbone_frames = 8
        every_frame = model.backbone(clip.flatten(0, 1)).unflatten(0, (1, 8)).mean(dim=1)
        torch.testing.assert_close(model.backbone_features(clip=clip), every_frame)


@pytest.mark.parametrize("training", [False, True])
def test_masked_audio_cannot_influence_the_av_model(training):
    """With audio_mask 0 the output is the same whatever the waveform (so "no audio" carries no waveform cue)."""
    model = tiny_model("av").train(training)
    inputs = model.example_inputs(3, 64)
    outputs = []
    for waveform in (torch.zeros_like(inputs["audio"]), torch.rand_like(inputs["audio"]) - 0.5,
                     torch.full_like(inputs["audio"], float("nan"))):
        torch.manual_seed(1)  # same dropout masks
        with torch.no_grad():
            outputs.append(model(clip=inputs["clip"], audio=waveform, audio_mask=torch.zeros(3)))
    assert torch.isfinite(outputs[0]).all()
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
    model.eval()
    with torch.no_grad():
        heard = model(**inputs)
        other = model(**{**inputs, "audio": torch.roll(inputs["audio"], 4000, dims=1)})
    assert not torch.equal(heard, other), "with audio_mask 1 the audio reaches the output"


# ------------------------------------------------------------------------------------------------ weights


def test_normalisation_comes_from_the_backbones_pretrained_config():
    model = tiny_model("ll")
    cfg = timm.create_model("test_efficientnet").pretrained_cfg
    assert model.backbone.mean.flatten().tolist() == pytest.approx(cfg["mean"])
    assert model.backbone.std.flatten().tolist() == pytest.approx(cfg["std"])
    assert "backbone.mean" not in model.state_dict()


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "nested_pt"])
def test_pretrained_path_loads_local_backbone_weights(fmt, tmp_path):
    source = timm.create_model("test_efficientnet", num_classes=1000)  # with a classifier, as published weights are
    state = source.state_dict()
    path = tmp_path / ("weights.safetensors" if fmt == "safetensors" else "weights.pt")
    if fmt == "safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save({"state_dict": state, "epoch": 3} if fmt == "nested_pt" else state, path)
    model = build_model("rr", **{**TINY, "pretrained_path": str(path)})
    loaded = model.backbone.net.state_dict()
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key


def test_pretrained_path_that_does_not_fit_is_an_error(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file(timm.create_model("test_resnet").state_dict(), str(path))
    with pytest.raises(ValueError, match="do not fit backbone 'test_efficientnet'"):
        build_model("rr", **{**TINY, "pretrained_path": str(path)})
    with pytest.raises(FileNotFoundError):
        build_model("rr", **{**TINY, "pretrained_path": str(tmp_path / "missing.pt")})


@pytest.mark.parametrize("name", ["cm", "av"])
def test_export_round_trip_gives_identical_logits(name, tmp_path):
    model = tiny_model(name, image_size=64).eval()
    inputs = model.example_inputs(2)
    export_model(model, tmp_path / "export", threshold=0.37, epoch=4)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["model.json", "model.safetensors"]
    info = json.loads((tmp_path / "export" / "model.json").read_text())
    assert info["specialist"] == name and info["backbone"] == "test_efficientnet"
    assert info["input_names"] == list(model.input_names) and info["input_kind"] == model.input_kind
    assert info["image_size"] == 64 and info["frames_per_clip"] == 3 and info["audio_rate"] == 16000
    assert info["threshold"] == 0.37 and info["epoch"] == 4
    assert info["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    restored = load_model(tmp_path / "export")
    assert not restored.training
    with torch.no_grad():
        assert torch.equal(restored(**inputs), model(**inputs))


def test_summary_prints_one_row_per_specialist(capsys):
    from interceptor.models.summary import main

    assert main(["--backbone", "test_efficientnet", "--size", "64", "--frames", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6
    for row, name in zip(rows[1:], SPECIALISTS):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == name.upper() and cells[1] == KINDS[name]
        assert int(cells[2].replace(",", "")) == FEATURES[name]
        assert float(cells[5]) > float(cells[6]) > 0  # total MACs above the backbone's share
