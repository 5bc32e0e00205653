"""Videos as they come (issue 11): display rotation, several faces, the standard dataset protocols, and builds
that cannot silently come out empty. Small hand-made videos (tests/scenes.py) rather than the corpus, where
possible."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from conftest import REPO
from interceptor.data.decoding import face_key, video_key
from interceptor.data.shard_sets import DataError, ShardSet
from interceptor.metrics import aggregate_videos
from interceptor.schema import FFPP_METHODS, ShardsConfig
from interceptor.shards import extract_clips
from interceptor.shards.build import BuildError, build_shards
from interceptor.shards.inspection import inspect_shards
from interceptor.shards.layouts import LayoutError, read_layout
from interceptor.shards.video import VideoError

from scenes import render_scene, two_person_video, write_video
from test_shards import faststart_copy


@pytest.fixture(scope="module")
def rotated_twins(tmp_path_factory):
    """One scene written upright and with each display rotation, losslessly (the pixels differ only by the
    chroma subsampling of the turned frames)."""
    directory = tmp_path_factory.mktemp("rotation")
    frames, _ = render_scene(1, frames=40)
    return {rotation: write_video(directory / f"r{rotation}.mp4", frames, rotation, crf=0)
            for rotation in (0, 90, 180, 270)}


def test_rotated_and_upright_twins_give_the_same_crops(rotated_twins, demo_config):
    upright = extract_clips(rotated_twins[0], demo_config.shards, num_clips=2)
    assert upright.info.rotation == 0
    for rotation in (90, 180, 270):
        video = extract_clips(rotated_twins[rotation], demo_config.shards, num_clips=2)
        assert video.info.rotation == rotation and (video.info.width, video.info.height) == (320, 180)
        assert [c.frame_indices for c in video.clips] == [c.frame_indices for c in upright.clips]
        for turned, straight in zip(video.clips, upright.clips):
            assert np.array_equal(turned.boxes, straight.boxes), "boxes are given in the upright frame"
            assert np.abs(turned.frames.astype(int) - straight.frames).mean() < 1.0


# ----------------------------------------------------------------------------------------------- several faces


def build(dataset: str, root: Path, out: Path, cfg, **kwargs) -> dict[str, dict]:
    """Build with one worker; every manifest under ``out`` by its shard set."""
    build_shards(dataset, root, out, dataclasses.replace(cfg, workers=1), progress=False, **kwargs)
    return {p.parent.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("manifest.json"))}


def samples_of(directory: Path) -> list[dict]:
    """(json, cls) of every sample of a shard set, read with a plain WebDataset pipeline."""
    manifest = json.loads((directory / "manifest.json").read_text())
    urls = [str(directory / s["name"]) for s in manifest["shards"]]
    rows = wds.WebDataset(urls, shardshuffle=False, empty_check=False) if urls else []
    return [{**json.loads(s["json"]), "key": s["__key__"], "cls": int(s["cls"])} for s in rows]


@pytest.fixture(scope="module")
def dfd_root(tmp_path_factory):
    """FF++'s DeepFakeDetection layout: a two-person original (actor 01) and a fake in which only the second,
    smaller person's face was swapped, named as the real files are."""
    root = tmp_path_factory.mktemp("dfd") / "FaceForensics++"
    frames, _ = render_scene(3, frames=40, two_people=True)
    write_video(root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4", frames)
    fake, _ = render_scene(3, frames=40, two_people=True, alter=1)
    write_video(root / "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__exit_phone_room__YVGY8LOK.mp4",
                fake)
    return root


def test_dfd_two_faces_and_a_fake_with_one_swapped_face(dfd_root, tmp_path, demo_config):
    """The DeepFakeDetection layout builds (all in test); both faces of the two-person original give clips; the
    fake's clips are of the swapped face only, labelled fake; the untouched face is dropped and counted."""
    found = build("dfd", dfd_root, tmp_path, demo_config.shards)
    assert set(found) == {"train", "val", "test"} and found["train"]["total_videos"] == 0
    manifest = found["test"]
    assert manifest["videos_by_method"] == {"DeepFakeDetection": 1, "original": 1} and manifest["skipped"] == []
    assert manifest["fake_faces_unchanged"] == 1 and manifest["fakes_without_original"] == 0
    samples = samples_of(tmp_path / "test")
    original = [s for s in samples if s["method"] == "original"]
    fake = [s for s in samples if s["method"] == "DeepFakeDetection"]
    assert {s["face"] for s in original} == {0, 1} and all(s["num_faces"] == 2 and s["cls"] == 0 for s in original)
    assert {s["face"] for s in fake} == {1}, "only the swapped (smaller) face gives fake clips"
    assert all(s["cls"] == 1 and s["face_change"] > demo_config.shards.face_change_threshold for s in fake)
    assert fake[0]["video_id"] == "DeepFakeDetection/01_02__exit_phone_room__YVGY8LOK"
    assert fake[0]["original_id"] == "original/01__exit_phone_room" and fake[0]["detector"] == "original"
    assert all(re.fullmatch(r"dfd-test-(original|deepfakedetection)-\w+-face[01]-clip\d\d", s["key"]) for s in samples)
    _, problems = inspect_shards(tmp_path)
    assert problems == []


def test_unchanged_faces_can_be_labelled_real(dfd_root, tmp_path, demo_config):
    cfg = dataclasses.replace(demo_config.shards, unchanged_faces="real")
    build("dfd", dfd_root, tmp_path, cfg)
    fake = [s for s in samples_of(tmp_path / "test") if s["method"] == "DeepFakeDetection"]
    assert {(s["face"], s["cls"]) for s in fake} == {(0, 0), (1, 1)}


def test_dfdc_test_set_builds_from_its_labels_csv(dfd_root, rotated_twins, tmp_path, demo_config):
    """The DFDC public test set: labels.csv (1 = fake) beside videos/; no original is known, so every face of a
    fake keeps its label and the manifest says so; listed-but-absent and unlisted videos are reported. A phone
    video's rotation is recorded and its boxes are upright."""
    root = tmp_path / "test"
    (root / "videos").mkdir(parents=True)
    shutil.copy(rotated_twins[90], root / "videos/phone.mp4")
    shutil.copy(dfd_root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4", root / "videos/aaaa.mp4")
    shutil.copy(next((dfd_root / "manipulated_sequences").rglob("*.mp4")), root / "videos/bbbb.mp4")
    shutil.copy(root / "videos/aaaa.mp4", root / "videos/extra.mp4")
    (root / "labels.csv").write_text("filename,label\naaaa.mp4,0\nbbbb.mp4,1\ngone.mp4,1\nphone.mp4,0\n")
    manifest = build("dfdc_test", root, tmp_path / "out", demo_config.shards)["test"]
    assert manifest["videos_by_label"] == {"0": 2, "1": 1} and manifest["fakes_without_original"] == 1
    assert manifest["missing"] == ["gone.mp4"] and manifest["unlisted"] == ["videos/extra.mp4"]
    samples = samples_of(tmp_path / "out" / "test")
    assert {(s["face"], s["cls"]) for s in samples if s["video_id"] == "aaaa"} == {(0, 0), (1, 0)}
    fake = [s for s in samples if s["video_id"] == "bbbb"]
    assert fake and all(s["cls"] == 1 and s["face_change"] is None for s in fake)
    phone = [s for s in samples if s["video_id"] == "phone"]
    assert phone and all(s["rotation"] == 90 and s["frame_size"] == [320, 180] for s in phone)
    upright = extract_clips(rotated_twins[0], demo_config.shards, num_clips=demo_config.shards.eval_clips_per_video)
    assert [s["boxes"] for s in phone] == [np.round(c.boxes, 2).tolist() for c in upright.clips]


@pytest.fixture(scope="module")
def real_pair(dfdc_sample, tmp_path_factory):
    """A DFDC chunk made of the real sample: a two-person video (the two sample videos side by side, frontal faces
    of about 120 px) and a fake of it whose right face (face 0, the larger) is swapped for the left one's."""
    root = tmp_path_factory.mktemp("real_pair")
    chunk = root / "dfdc_train_part_0"
    two_person_video(dfdc_sample, chunk / "pair.mp4")
    two_person_video(dfdc_sample, chunk / "pairfake.mp4", swap_right_face=True)
    (chunk / "metadata.json").write_text(json.dumps({"pair.mp4": {"label": "REAL", "split": "train"},
                                                     "pairfake.mp4": {"label": "FAKE", "split": "train",
                                                                      "original": "pair.mp4"}}))
    return root


def test_real_two_person_video_gives_clips_of_both_faces(real_pair):
    """The default detector (MTCNN) finds both real faces; Haar found the right one in 2 of 6 frames."""
    video = extract_clips(real_pair / "dfdc_train_part_0/pair.mp4", ShardsConfig(), num_clips=2)
    assert video.detector == "mtcnn" and len(video.tracks) == 2
    assert {(c.face, c.index) for c in video.clips} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for clip in video.clips:  # face 0 (the larger) is the right person's, face 1 the left one's
        centres = (clip.boxes[:, 0] + clip.boxes[:, 2]) / 2
        assert np.all(centres > 360) if clip.face == 0 else np.all(centres < 360)


def test_real_fake_with_one_swapped_face_labels_only_that_face_fake(real_pair, tmp_path):
    cfg = dataclasses.replace(ShardsConfig(), crop_size=96, clips_per_video=2, eval_clips_per_video=2)
    found = build("dfdc", real_pair, tmp_path, cfg)
    assert sum(m["fake_faces_unchanged"] for m in found.values()) == 1
    samples = [s for name in found for s in samples_of(tmp_path / name)]
    assert {(s["face"], s["cls"]) for s in samples if s["video_id"] == "pair"} == {(0, 0), (1, 0)}
    fake = [s for s in samples if s["video_id"] == "pairfake"]
    assert {(s["face"], s["cls"]) for s in fake} == {(0, 1)}, "only the swapped face gives (fake) clips"
    assert all(s["face_change"] > cfg.face_change_threshold for s in fake)


def test_real_video_without_a_face_is_skipped_with_its_reason(dfdc_sample, tmp_path):
    """The wall beside the person of a real DFDC video: no face, so no clip (never an empty crop)."""
    with av.open(str(dfdc_sample / "dfdc_train_part_0/abofeumbvv.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24")[:360, :480] for _, f in zip(range(30), container.decode(video=0))]
    with pytest.raises(VideoError, match=r"no face found \(\d+ detections in 3 detection frames, none stable\)"):
        extract_clips(write_video(tmp_path / "wall.mp4", frames), ShardsConfig(), num_clips=1)


# ----------------------------------------------------------------------------------------------- layouts


def touch(root: Path, *paths: str) -> None:
    for rel in paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def ffpp_tree(root: Path, compression: str, methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
              splits=("train", "val", "test")) -> Path:
    touch(root, *[f"original_sequences/youtube/{compression}/videos/{i}.mp4" for i in ("000", "001")],
          *[f"manipulated_sequences/{m}/{compression}/videos/000_001.mp4" for m in methods])
    for split in splits:
        (root / f"{split}.json").write_text(json.dumps([["000", "001"]] if split == "train" else []))
    return root


def test_ffpp_requested_folders_without_videos_are_errors_naming_the_path(tmp_path):
    c40 = ffpp_tree(tmp_path / "c40", "c40")
    with pytest.raises(LayoutError, match=re.escape(str(c40 / "original_sequences/youtube/c23/videos")) +
                       r": no \.mp4 videos for the originals at c23 \(found folders: c40"):
        read_layout("ffpp", c40, ShardsConfig())
    full = ffpp_tree(tmp_path / "full", "c23", methods=FFPP_METHODS + ["FaceShifter"])
    typo = dataclasses.replace(ShardsConfig(), ffpp_methods=["Deepfake"])
    with pytest.raises(LayoutError, match=re.escape(str(full / "manipulated_sequences/Deepfake/c23/videos")) +
                       ".*the FF\\+\\+ methods are Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter"):
        read_layout("ffpp", full, typo)
    listings = read_layout("ffpp", full, ShardsConfig())
    assert {v.method for v in listings["train"].videos} == {"original", *FFPP_METHODS}, "FaceShifter is opt-in"
    assert listings["train"].protocol == "standard"
    opted = dataclasses.replace(ShardsConfig(), ffpp_methods=FFPP_METHODS + ["FaceShifter"])
    assert read_layout("ffpp", full, opted)["test"].protocol == "standard+FaceShifter"
    no_splits = ffpp_tree(tmp_path / "no_splits", "c23", splits=("train",))
    with pytest.raises(LayoutError, match=re.escape(str(no_splits / "val.json")) +
                       r": missing.*dataset/splits/ of the FaceForensics repository"):
        read_layout("ffpp", no_splits, ShardsConfig())


def test_videos_named_outside_the_official_scheme_are_skipped_with_their_reason(tmp_path):
    """FF++ fakes must be TARGET_SOURCE, DeepFakeDetection videos ACTOR__scene and TARGET_SOURCE__scene__CODE."""
    ffpp = ffpp_tree(tmp_path / "ffpp", "c23")
    (ffpp / "manipulated_sequences/Deepfakes/c23/videos/stray.mp4").write_bytes(b"")
    skipped = read_layout("ffpp", ffpp, ShardsConfig())["train"].skipped
    assert {"path": "manipulated_sequences/Deepfakes/c23/videos/stray.mp4",
            "reason": "fake name is not TARGET_SOURCE (NNN_MMM)"} in skipped
    dfd = tmp_path / "dfd"
    originals = dfd / "original_sequences/actors/c23/videos"
    fakes = dfd / "manipulated_sequences/DeepFakeDetection/c23/videos"
    for path in (originals / "01__walking.mp4", originals / "walking.mp4", fakes / "01_02__walking__ABC123.mp4",
                 fakes / "01_02.mp4"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    test = read_layout("dfd", dfd, ShardsConfig())["test"]
    assert {v.path: v.original_id for v in test.videos} == {
        "original_sequences/actors/c23/videos/01__walking.mp4": None,
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__walking__ABC123.mp4": "original/01__walking"}
    assert sorted(test.skipped, key=lambda s: s["path"]) == [
        {"path": "manipulated_sequences/DeepFakeDetection/c23/videos/01_02.mp4",
         "reason": "fake name is not TARGET_SOURCE__scene__CODE"},
        {"path": "original_sequences/actors/c23/videos/walking.mp4", "reason": "original name is not ACTOR__scene"}]


def test_ffpp_c40_only_tree_built_with_c23_exits_non_zero(tmp_path):
    """The issue's case, through the command line: no empty shard sets, exit 2 and the expected path."""
    root = ffpp_tree(tmp_path / "FaceForensics++", "c40")
    result = subprocess.run([sys.executable, str(REPO / "shards" / "build.py"), "ffpp", "--root", str(root), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and "original_sequences/youtube/c23/videos: no .mp4 videos" in result.stderr
    assert not (tmp_path / "out").exists()


def test_dfdc_padded_and_nested_part_folders_are_found(tmp_path):
    metadata = json.dumps({"a.mp4": {"label": "REAL", "original": None}})
    for part in ("dfdc_train_part_07", "dfdc_train_part_3/dfdc_train_part_3"):
        touch(tmp_path, f"{part}/a.mp4")
        (tmp_path / part / "metadata.json").write_text(metadata)
    listings = read_layout("dfdc", tmp_path, dataclasses.replace(ShardsConfig(), dfdc_val_fraction=0.0,
                                                                 dfdc_test_fraction=0.0))
    paths = {name: [v.path for v in listing.videos] for name, listing in listings.items() if listing.videos}
    assert paths == {"chunk-03/train": ["dfdc_train_part_3/dfdc_train_part_3/a.mp4"],
                     "chunk-07/train": ["dfdc_train_part_07/a.mp4"]}
    assert all((tmp_path / p).is_file() for ps in paths.values() for p in ps)


def test_celebdf_rearranged_one_level_deeper_is_found_and_an_empty_folder_is_an_error(tmp_path):
    touch(tmp_path, "Celeb-real/videos/id0_0000.mp4", "Celeb-real/videos/id1_0000.mp4",
          "Celeb-synthesis/videos/id0_id1_0000.mp4", "YouTube-real/videos/00000.mp4")
    (tmp_path / "List_of_testing_videos.txt").write_text("1 Celeb-real/id1_0000.mp4\n")
    listings = read_layout("celebdf", tmp_path, ShardsConfig())
    assert [v.path for v in listings["test"].videos] == ["Celeb-real/videos/id1_0000.mp4"]
    fake = next(v for s in listings.values() for v in s.videos if v.label == 1)
    assert fake.original == "Celeb-real/videos/id0_0000.mp4"
    shutil.rmtree(tmp_path / "YouTube-real")
    with pytest.raises(LayoutError, match=re.escape(str(tmp_path / "YouTube-real")) + ": no .mp4 videos"):
        read_layout("celebdf", tmp_path, ShardsConfig())


# ----------------------------------------------------------------------------------------------- builds


def test_truncated_videos_are_reported_and_an_all_skipped_build_is_an_error(tmp_path, corpus, demo_config):
    """Files cut short with their index intact (faststart), at several lengths: each is built with a warning or
    skipped with its reason (truncated, shorter than one clip, no frames), never an unexpected error such as the
    KeyError a second decoding pass that stops earlier than the first used to raise; one of them is reported as
    truncated; a build that skipped every video is an error."""
    cfg = dataclasses.replace(demo_config.shards, dfdc_val_fraction=0.0, dfdc_test_fraction=0.0)
    reasons = []
    for index, source in enumerate(sorted((corpus / "DFDC" / "dfdc_train_part_0").glob("*.mp4"))[:3]):
        faststart_copy(source, tmp_path / f"faststart-{index}.mp4")
        data = (tmp_path / f"faststart-{index}.mp4").read_bytes()
        for fraction in (0.25, 0.3, 0.36, 0.42):
            root = tmp_path / f"raw-{index}-{fraction}"
            chunk = root / "dfdc_train_part_0"
            chunk.mkdir(parents=True)
            (chunk / "cut.mp4").write_bytes(data[:int(len(data) * fraction)])
            (chunk / "metadata.json").write_text(json.dumps({"cut.mp4": {"label": "REAL", "original": None}}))
            try:
                build("dfdc", root, root / "out", cfg)
            except BuildError as err:
                assert "every one of the 1 videos was skipped" in str(err)
            manifest = json.loads((root / "out" / "chunk-00" / "train" / "manifest.json").read_text())
            skipped = [s["reason"] for s in manifest["skipped"]]
            assert skipped or manifest["warnings"], (source.name, fraction)  # never built without a word
            reasons += skipped
    assert all(r.startswith(("truncated", "shorter than one clip", "no decodable video frames")) for r in reasons), \
        reasons
    assert any(r.startswith("truncated") for r in reasons), reasons


def test_a_video_cut_short_after_its_clips_is_built_with_a_warning(rotated_twins, tmp_path, demo_config):
    """A file cut short (index first, as a download broken off) whose planned clips still decode: its clips are
    kept, and the missing frames its header announces are a warning, not silence."""
    faststart_copy(rotated_twins[0], tmp_path / "whole.mp4")
    data = (tmp_path / "whole.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])
    cfg = dataclasses.replace(demo_config.shards, frames_per_clip=4, frame_stride=1)
    whole, cut = (extract_clips(tmp_path / f"{name}.mp4", cfg, num_clips=1) for name in ("whole", "cut"))
    assert whole.info.announced_frames == whole.info.num_frames == 40 and whole.warnings == []
    assert 4 <= cut.info.num_frames < 40 == cut.info.announced_frames and cut.clips
    assert any("of the 40 frames its header announces" in w for w in cut.warnings), cut.warnings


def test_replaced_or_relabelled_videos_are_rebuilt(tmp_path, dfd_root, demo_config):
    chunk = tmp_path / "raw" / "dfdc_train_part_1"
    chunk.mkdir(parents=True)
    original = dfd_root / "original_sequences/actors/c23/videos/01__exit_phone_room.mp4"
    shutil.copy(original, chunk / "a.mp4")
    metadata = {"a.mp4": {"label": "REAL", "original": None}}
    (chunk / "metadata.json").write_text(json.dumps(metadata))
    cfg = dataclasses.replace(demo_config.shards, dfdc_val_fraction=0.0, dfdc_test_fraction=0.0)
    out = tmp_path / "out"

    def labels() -> set[int]:
        return {s["cls"] for s in samples_of(out / "chunk-01" / "train")}

    first = build("dfdc", tmp_path / "raw", out, cfg)["chunk-01/train"]
    assert labels() == {0}
    assert build("dfdc", tmp_path / "raw", out, cfg)["chunk-01/train"] == first, "up to date: nothing changes"
    metadata["a.mp4"]["label"] = "FAKE"
    (chunk / "metadata.json").write_text(json.dumps(metadata))
    assert build("dfdc", tmp_path / "raw", out, cfg)["chunk-01/train"]["videos_by_label"] == {"1": 1}
    assert labels() == {1}
    fake = next((dfd_root / "manipulated_sequences").rglob("*.mp4"))
    shutil.copy(fake, chunk / "a.mp4")  # another video under the same name
    rebuilt = build("dfdc", tmp_path / "raw", out, cfg)["chunk-01/train"]
    assert rebuilt["inputs_sha256"] != first["inputs_sha256"] and rebuilt["shards"] != first["shards"]


# ----------------------------------------------------------------------------------------------- evaluation


def test_video_level_evaluation_aggregates_over_faces():
    """Clips group by face (mean), faces by video: the most suspicious face by default, or their mean; a video is
    fake when one of its faces is (a fake with one swapped face of two)."""
    keys = ["dfdc-chunk00_test-fake-vid-face0-clip00", "dfdc-chunk00_test-fake-vid-face0-clip01",
            "dfdc-chunk00_test-fake-vid-face1-clip00", "dfdc-chunk00_test-original-real-face0-clip00"]
    assert [video_key(k) for k in keys] == ["dfdc-chunk00_test-fake-vid"] * 3 + ["dfdc-chunk00_test-original-real"]
    assert face_key(keys[2]) == "dfdc-chunk00_test-fake-vid-face1"
    assert video_key("ffpp-test-deepfakes-000_003-clip01") == face_key("ffpp-test-deepfakes-000_003-clip01") == \
        "ffpp-test-deepfakes-000_003", "builder version 1 keys: one face per video"
    videos, faces = [video_key(k) for k in keys], [face_key(k) for k in keys]
    labels, probs = [0, 0, 1, 0], [0.1, 0.3, 0.9, 0.4]
    ids, video_labels, scores = aggregate_videos(videos, labels, probs, face_ids=faces)
    assert ids == ["dfdc-chunk00_test-fake-vid", "dfdc-chunk00_test-original-real"]
    assert video_labels.tolist() == [1, 0] and scores.tolist() == pytest.approx([0.9, 0.4])
    _, _, means = aggregate_videos(videos, labels, probs, face_ids=faces, face_aggregation="mean")
    assert means.tolist() == pytest.approx([(0.2 + 0.9) / 2, 0.4])


def test_trainer_refuses_shards_of_an_unknown_builder_version(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "manifest.json").write_text(json.dumps({"builder_version": 3, "shards": []}))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "set" / "manifest.json")) +
                       ": shards of builder version 3; this reader reads versions 1, 2"):
        ShardSet.load(tmp_path, tmp_path / "set")


def test_inspect_reports_a_dataset_whose_shard_sets_are_all_empty(tmp_path):
    """Shards of an earlier build that came out empty (a c40-only FF++ tree built at c23) are a problem."""
    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / "manifest.json").write_text(json.dumps({
            "format": "interceptor-webdataset-shards", "builder_version": 1, "dataset": "ffpp", "shard_set": split,
            "split": split, "chunk": None, "tasks": 1, "total_samples": 0, "total_videos": 0, "samples_by_label": {},
            "samples_by_method": {}, "videos_by_label": {}, "videos_by_method": {}, "clips_without_face": 0,
            "shards": [], "skipped": [], "missing": [], "unlisted": [], "warnings": []}))
    _, problems = inspect_shards(tmp_path)
    assert problems == [f"{tmp_path}: every ffpp shard set is empty (no sample was built)"]
