"""The shard builder: layouts and labels, the documented sample format, detection, fault tolerance, scale-out."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
import webdataset as wds

from conftest import CORPUS_DATASETS, REPO
from interceptor.config import ConfigError, load_config, to_dict
from interceptor.schema import DetectorConfig, ShardsConfig
from interceptor.shards import extract_clips
from interceptor.shards.build import BuildError, build_shards
from interceptor.shards.faces import BACKENDS, check_detector, stretch_levels
from interceptor.shards.inspection import inspect_shards
from interceptor.shards.layouts import LayoutError, clips_for_split, read_layout
from interceptor.shards.samples import SAMPLE_FIELDS
from interceptor.shards.settings import check_config
from interceptor.shards.track import iou

SPLITS = ("train", "val", "test")
KEY = re.compile(r"(ffpp|celebdf|dfdc)-(train|val|test|chunk\d\d_(?:train|val|test))-[a-z0-9_]+-[A-Za-z0-9_]+"
                 r"-face\d-clip\d\d")


def manifests(root: Path) -> dict[str, dict]:
    """Every manifest under ``root`` by its shard set's path relative to ``root``."""
    return {p.parent.relative_to(root).as_posix(): json.loads(p.read_text()) for p in sorted(root.rglob("manifest.json"))}


def read_samples(directory: Path) -> list[dict]:
    """The shard set's samples, read with a plain WebDataset pipeline in manifest order."""
    manifest = json.loads((directory / "manifest.json").read_text())
    urls = [str(directory / s["name"]) for s in manifest["shards"]]
    return list(wds.WebDataset(urls, shardshuffle=False, empty_check=False)) if urls else []


def sample_bytes(directory: Path) -> dict[str, dict[str, bytes]]:
    return {s["__key__"]: {k: v for k, v in s.items() if not k.startswith("__")} for s in read_samples(directory)}


def metas(root: Path) -> list[dict]:
    return [json.loads(s["json"]) for d in sorted(root.rglob("manifest.json")) for s in read_samples(d.parent)]


def corpus_videos(corpus_manifest: dict, dataset: str) -> dict[str, dict]:
    """The corpus's videos of ``dataset`` by their path relative to the dataset root."""
    prefix = CORPUS_DATASETS[dataset] + "/"
    return {p[len(prefix):]: e for p, e in corpus_manifest.items() if e["dataset"] == dataset}


# ----------------------------------------------------------------------------------------------- layouts


def test_ffpp_splits_labels_and_unique_ids(shards_root, corpus, corpus_manifest):
    root = corpus / "FaceForensics++"
    split_of = {vid: split for split in SPLITS for pair in json.loads((root / f"{split}.json").read_text())
                for vid in pair}
    expected = Counter()
    for rel, entry in corpus_videos(corpus_manifest, "ffpp").items():
        stem = Path(rel).stem
        expected[(split_of[stem.split("_")[0]], entry["label"])] += 1
    found = Counter()
    for split in SPLITS:
        manifest = json.loads((shards_root / "ffpp" / split / "manifest.json").read_text())
        assert manifest["skipped"] == []  # every video gives clips (Haar may miss a few: the corpus-wide bound of
        # 95% of sampled frames with a face is test_detector_finds_the_face_in_95_percent_of_sampled_frames)
        for label, count in manifest["videos_by_label"].items():
            found[(split, int(label))] += count
    assert found == expected

    samples = metas(shards_root / "ffpp")
    for meta in samples:
        stem = Path(meta["source"]).stem
        assert {split_of[i] for i in stem.split("_")} == {meta["split"]}, "NNN, MMM, NNN_MMM follow their pair"
        assert meta["label"] == corpus_manifest[f"FaceForensics++/{meta['source']}"]["label"]
    ids = {(m["video_id"], m["source"]) for m in samples}
    assert len({i for i, _ in ids}) == len(ids) == 60, "one id per video"
    assert all(i == f"{m['method']}/{Path(m['source']).stem}" for m in samples for i in [m["video_id"]])


def test_ffpp_ids_are_unique_across_methods(tmp_path):
    """Real FF++ fakes repeat their NNN_MMM names in every method folder: the method is part of the id."""
    root = tmp_path / "FaceForensics++"
    for rel in ["original_sequences/youtube/c23/videos/000.mp4", "original_sequences/youtube/c23/videos/001.mp4",
                "original_sequences/youtube/c40/videos/000.mp4"] + \
               [f"manipulated_sequences/{m}/c23/videos/000_001.mp4" for m in ("Deepfakes", "FaceSwap", "Face2Face")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    for split, pairs in (("train", [["000", "001"]]), ("val", []), ("test", [])):
        (root / f"{split}.json").write_text(json.dumps(pairs))
    cfg = ShardsConfig(ffpp_methods=["Deepfakes", "FaceSwap"])
    videos = read_layout("ffpp", root, cfg)["train"].videos
    assert sorted(v.video_id for v in videos) == ["Deepfakes/000_001", "FaceSwap/000_001", "original/000",
                                                  "original/001"]
    assert {v.original for v in videos if v.label == 1} == {"original_sequences/youtube/c23/videos/000.mp4"}
    with pytest.raises(LayoutError, match=re.escape(str(root / "manipulated_sequences/Deepfakes/c40/videos"))):
        read_layout("ffpp", root, dataclasses.replace(cfg, ffpp_compression="c40"))  # no c40 fakes: an error


def test_celebdf_test_list_is_test_with_inverted_labels(shards_root, corpus, corpus_manifest):
    listed = {}
    for line in (corpus / "Celeb-DF-v2" / "List_of_testing_videos.txt").read_text().splitlines():
        official, rel = line.split(" ", 1)
        listed[rel] = 1 - int(official)  # the list's 1 means REAL
    samples = metas(shards_root / "celebdf")
    split_of = {}
    for meta in samples:
        assert split_of.setdefault(meta["source"], meta["split"]) == meta["split"]
        assert meta["label"] == corpus_manifest[f"Celeb-DF-v2/{meta['source']}"]["label"]
        if meta["source"] in listed:
            assert meta["label"] == listed[meta["source"]]
    assert {s for s, split in split_of.items() if split == "test"} == set(listed)
    assert set(split_of) == set(corpus_videos(corpus_manifest, "celebdf")), "train is every other video"
    val = {m["identity"] for m in samples if m["split"] == "val" and m["identity"]}
    train = {m["identity"] for m in samples if m["split"] == "train" and m["identity"]}
    assert val and train and not val & train, "val is carved out by identity"
    manifest = json.loads((shards_root / "celebdf" / "test" / "manifest.json").read_text())
    assert manifest["videos_by_label"] == {str(k): v for k, v in sorted(Counter(listed.values()).items())}


def test_dfdc_chunks_keep_clusters_together_and_labels(shards_root, corpus):
    for chunk_dir in sorted((corpus / "DFDC").iterdir()):
        k = int(chunk_dir.name.rsplit("_", 1)[1])
        metadata = json.loads((chunk_dir / "metadata.json").read_text())
        samples = metas(shards_root / "dfdc" / f"chunk-{k:02d}")
        split_of = {}
        for meta in samples:
            name = Path(meta["source"]).name
            assert meta["chunk"] == k and meta["label"] == (1 if metadata[name]["label"] == "FAKE" else 0)
            cluster = metadata[name]["original"] or name
            assert split_of.setdefault(cluster, meta["split"]) == meta["split"], "a cluster stays in one split"
        assert {Path(m["source"]).name for m in samples} == set(metadata)
        counts = Counter()
        for split in SPLITS:
            manifest = json.loads((shards_root / "dfdc" / f"chunk-{k:02d}" / split / "manifest.json").read_text())
            counts.update({int(label): n for label, n in manifest["videos_by_label"].items()})
        assert counts == Counter(1 if e["label"] == "FAKE" else 0 for e in metadata.values())


def test_no_video_in_two_splits(shards_root):
    split_of = {}
    for meta in metas(shards_root):
        video = (meta["dataset"], meta["video_id"])
        assert split_of.setdefault(video, meta["split"]) == meta["split"], video


def test_fakes_reuse_their_originals_boxes(shards_root):
    samples = {(m["dataset"], m["video_id"], m["face"], m["clip"]): m for m in metas(shards_root)}
    reused = 0
    for (dataset, _, face, clip), meta in samples.items():
        original = samples.get((dataset, meta["original_id"], face, clip))
        if meta["detector"] == "original":
            assert original is not None and original["frame_indices"] == meta["frame_indices"]
            assert original["boxes"] == meta["boxes"] and original["crop_boxes"] == meta["crop_boxes"]
            reused += 1
    assert reused > 50


# ----------------------------------------------------------------------------------------------- format


def documented_json_fields() -> list[str]:
    text = (REPO / "shards" / "FORMAT.md").read_text()
    section = text.split("### json fields", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, flags=re.M)


def test_plain_webdataset_reader_sees_exactly_the_documented_schema(shards_root, demo_config):
    cfg = demo_config.shards
    assert documented_json_fields() == list(SAMPLE_FIELDS)
    keys = set()
    shard_sets = sorted(p.parent for p in shards_root.rglob("manifest.json"))
    with_audio = 0
    for directory in shard_sets:
        manifest = json.loads((directory / "manifest.json").read_text())
        assert manifest["total_samples"] == sum(s["samples"] for s in manifest["shards"])
        for sample in read_samples(directory):
            key = sample["__key__"]
            assert KEY.fullmatch(key) and "." not in key and key not in keys
            keys.add(key)
            meta = json.loads(sample["json"])
            assert list(meta) == sorted(SAMPLE_FIELDS)
            frames = [f"f{t:02d}.png" for t in range(cfg.frames_per_clip)]
            files = {"cls", "json", *frames} | ({"audio.npy"} if meta["has_audio"] else set())
            assert {k for k in sample if not k.startswith("__")} == files  # __key__, __url__: webdataset's own
            assert sample["cls"] == str(meta["label"]).encode() and meta["label"] in (0, 1)
            assert meta["num_frames"] == cfg.frames_per_clip == len(meta["boxes"]) == len(meta["frame_indices"])
            assert np.all(np.diff(meta["frame_indices"]) == cfg.frame_stride)
            image = cv2.imdecode(np.frombuffer(sample["f00.png"], np.uint8), cv2.IMREAD_UNCHANGED)
            assert image.shape == (cfg.crop_size, cfg.crop_size, 3) and image.dtype == np.uint8
            if meta["has_audio"]:
                with_audio += 1
                audio = np.load(io.BytesIO(sample["audio.npy"]), allow_pickle=False)
                assert audio.dtype == np.int16 and audio.shape == (meta["audio_samples"],)
                seconds = meta["end_time"] - meta["start_time"]
                assert abs(len(audio) - seconds * meta["audio_rate"]) <= 1 and np.abs(audio).max() > 0
            assert meta["has_audio"] == (meta["dataset"] == "dfdc"), "the corpus has audio in DFDC only"
    assert len(keys) > 400 and with_audio > 100
    tar_names = subprocess.run(["tar", "-tf", str(next(shards_root.rglob("*.tar")))], check=True,
                               capture_output=True, text=True).stdout.split()
    assert tar_names and all(KEY.fullmatch(n.split(".", 1)[0]) for n in tar_names)


def test_crops_are_stored_losslessly(corpus, shards_root, demo_config):
    rel = "original_sequences/youtube/c23/videos/000.mp4"
    stored = {}
    for split in SPLITS:
        for sample in read_samples(shards_root / "ffpp" / split):
            meta = json.loads(sample["json"])
            if meta["source"] == rel:
                stored[meta["clip"]] = sample
    split = json.loads(next(iter(stored.values()))["json"])["split"]
    video = extract_clips(corpus / "FaceForensics++" / rel, demo_config.shards,
                          num_clips=clips_for_split(split, demo_config.shards))
    assert [clip.index for clip in video.clips] == sorted(stored)
    for clip in video.clips:
        for t, frame in enumerate(clip.frames):
            png = stored[clip.index][f"f{t:02d}.png"]
            assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], frame)


def person_of(meta: dict, people: list[list]) -> list:
    """The ground-truth boxes of the corpus person a sample's face follows (the one its boxes overlap most)."""
    return max(people, key=lambda boxes: sum(iou(box, boxes[i]) for i, box in zip(meta["frame_indices"], meta["boxes"])))


def test_detector_finds_the_face_in_95_percent_of_sampled_frames(shards_root, corpus_manifest):
    found = total = 0
    for directory in sorted(p.parent for p in shards_root.rglob("manifest.json")):
        manifest = json.loads((directory / "manifest.json").read_text())
        assert not manifest["skipped"], manifest["skipped"]
        total += manifest["clips_without_face"] * manifest["settings"]["frames_per_clip"]  # dropped: missed
        for sample in read_samples(directory):
            meta = json.loads(sample["json"])
            truth = person_of(meta, corpus_manifest[f"{CORPUS_DATASETS[meta['dataset']]}/{meta['source']}"]["faces"])
            for index, box in zip(meta["frame_indices"], meta["boxes"]):
                total += 1
                found += iou(box, truth[index]) >= 0.5
    assert total > 3000
    assert found / total >= 0.95, f"face found in {found / total:.1%} of sampled frames"


# ----------------------------------------------------------------------------------------------- robustness


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    from interceptor.synth.encode import Mp4Writer

    writer = Mp4Writer(path, frames[0].shape[1], frames[0].shape[0], fps, 23)
    for frame in frames:
        writer.write(frame)
    writer.close()


def faststart_copy(source: Path, target: Path) -> None:
    """Remux with the index (moov) first, so that a truncated copy still opens."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)


def test_bad_inputs_are_skipped_with_their_reason(tmp_path, corpus, demo_config):
    good = corpus / "FaceForensics++" / "original_sequences" / "youtube" / "c23" / "videos" / "000.mp4"
    chunk = tmp_path / "raw" / "dfdc_train_part_0"
    chunk.mkdir(parents=True)
    (chunk / "empty.mp4").write_bytes(b"")
    (chunk / "text.mp4").write_text("this is a text file, not a video\n")
    data = good.read_bytes()
    (chunk / "truncated.mp4").write_bytes(data[:len(data) // 2])
    faststart_copy(good, tmp_path / "faststart.mp4")
    data = (tmp_path / "faststart.mp4").read_bytes()
    (chunk / "truncated_faststart.mp4").write_bytes(data[:int(len(data) * 0.6)])
    zeroed = bytearray(good.read_bytes())  # the index intact, every frame's data zeroed
    at = zeroed.find(b"mdat")
    size = int.from_bytes(zeroed[at - 4:at], "big")
    zeroed[at + 4:at - 4 + size] = bytes(size - 8)
    (chunk / "no_frames.mp4").write_bytes(bytes(zeroed))
    with av.open(str(good)) as container:
        faces = [f.to_ndarray(format="rgb24") for f, _ in zip(container.decode(video=0), range(5))]
    write_video(chunk / "short.mp4", faces)
    ramp = np.linspace(0, 255, 160, dtype=np.float32)[None, :, None]
    write_video(chunk / "no_face.mp4", [np.broadcast_to(np.clip(ramp + 3 * t, 0, 255), (90, 160, 3)).astype(np.uint8)
                                        for t in range(40)])
    weird = "vidéo d'essai (1).mp4"
    shutil.copy(good, chunk / weird)
    shutil.copy(good, chunk / "unlisted.mp4")
    names = ["empty.mp4", "text.mp4", "truncated.mp4", "truncated_faststart.mp4", "no_frames.mp4", "short.mp4",
             "no_face.mp4", weird, "absent.mp4"]
    (chunk / "metadata.json").write_text(json.dumps({n: {"label": "REAL", "split": "train", "original": None}
                                                     for n in names}))
    cfg = dataclasses.replace(demo_config.shards, workers=1, dfdc_val_fraction=0.0, dfdc_test_fraction=0.0)
    build_shards("dfdc", tmp_path / "raw", tmp_path / "out", cfg, progress=False)

    manifest = json.loads((tmp_path / "out" / "chunk-00" / "train" / "manifest.json").read_text())
    reasons = {Path(s["path"]).name: s["reason"] for s in manifest["skipped"]}
    assert reasons.keys() == {"empty.mp4", "text.mp4", "truncated.mp4", "no_frames.mp4", "short.mp4", "no_face.mp4"}
    for name in ("empty.mp4", "text.mp4", "truncated.mp4"):
        assert reasons[name].startswith("cannot open video"), reasons[name]
    assert reasons["no_frames.mp4"].startswith("no decodable video frames")
    assert reasons["short.mp4"] == "shorter than one clip: 5 frames, a clip spans 15"
    assert reasons["no_face.mp4"].startswith("no face found")
    assert manifest["missing"] == ["dfdc_train_part_0/absent.mp4"]
    assert manifest["unlisted"] == ["dfdc_train_part_0/unlisted.mp4"]
    assert [w["path"] for w in manifest["warnings"]] == ["dfdc_train_part_0/truncated_faststart.mp4"]

    samples = {json.loads(s["json"])["source"]: s for s in read_samples(tmp_path / "out" / "chunk-00" / "train")}
    assert set(samples) == {f"dfdc_train_part_0/{weird}", "dfdc_train_part_0/truncated_faststart.mp4"}
    key = samples[f"dfdc_train_part_0/{weird}"]["__key__"]
    assert KEY.fullmatch(key) and re.search(r"-vid_o_d_essai__1__[0-9a-f]{8}-face0-clip\d\d$", key)
    truncated = json.loads(samples["dfdc_train_part_0/truncated_faststart.mp4"]["json"])
    assert max(truncated["frame_indices"]) < 0.6 * 92
    _, problems = inspect_shards(tmp_path / "out")
    assert problems == []


def write_metadata(directory: Path, entries: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metadata.json").write_text(json.dumps(entries))


def test_broken_layouts_are_errors_naming_the_file(tmp_path):
    cfg = ShardsConfig()
    chunk = tmp_path / "dfdc" / "dfdc_train_part_3"
    chunk.mkdir(parents=True)
    (chunk / "metadata.json").write_text("{not json")
    with pytest.raises(LayoutError, match=re.escape(str(chunk / "metadata.json")) + ": malformed DFDC metadata"):
        read_layout("dfdc", tmp_path / "dfdc", cfg)
    write_metadata(chunk, {"a.mp4": {"label": "MAYBE"}})
    with pytest.raises(LayoutError, match="'a.mp4': label must be FAKE or REAL"):
        read_layout("dfdc", tmp_path / "dfdc", cfg)
    with pytest.raises(LayoutError, match="no dfdc_train_part_7"):
        read_layout("dfdc", tmp_path / "dfdc", cfg, chunks=[7])

    celebdf = tmp_path / "celebdf"
    for rel in ("Celeb-real/id0_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4", "YouTube-real/id0_0000.mp4"):
        (celebdf / rel).parent.mkdir(parents=True, exist_ok=True)
        (celebdf / rel).write_bytes(b"")
    test_list = celebdf / "List_of_testing_videos.txt"
    test_list.write_text("1 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(LayoutError, match="YouTube-real/id0_0000.mp4 would land in train.*in the test list"):
        read_layout("celebdf", celebdf, cfg)
    test_list.write_text("1 Celeb-synthesis/id0_id1_0000.mp4\n")
    with pytest.raises(LayoutError, match=re.escape(f"{test_list}:1: label 1 (1 = real) contradicts")):
        read_layout("celebdf", celebdf, cfg)
    test_list.write_text("real Celeb-real/id0_0000.mp4\n")
    with pytest.raises(LayoutError, match=re.escape(f"{test_list}:1: expected")):
        read_layout("celebdf", celebdf, cfg)


def test_boxes_backend_reads_precomputed_boxes(tmp_path, corpus, corpus_manifest, demo_config):
    detector = dataclasses.replace(demo_config.shards.detector, backend="boxes",
                                   boxes_file=str(corpus / "boxes" / "dfdc.json"))
    cfg = dataclasses.replace(demo_config.shards, workers=1, detector=detector)
    build_shards("dfdc", corpus / "DFDC", tmp_path / "out", cfg, chunks=[5], progress=False)
    samples = metas(tmp_path / "out")
    assert {m["detector"] for m in samples} == {"boxes", "original"}
    for meta in samples:
        truth = person_of(meta, corpus_manifest[f"DFDC/{meta['source']}"]["faces"])
        assert all(iou(box, truth[i]) > 0.8 for i, box in zip(meta["frame_indices"], meta["boxes"]))  # smoothing lags a little


def test_jpeg_option_writes_documented_jpg_frames(tmp_path, corpus, demo_config):
    detector = dataclasses.replace(demo_config.shards.detector, backend="boxes",
                                   boxes_file=str(corpus / "boxes" / "dfdc.json"))
    cfg = dataclasses.replace(demo_config.shards, workers=1, image_format="jpg", jpeg_quality=97, detector=detector)
    build_shards("dfdc", corpus / "DFDC", tmp_path, cfg, chunks=[6], progress=False)
    _, problems = inspect_shards(tmp_path)
    assert problems == []
    sample = next(s for d in sorted(tmp_path.rglob("manifest.json")) for s in read_samples(d.parent))
    assert json.loads(sample["json"])["image_format"] == "jpg" and sample["f00.jpg"][:2] == b"\xff\xd8"


def test_detector_settings_are_checked_before_building(tmp_path, corpus):
    with pytest.raises(ConfigError, match=r"shards\.detector\.weights: the yunet backend needs"):
        build_shards("dfdc", corpus / "DFDC", tmp_path, ShardsConfig(detector=DetectorConfig(backend="yunet")))
    with pytest.raises(ConfigError, match=r"shards\.detector\.boxes_file"):
        build_shards("dfdc", corpus / "DFDC", tmp_path, ShardsConfig(detector=DetectorConfig(backend="boxes")))
    assert not list(tmp_path.iterdir())


def test_mtcnn_weights_errors_name_the_key_and_the_file(tmp_path):
    """The mtcnn backend's weights: a missing file, a file that is not the wheel, a folder lacking a net, and a
    pickle holding anything but tensors (weights_only) are each an error naming the key and the file."""
    def fails(weights: Path, message: str) -> None:
        with pytest.raises(ConfigError, match=r"shards\.detector\.weights: " + message):
            check_detector(DetectorConfig(backend="mtcnn", weights=str(weights)))

    fails(tmp_path / "none.whl", f"{re.escape(str(tmp_path / 'none.whl'))}: no such file.*backend=haar")
    (tmp_path / "bad.whl").write_bytes(b"not a zip")
    fails(tmp_path / "bad.whl", f"{re.escape(str(tmp_path / 'bad.whl'))}: not the facenet-pytorch wheel")
    nets = tmp_path / "nets"
    nets.mkdir()
    for net in ("pnet", "rnet"):
        torch.save({"conv1.weight": torch.zeros(1)}, nets / f"{net}.pt")
    fails(nets, re.escape(str(nets / "onet.pt")) + ": no such file")
    torch.save({"conv1.weight": torch.zeros(1), "note": Path("code")}, nets / "onet.pt")  # not a plain state dict
    fails(nets, f"{re.escape(str(nets))}: the MTCNN weights do not load as plain state dicts")


def test_mtcnn_finds_no_face_in_a_blank_picture_and_loses_a_box_that_left_it():
    backend = BACKENDS["mtcnn"](DetectorConfig())
    blank = np.full((360, 640, 3), 90, np.uint8)
    assert backend.detect(blank, 18, 640) == []
    for box in [(600, 300, 700, 420), (700, 400, 760, 470), (-50, -50, 20, 30)]:  # across the border, outside
        assert backend.follow(blank, box) == []


def test_stretch_levels_spans_a_dim_image_over_the_full_range():
    dim = np.random.default_rng(0).integers(10, 60, (90, 160, 3)).astype(np.uint8)
    stretched = stretch_levels(dim)
    assert stretched.dtype == np.uint8 and stretched.shape == dim.shape
    assert np.percentile(stretched, 1) <= 5 and np.percentile(stretched, 99) >= 250
    by_level = stretched.ravel()[np.argsort(dim.ravel())].astype(int)
    assert np.all(np.diff(by_level) >= 0), "a brighter pixel stays at least as bright"


def test_config_values_out_of_range_name_the_key():
    with pytest.raises(ConfigError, match=r"shards\.jpeg_quality: must be between 95 and 100"):
        check_config(ShardsConfig(jpeg_quality=80))
    with pytest.raises(ConfigError, match=r"shards\.detector\.every: must be at least 1"):
        check_config(dataclasses.replace(ShardsConfig(), detector=dataclasses.replace(ShardsConfig().detector, every=0)))
    assert to_dict(load_config("default").shards) == to_dict(ShardsConfig()), \
        "the packaged default config spells out the production shard defaults"


def build_command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "shards" / "build.py"), "dfdc", "--root", str(corpus / "DFDC"),
            "--out", str(out), "--chunk", "0,1,2,3", "--workers", "2", *extra]


def test_sigkill_mid_build_then_rerun_gives_the_clean_build(tmp_path, corpus, shards_root):
    out = tmp_path / "out"
    process = subprocess.Popen(build_command(corpus, out), start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.glob("*/*/.work/*/*.tar"))) < 3 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the build finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the whole process group: the CLI and its workers, like a lost node
    process.wait()
    assert not list(out.rglob("manifest.json"))
    for visible in out.rglob("*.tar"):  # whatever is visible under a final name is a complete tar
        if not visible.name.startswith("."):
            with tarfile.open(visible) as tar:
                assert tar.getmembers()

    subprocess.run(build_command(corpus, out), check=True, capture_output=True)
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []
    for k in range(4):
        for split in SPLITS:
            rebuilt, clean = out / f"chunk-{k:02d}" / split, shards_root / "dfdc" / f"chunk-{k:02d}" / split
            assert json.loads((rebuilt / "manifest.json").read_text()) == json.loads((clean / "manifest.json").read_text())
            assert sample_bytes(rebuilt) == sample_bytes(clean)


def test_multi_node_tasks_and_merge_give_the_same_samples(tmp_path, corpus, shards_root):
    out = tmp_path / "out"
    for index in range(2):
        subprocess.run(build_command(corpus, out, "--task-index", str(index), "--num-tasks", "2"), check=True,
                       capture_output=True)
    for k in range(4):
        for split in SPLITS:
            merged = json.loads((out / f"chunk-{k:02d}" / split / "manifest.json").read_text())
            clean = json.loads((shards_root / "dfdc" / f"chunk-{k:02d}" / split / "manifest.json").read_text())
            assert merged["tasks"] == 2
            for field in ("total_samples", "total_videos", "samples_by_label", "videos_by_method", "missing"):
                assert merged[field] == clean[field]
            assert sample_bytes(out / f"chunk-{k:02d}" / split) == sample_bytes(shards_root / "dfdc" / f"chunk-{k:02d}" / split)
    assert {p.name[:9] for p in out.rglob("shard-*.tar")} == {"shard-000", "shard-001"}


def test_rerun_skips_finished_shard_sets(tmp_path, corpus, demo_config):
    out = tmp_path / "out"
    cfg = dataclasses.replace(demo_config.shards, workers=1)
    build_shards("dfdc", corpus / "DFDC", out, cfg, chunks=[5], progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    build_shards("dfdc", corpus / "DFDC", out, cfg, chunks=[5], progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before, "nothing rewritten, nothing added"
    with pytest.raises(BuildError, match="built with other settings"):
        build_shards("dfdc", corpus / "DFDC", out, dataclasses.replace(cfg, crop_size=64), chunks=[5], progress=False)


def test_inspect_summarises_and_catches_a_corrupt_shard(tmp_path, shards_root):
    result = subprocess.run([sys.executable, str(REPO / "shards" / "inspect.py"), str(shards_root / "ffpp")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train: ffpp train:" in result.stdout and "samples by method" in result.stdout
    assert "3 shard sets, 0 problems" in result.stdout
    copy = tmp_path / "val"
    shutil.copytree(shards_root / "ffpp" / "val", copy)
    shard = sorted(copy.glob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    (copy / ".shard-000-00009.tar.x.task000.tmp").write_bytes(b"partial")
    _, problems = inspect_shards(copy)
    assert any("sha256 differs" in p for p in problems)
    assert any(".tmp: not in the manifest" in p for p in problems)


def test_slurm_script_passes_bash_n_and_shellcheck():
    script = REPO / "slurm" / "build_shards.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# ----------------------------------------------------------------------------------------------- real video


def test_real_dfdc_sample_gives_faces_and_audio_and_reports_missing(tmp_path, dfdc_sample):
    cfg = dataclasses.replace(ShardsConfig(), crop_size=160, workers=2)
    build_shards("dfdc", dfdc_sample, tmp_path / "out", cfg, progress=False)
    found = manifests(tmp_path / "out")
    missing = sorted(p for m in found.values() for p in m["missing"])
    assert missing == [f"dfdc_train_part_0/{n}.mp4" for n in ("aagfhgtpmv", "aapnvogymq", "abarnvbtwb")]
    assert not [s for m in found.values() for s in m["skipped"]]
    samples = metas(tmp_path / "out")
    assert {Path(m["source"]).stem for m in samples} == {"abofeumbvv", "abqwwspghj"}
    for meta in samples:
        assert meta["label"] == 1 and meta["frame_size"] == [1920, 1080] and meta["detector"] == "mtcnn"
        assert meta["has_audio"] and meta["audio_rate"] == 16000
        for x0, y0, x1, y1 in meta["boxes"]:  # a face-sized box inside the frame
            assert 0 <= x0 < x1 <= 1920 and 0 <= y0 < y1 <= 1080 and 80 < x1 - x0 < 500
    for directory in (p.parent for p in (tmp_path / "out").rglob("manifest.json")):
        for sample in read_samples(directory):
            audio = np.load(io.BytesIO(sample["audio.npy"]), allow_pickle=False)
            assert np.abs(audio).max() > 100, "speech, not silence"
