"""The data path without torchrun: the input contract, augmentation, the shard manifest, and the training stream's
resume and corrupt-sample accounting over small shard sets written here."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import REPO
from interceptor.config import load_config
from interceptor.data.decoding import Augmenter
from interceptor.data.shard_sets import DataError, resolve_shard_sets
from interceptor.data.streams import TrainStream, loader
from interceptor.inputs import InputKind, InputSpec, chosen_frames, clip_item, fit_audio
from interceptor.shards.build import merge_manifests
from interceptor.shards.inspection import inspect_shards
from interceptor.shards.manifest import MANIFEST, ManifestError, ShardFile, ShardManifest

SIZE = 24  # crop side of the shards written here


# ------------------------------------------------------------------------------------------------ input contract


def test_input_kinds_read_and_write_as_their_names():
    assert InputKind("clip+audio") is InputKind.CLIP_AUDIO and InputKind.FRAME == "frame"
    assert json.dumps({"kind": InputKind.CLIP_AUDIO}) == '{"kind": "clip+audio"}' and f"{InputKind.CLIP}" == "clip"
    assert InputSpec("frame", 64, 1).kind is InputKind.FRAME  # a specialist declares its kind as a string
    with pytest.raises(ValueError, match="'video'"):
        InputSpec("video", 64, 1)


@pytest.mark.parametrize("specialist", ["ll", "av", "tm"])
def test_the_model_takes_the_inputs_its_kind_names(specialist):
    from interceptor.inputs import model_inputs, stack_inputs
    from interceptor.models import build_model

    model = build_model(specialist, backbone="test_efficientnet", image_size=32, frames_per_clip=4, fusion_dim=32,
                        fusion_heads=4, classifier_hidden=[16])
    spec = InputSpec.of(model)
    clip = np.random.default_rng(0).integers(0, 256, (8, 40, 40, 3), dtype=np.uint8)
    audio = np.arange(5000, dtype=np.int16)
    batch = stack_inputs([clip_item(clip, audio, spec), clip_item(clip, None, spec)], spec)
    inputs = model_inputs(batch, spec, torch.device("cpu"))
    assert tuple(inputs) == spec.kind.input_names == model.input_names
    assert model.eval()(**inputs).shape == (2, 2)


def test_importing_predict_and_evaluation_loads_no_training_module():
    code = ("import sys, interceptor.predict, interceptor.evaluation; "
            "print(sorted(m for m in sys.modules if m.startswith('interceptor.train')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


def test_chosen_frames_by_kind_and_mode():
    frame, clip = InputSpec(InputKind.FRAME, 32, 1), InputSpec(InputKind.CLIP, 32, 4)
    assert chosen_frames(8, frame, None) == [4]
    assert chosen_frames(8, frame, None, eval_frames="all") == list(range(8))
    drawn = {chosen_frames(8, frame, np.random.default_rng(seed))[0] for seed in range(40)}
    assert drawn == set(range(8))  # training: any frame, one at a time
    assert chosen_frames(8, clip, None) == [0, 2, 4, 6] == chosen_frames(8, clip, np.random.default_rng(0))
    assert chosen_frames(9, clip, None) == [0, 2, 4, 6] and chosen_frames(4, clip, None) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="clip has 3 frames, the model needs 4"):
        chosen_frames(3, clip, None)
    with pytest.raises(ValueError, match="clip has no frames"):
        chosen_frames(0, frame, None)


def test_fit_audio_stretches_linearly_and_fills_silence():
    ramp = torch.arange(0, 1000, 10, dtype=torch.int16)  # 100 samples: 0, 10, ..., 990
    assert fit_audio(ramp, 100) is ramp
    stretched = fit_audio(ramp, 199)
    assert stretched.dtype == torch.int16 and len(stretched) == 199
    assert stretched[0] == 0 and stretched[-1] == 990 and stretched[::2].tolist() == ramp.tolist()
    assert stretched[1::2].tolist() == list(range(5, 990, 10))  # halfway between neighbours
    assert fit_audio(ramp, 50).tolist() == np.round(np.linspace(0, 990, 50)).astype(int).tolist()
    assert fit_audio(torch.zeros(0, dtype=torch.int16), 30).tolist() == [0] * 30


def augment_config(**changes):
    return replace(load_config(None).data.augment, color_jitter=0.0, **changes)


def test_preserve_pixels_crops_whole_pixels_the_same_way_in_every_frame():
    clip = np.random.default_rng(1).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    augment = Augmenter(augment_config(hflip=0.5, recompress_prob=1.0, resample_prob=1.0), True, 32)
    flips = set()
    for seed in range(12):
        out, device = augment(clip, np.random.default_rng(seed))
        flipped = device["flip"]
        assert out.shape == (3, 32, 32, 3) and device["jitter"].tolist() == [1, 1, 1]
        assert device["crop"].tolist() == [0, 0, 32, 32]  # nothing left to resample on the device
        offsets = [(y, x) for y in range(9) for x in range(9) if (out == clip[:, y:y + 32, x:x + 32]).all()]
        assert len(offsets) == 1, seed  # the pixels themselves, one window for the whole clip, no resampling
        flips.add(flipped)  # drawn here, applied on the device (test_inputs)
    assert flips == {True, False}


def test_other_specialists_get_resampled_crops_deterministically_by_rng():
    clip = np.random.default_rng(2).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    augment = Augmenter(replace(augment_config(), color_jitter=0.2), False, 32)
    (first, device), (again, device_again) = (augment(clip, np.random.default_rng(5)) for _ in range(2))
    jitter = device["jitter"]
    assert first.shape == (3, 32, 32, 3) and first.dtype == np.uint8 and (first == again).all()
    assert device["flip"] == device_again["flip"] and (jitter == device_again["jitter"]).all()
    assert ((0.8 <= jitter) & (jitter <= 1.2)).all() and device["crop"].tolist() == [0, 0, 32, 32]
    assert not any((first == clip[:, y:y + 32, x:x + 32]).all() for y in range(9) for x in range(9))
    item = clip_item(clip, None, InputSpec(InputKind.CLIP, 32, 3), np.random.default_rng(5), augment)
    assert (item["pixels"].numpy() == first).all()  # clip_item: augment, then (T, H, W, 3) uint8
    assert item["flip"] == device["flip"] and (item["jitter"] == jitter).all()


def test_model_inputs_turn_uint8_channels_last_batches_into_float_on_the_device():
    from interceptor.inputs import model_inputs, stack_inputs

    frames = np.random.default_rng(3).integers(0, 256, (2, 4, 36, 40, 3), dtype=np.uint8)
    frame, clip = InputSpec(InputKind.FRAME, 32, 1), InputSpec(InputKind.CLIP, 32, 4)
    frame_batch = stack_inputs([clip_item(f, None, frame) for f in frames], frame)
    assert frame_batch["pixels"].dtype == torch.uint8 and frame_batch["pixels"].shape == (2, 32, 32, 3)
    image = model_inputs(frame_batch, frame, torch.device("cpu"), channels_last=True)["image"]
    assert image.shape == (2, 3, 32, 32) and image.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(image, frame_batch["pixels"].permute(0, 3, 1, 2).float() / 255)
    clip_batch = stack_inputs([clip_item(f, None, clip) for f in frames], clip)
    inputs = model_inputs(clip_batch, clip, torch.device("cpu"), torch.bfloat16)
    assert inputs["clip"].shape == (2, 4, 3, 32, 32) and inputs["clip"].dtype == torch.bfloat16
    assert inputs["clip"].is_contiguous()


def reference_jitter(frames: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """The colour jitter of one sample's float (T, H, W, 3) frames in [0, 1], written out in numpy."""
    adjusted = np.clip(frames * brightness * contrast + frames.mean() * brightness * (1 - contrast), 0, 1)
    grey = adjusted @ np.array([0.299, 0.587, 0.114])
    return np.clip(adjusted * saturation + grey[..., None] * (1 - saturation), 0, 1)


def test_device_augmentation_applies_each_samples_drawn_flip_and_jitter():
    from interceptor.inputs import model_inputs, stack_inputs

    clip = InputSpec(InputKind.CLIP, 32, 3)
    augment = Augmenter(replace(augment_config(), color_jitter=0.3), False, 32)
    frames = np.random.default_rng(4).integers(0, 256, (6, 3, 40, 40, 3), dtype=np.uint8)
    items = [clip_item(f, None, clip, np.random.default_rng(seed), augment) for seed, f in enumerate(frames)]
    again = [clip_item(f, None, clip, np.random.default_rng(seed), augment) for seed, f in enumerate(frames)]
    assert [(i["flip"], i["jitter"].tolist()) for i in items] == [(i["flip"], i["jitter"].tolist()) for i in again]
    batch = stack_inputs(items, clip)
    assert batch["flip"].dtype == torch.bool and batch["jitter"].shape == (6, 3)
    assert 0 < batch["flip"].sum() < 6  # both kinds in the batch
    out = model_inputs(batch, clip, torch.device("cpu"))["clip"].numpy().transpose(0, 1, 3, 4, 2)
    for item, sample in zip(items, out):
        expected = reference_jitter(item["pixels"].numpy() / 255, *item["jitter"].tolist())
        assert np.abs(sample - (expected[:, :, ::-1] if item["flip"] else expected)).max() < 1e-5


def test_frames_at_the_models_size_leave_whole_and_are_crop_resized_on_the_device():
    from interceptor.inputs import model_inputs, stack_inputs

    frame = InputSpec(InputKind.FRAME, 32, 1)
    augment = Augmenter(replace(augment_config(), hflip=0.0), False, 32)
    ramp = np.sin(np.arange(32) / 5)  # smooth, as a face crop is at the scale of a pixel
    source = (127 + 60 * ramp[:, None, None] + 60 * ramp[None, ::-1, None] * np.array([1, 0.5, -1])).astype(np.uint8)
    items = [clip_item(source[None], None, frame, np.random.default_rng(seed), augment) for seed in range(4)]
    assert all((item["pixels"].numpy() == source).all() for item in items)  # whole: no crop, no resize here
    batch = stack_inputs(items, frame)
    assert batch["crop"].shape == (4, 4) and (batch["crop"][:, 2:] < 32).any()
    image = model_inputs(batch, frame, torch.device("cpu"))["image"].numpy().transpose(0, 2, 3, 1)
    for (top, left, height, width), row in zip(batch["crop"].int().tolist(), image):
        expected = cv2.resize(source[top:top + height, left:left + width].astype(np.float32) / 255, (32, 32))
        assert np.abs(row - expected).max() < 1e-5  # as cv2.resize resizes the box


def test_pixel_preserving_crops_reach_the_model_as_whole_pixels_flipped_or_not():
    from interceptor.inputs import model_inputs, stack_inputs

    frame = InputSpec(InputKind.FRAME, 32, 1)
    augment = Augmenter(augment_config(hflip=0.5), True, 32)  # CM, RR: no jitter configured, whole-pixel crops
    source = np.random.default_rng(6).integers(0, 256, (1, 40, 40, 3), dtype=np.uint8)
    items = [clip_item(source, None, frame, np.random.default_rng(seed), augment) for seed in range(8)]
    batch = stack_inputs(items, frame)
    image = model_inputs(batch, frame, torch.device("cpu"))["image"]
    assert torch.equal(image * 255, image.mul(255).round())  # no value between two uint8 levels
    for item, flipped, row in zip(items, batch["flip"].tolist(), image):
        expected = item["pixels"][0].permute(2, 0, 1).float() / 255
        assert torch.equal(row, expected.flip(-1) if flipped else expected)
    assert set(batch["flip"].tolist()) == {True, False}


def test_an_items_pixels_end_in_its_batch_slot_with_or_without_resizing():
    from interceptor.inputs import stack_inputs

    clip = InputSpec(InputKind.CLIP, 32, 2)
    frames = np.random.default_rng(7).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    pixels = torch.zeros((3, 2, 32, 32, 3), dtype=torch.uint8)
    whole = clip_item(frames, None, clip, out=pixels[0].numpy())  # decoded straight into the slot
    resized = clip_item(np.repeat(np.repeat(frames, 2, 1), 2, 2), None, clip, out=pixels[1].numpy())
    assert np.shares_memory(whole["pixels"].numpy(), pixels[0].numpy()) and torch.equal(pixels[0], whole["pixels"])
    assert np.shares_memory(resized["pixels"].numpy(), pixels[1].numpy())
    assert torch.equal(whole["pixels"], clip_item(frames, None, clip)["pixels"])
    assert torch.equal(pixels[0], torch.from_numpy(frames[[0, 2]])) and not pixels[2].any()
    assert stack_inputs([whole, resized], clip, pixels)["pixels"].shape == (2, 2, 32, 32, 3)


def test_training_batches_hold_each_samples_own_frames_after_corrupt_samples_and_in_workers(one_shard_per_worker):
    """Samples are decoded into their slot of the batch's pixels (shared memory in a worker); a corrupt sample's
    slot is taken by the next sample. Sample vI of the shards written here has frames of value 10 I and 10 I + 1."""
    for workers in (0, 2):
        for batch in batches(one_shard_per_worker, data_config(workers=workers, sampling="resample"), 6):
            for sample_key, frame in zip(batch["key"], batch["pixels"]):
                index = int(sample_key.split("v")[-1].split("-")[0])
                assert int(frame[0, 0, 0]) in (10 * index, 10 * index + 1) and (frame == frame[0, 0, 0]).all()


class _PixelBatchInWorker(torch.utils.data.IterableDataset):
    def __iter__(self):
        from interceptor.data.decoding import pixel_batch

        clip, frame = InputSpec(InputKind.CLIP, 8, 3), InputSpec(InputKind.FRAME, 8, 1)
        yield pixel_batch(2, clip).is_shared(), pixel_batch(2, frame).shape


def test_a_loader_worker_makes_its_batches_in_shared_memory():
    from interceptor.data.decoding import pixel_batch

    worker = torch.utils.data.DataLoader(_PixelBatchInWorker(), batch_size=None, num_workers=1)
    assert list(worker) == [[True, [2, 1, 8, 8, 3]]]  # sent to the training process as it is, no copy
    assert not pixel_batch(2, InputSpec(InputKind.CLIP, 8, 3)).is_shared()  # in the training process itself


def test_the_loaders_process_keeps_the_memory_it_frees():
    """After ``keep_freed_memory`` a freed 64 MB buffer stays mapped (so the next one is not faulted in again);
    before it, glibc unmaps it. Each in a fresh process."""
    script = """
import sys
import numpy as np
from interceptor.data.streams import keep_freed_memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

if sys.argv[1] == "keep":
    keep_freed_memory()
buffer = np.ones(64 << 20, np.uint8)
before = rss_mb()
del buffer
print(before - rss_mb())
"""
    freed = {mode: float(subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                        check=True).stdout) for mode in ("default", "keep")}
    assert freed["default"] > 60 and freed["keep"] < 4, freed


# ------------------------------------------------------------------------------------------------ shard manifest


def manifest(**changes) -> ShardManifest:
    fields = dict(format="interceptor-webdataset-shards", builder_version=2, dataset="ffpp", shard_set="train",
                  split="train", chunk=None, tasks=1, total_samples=3, total_videos=1,
                  samples_by_label={"0": 2, "1": 1}, samples_by_method={"original": 3},
                  videos_by_label={"0": 1}, videos_by_method={"original": 1}, clips_without_face=0,
                  shards=[ShardFile("shard-000-00000.tar", 3, 10240, "ab" * 32)], skipped=[], missing=[],
                  unlisted=[], warnings=[], faces=1, fake_faces_unchanged=0, fakes_without_original=0,
                  fakes_without_changed_face=0, protocol="standard", settings={"margin": 0.333},
                  settings_sha256="cd" * 32, inputs_sha256="ef" * 32)
    return ShardManifest(**{**fields, **changes})


def documented_manifest_fields() -> set[str]:
    text = (REPO / "shards" / "FORMAT.md").read_text().split("## Manifest", 1)[1]
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in row.replace("`", "").replace(" ", "").split(",")}


def test_the_manifest_object_is_the_documented_json_and_round_trips(tmp_path):
    written = manifest().save(tmp_path / MANIFEST)
    data = json.loads(written.read_text())
    assert set(data) == documented_manifest_fields()  # a final manifest has no task
    assert data["shards"] == [{"name": "shard-000-00000.tar", "samples": 3, "bytes": 10240, "sha256": "ab" * 32}]
    assert ShardManifest.load(written) == manifest()
    part = manifest(task=1).save(tmp_path / "part.json")
    assert json.loads(part.read_text())["task"] == 1 and ShardManifest.load(part).task == 1


def test_a_version_1_manifest_keeps_its_fields(tmp_path):
    old = manifest(builder_version=1, faces=None, fake_faces_unchanged=None, fakes_without_original=None,
                   fakes_without_changed_face=None, protocol=None, settings_sha256=None, inputs_sha256=None)
    path = old.save(tmp_path / MANIFEST)
    assert "faces" not in json.loads(path.read_text()) and ShardManifest.load(path) == old


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "builder_version": 3}, "shards of builder version 3; this reader reads versions 1, 2"),
    (lambda d: {**d, "format": "tar"}, "not a shard manifest (format 'tar'"),
    (lambda d: {k: v for k, v in d.items() if k not in ("total_videos", "inputs_sha256")},
     "not a version 2 shard manifest (shards/FORMAT.md): missing total_videos, inputs_sha256"),
    (lambda d: {**d, "colour": "blue"}, "unknown colour"),
    (lambda d: {**d, "shards": [{"name": "a.tar"}]}, "malformed shard list"),
    (lambda d: {**d, "samples_by_label": [2, 1]}, "counts and settings must be JSON objects"),
    (lambda d: [d], "a JSON object is expected"),
])
def test_a_bad_manifest_is_an_error_naming_the_file(tmp_path, change, message):
    path = tmp_path / MANIFEST
    path.write_text(json.dumps(change(manifest().to_json())))
    with pytest.raises(ManifestError, match=f"^{str(path)}: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        ShardManifest.load(path)


def test_partial_manifests_merge_into_one(tmp_path):
    first = manifest(tasks=2, task=0, skipped=[{"path": "b.mp4", "reason": "no face"}])
    second = manifest(tasks=2, task=1, shards=[ShardFile("shard-001-00000.tar", 4, 20480, "00" * 32)],
                      total_samples=4, samples_by_label={"1": 4}, samples_by_method={"Deepfakes": 4},
                      skipped=[{"path": "a.mp4", "reason": "unreadable"}])
    first.save(tmp_path / "manifest-part-000-of-002.json")
    assert merge_manifests(tmp_path, 2) is None  # waits for every part
    second.save(tmp_path / "manifest-part-001-of-002.json")
    merged = ShardManifest.load(merge_manifests(tmp_path, 2))
    assert merged.task is None and merged.total_samples == 7 and merged.samples_by_label == {"0": 2, "1": 5}
    assert [s.name for s in merged.shards] == ["shard-000-00000.tar", "shard-001-00000.tar"]
    assert [s["path"] for s in merged.skipped] == ["a.mp4", "b.mp4"]


def test_inspect_reports_an_unreadable_manifest_as_a_problem(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / MANIFEST).write_text(json.dumps({"builder_version": 7}))
    _, problems = inspect_shards(tmp_path)
    assert problems == [f"{tmp_path / 'train' / MANIFEST}: shards of builder version 7; this reader reads versions "
                        "1, 2 (shards/FORMAT.md): rebuild them with `interceptor shards build`"]


# ------------------------------------------------------------------------------------------------ streams


def png(value: int) -> bytes:
    return cv2.imencode(".png", np.full((SIZE, SIZE, 3), value, np.uint8))[1].tobytes()


def write_shard_set(directory: Path, shards: list[list[tuple[str, int, bool]]]) -> Path:
    """A shard set of 2-frame clips: each shard a list of (key, label, corrupt); a corrupt sample's frames do not
    decode. Its manifest is written with :class:`ShardManifest`."""
    directory.mkdir(parents=True)
    files = []
    for number, samples in enumerate(shards):
        name = f"shard-000-{number:05d}.tar"
        with tarfile.open(directory / name, "w") as tar:
            for index, (key, label, corrupt) in enumerate(samples):
                meta = {"dataset": "ffpp", "source": f"{key}.mp4", "has_audio": False}
                members = {"cls": str(label).encode(), "json": json.dumps(meta).encode(),
                           **{f"f{t:02d}.png": b"not a png" if corrupt else png(index * 10 + t) for t in range(2)}}
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        files.append(ShardFile(name, len(samples), (directory / name).stat().st_size, "00" * 32))
    labels = [label for samples in shards for _, label, _ in samples]
    manifest(shard_set=directory.name, shards=files, total_samples=len(labels),
             samples_by_label={"0": labels.count(0), "1": labels.count(1)}).save(directory / MANIFEST)
    return directory


def key(worker: int, index: int) -> str:
    return f"ffpp-train-original-w{worker}v{index}-face0-clip00"


@pytest.fixture
def one_shard_per_worker(tmp_path) -> Path:
    """Two shards (one per loader worker under data.sampling=partition) of 4 samples, the 4th corrupt."""
    return write_shard_set(tmp_path / "train", [[(key(w, i), i % 2, i == 3) for i in range(4)] for w in (0, 1)])


def data_config(**overrides):
    settings = {"workers": 2, "batch_size": 3, "shuffle_buffer": 1, "balance": "loss", "sampling": "partition",
                "pseudo_fakes": 0, "prefetch": 1, **overrides}
    return load_config(None, [f"data.{k}={v}" for k, v in settings.items()]).data


def batches(shard_set: Path, cfg, count: int, skip: dict | None = None, first_worker: int = 0) -> list[dict]:
    sets = resolve_shard_sets(shard_set.parent, [shard_set.name], "train")
    stream = TrainStream(sets, cfg, InputSpec(InputKind.FRAME, SIZE, 1), False, seed=0, epoch=0, rank=0, world=1,
                         skip=skip, first_worker=first_worker)
    iterator = iter(loader(stream, cfg))
    return [next(iterator) for _ in range(count)]


def trainer():
    from interceptor.train.trainer import Trainer

    state = Trainer.__new__(Trainer)  # the loop's data bookkeeping only: no model, no process group
    state.batches_in_epoch, state.position = 0, {}
    state.counters = {"nonfinite_skipped": 0, "corrupt_samples": 0}
    return state


def test_corrupt_samples_of_every_loader_worker_add_up(one_shard_per_worker):
    """Each worker reads its own shard in order (shuffle buffer of 1): raw sample n of a worker is corrupt
    exactly when n is a multiple of 4, so a worker that consumed c raw samples skipped c // 4."""
    state = trainer()
    for batch in batches(one_shard_per_worker, data_config(), 8):
        state.record_batch(batch)
    assert set(state.position) == {0, 1} and state.batches_in_epoch == 8
    assert state.counters["corrupt_samples"] == sum(c // 4 for c in state.position.values()) == 6


def test_a_resumed_stream_skips_exactly_the_consumed_samples_of_each_worker(one_shard_per_worker):
    cfg = data_config(shuffle_buffer=4, sampling="resample")
    uninterrupted = trainer()
    straight = batches(one_shard_per_worker, cfg, 9)
    for batch in straight:
        uninterrupted.record_batch(batch)
    resumed = trainer()
    for batch in straight[:5]:  # the checkpoint: position and counters after 5 batches
        resumed.record_batch(batch)
    after = batches(one_shard_per_worker, cfg, 4, skip=dict(resumed.position), first_worker=5 % cfg.workers)
    for expected, batch in zip(straight[5:], after):
        assert batch["key"] == expected["key"] and batch["worker"] == expected["worker"]
        assert batch["consumed"] == expected["consumed"] and torch.equal(batch["pixels"], expected["pixels"])
        assert torch.equal(batch["flip"], expected["flip"]) and torch.equal(batch["jitter"], expected["jitter"])
        resumed.record_batch(batch)
    assert resumed.position == uninterrupted.position and resumed.counters == uninterrupted.counters
    assert uninterrupted.counters["corrupt_samples"] > 0


def test_partition_needs_a_shard_per_worker(one_shard_per_worker):
    with pytest.raises(DataError, match="data.sampling=partition needs at least ranks x workers = 1 x 3 = 3"):
        batches(one_shard_per_worker, data_config(workers=3), 1)


def test_loader_workers_start_after_this_process_used_opencvs_thread_pool(one_shard_per_worker):
    """Forked workers must not touch OpenCV's thread pool: ``cv2.setNumThreads`` in a child forked after the parent
    used the pool deadlocks, so ``loader`` sets one thread before forking. Run in a fresh process with a deadline."""
    script = f"""
import cv2, numpy as np
from pathlib import Path
cv2.setNumThreads(2)
image = np.random.default_rng(0).random((1024, 1024), np.float32)
for _ in range(4):
    cv2.GaussianBlur(image, (31, 31), 0)  # the pool's threads now run
import test_data
print(len(test_data.batches(Path({str(one_shard_per_worker)!r}), test_data.data_config(), 2)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.split()[-1] == "2", done.stderr[-2000:]
