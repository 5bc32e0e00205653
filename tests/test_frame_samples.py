"""Frame specialists train on several frames of each clip they read (interceptor/data/frame_samples.py)."""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections import defaultdict

import cv2
import numpy as np
import pytest

from interceptor.config import ConfigError, load_config
from interceptor.data.frame_samples import epoch_samples, frame_samples
from interceptor.data.shard_sets import resolve_shard_sets
from interceptor.data.streams import TrainStream
from interceptor.inputs import InputSpec

from training import write_manifest

FRAMES = 8
SIZE = 32


def clip_sample(key: str, label: int) -> dict:
    """A raw shard sample of 8 frame files (placeholder bytes: splitting a clip decodes nothing) and audio."""
    sample = {"__key__": key, "cls": str(label).encode(), "json": b"{}", "audio.npy": b"audio"}
    for t in range(FRAMES):
        sample[f"f{t:02d}.png"] = f"png {t}".encode()
    return sample


def test_a_clip_becomes_distinct_frame_samples_with_its_key_label_and_json_but_no_audio():
    clips = [clip_sample("a-face0-clip00", 0), clip_sample("b-face0-clip00", 1)]
    samples = list(frame_samples(iter(clips), 3, random.Random(0)))
    assert len(samples) == 6
    for clip, own in zip(clips, (samples[:3], samples[3:])):
        frames = [next(k for k in s if k.endswith(".png")) for s in own]
        assert len(set(frames)) == 3 and frames == sorted(frames)
        for sample in own:
            assert sample["__key__"] == clip["__key__"] and sample["cls"] == clip["cls"]
            assert sorted(sample) == sorted(["__key__", "cls", "json", next(k for k in sample if k.endswith(".png"))])
    again = list(frame_samples(iter(clips), 3, random.Random(0)))
    assert [sorted(s) for s in again] == [sorted(s) for s in samples]


def test_a_clip_gives_every_frame_in_order_when_asked_for_as_many_or_more():
    for count in (FRAMES, FRAMES + 4):
        samples = list(frame_samples(iter([clip_sample("a-face0-clip00", 0)]), count, random.Random(0)))
        assert [next(k for k in s if k.endswith(".png")) for s in samples] == [f"f{t:02d}.png" for t in range(FRAMES)]


def test_an_epoch_counts_frame_samples_for_frame_models_and_clips_for_clip_models():
    data = load_config("demo", ["data.frame_samples_per_clip=8"]).data
    assert [epoch_samples(100, s, data) for s in ("ll", "bg", "cm", "rr", "tm", "av")] == [800] * 4 + [100] * 2
    with pytest.raises(ConfigError, match="data.frame_samples_per_clip: at least 1, got 0"):
        epoch_samples(100, "ll", load_config("demo", ["data.frame_samples_per_clip=0"]).data)


# ------------------------------------------------------------------------------ the training stream


def write_shard_set(directory, clips_per_class: int = 6) -> None:
    """A shard set of flat-coloured clips (frame t of a clip of label c: level 10 * t + c) and its manifest."""
    directory.mkdir(parents=True)
    with tarfile.open(directory / "shard-000-00000.tar", "w") as tar:
        for index in range(2 * clips_per_class):
            label, key = index % 2, f"ffpp-train-m-v{index:02d}-face0-clip00"
            meta = {"dataset": "ffpp", "source": f"v{index}.mp4", "has_audio": False}
            files = {"cls": str(label).encode(), "json": json.dumps(meta).encode()}
            for t in range(FRAMES):
                files[f"f{t:02d}.png"] = cv2.imencode(".png", np.full((SIZE, SIZE, 3), 10 * t + label, np.uint8))[1]
            for name, data in files.items():
                info = tarfile.TarInfo(f"{key}.{name}")
                info.size = len(bytes(data))
                tar.addfile(info, io.BytesIO(bytes(data)))
    write_manifest(directory, {"shard-000-00000.tar": 2 * clips_per_class}, clips_per_class, clips_per_class, 0.333)


def stream(root, overrides, skip=None):
    cfg = load_config("demo", ["data.batch_size=4", "data.shuffle_buffer=3", "data.pseudo_fakes=0",
                                            "data.augment.color_jitter=0", "data.augment.hflip=0", *overrides])
    sets = resolve_shard_sets(root, ["ffpp/train"], "train")
    return iter(TrainStream(sets, cfg.data, InputSpec("frame", SIZE, 1), True, 0, 0, 0, 1, skip=skip))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("frame-shards")
    write_shard_set(root / "ffpp" / "train")
    return root


def test_the_stream_trains_on_every_frame_of_the_clips_it_reads(root):
    batches = stream(root, ["data.frame_samples_per_clip=8"])
    frames_by_clip = defaultdict(list)
    for batch in (next(batches) for _ in range(24)):
        for key, pixels, label in zip(batch["key"], batch["pixels"], batch["label"].tolist()):
            level = int(pixels[0, 0, 0])
            assert (pixels == level).all() and level % 10 == label
            frames_by_clip[key].append(level // 10)
    # 96 samples of 12 clips (most read about once): a clip's samples are its 8 frames, where one random frame
    # per clip read would repeat some and miss others
    assert sum(sorted(set(frames)) == list(range(FRAMES)) for frames in frames_by_clip.values()) >= 6


def test_one_frame_sample_per_clip_reads_a_clip_for_each_sample(root):
    batch = next(stream(root, ["data.frame_samples_per_clip=1"]))
    assert len(set(batch["key"])) == 4


def test_a_resumed_stream_skips_the_frame_samples_consumed_and_replays_the_rest(root):
    full = stream(root, ["data.frame_samples_per_clip=8"])
    first = [next(full) for _ in range(5)]
    resumed = stream(root, ["data.frame_samples_per_clip=8"], skip={0: first[2]["consumed"]})
    for expected in first[3:]:
        batch = next(resumed)
        assert batch["key"] == expected["key"] and (batch["pixels"] == expected["pixels"]).all()
