"""The synthetic forgery corpus: official layouts, decodable media, determinism and measurable artifacts."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import artifact_measures as am

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")


def relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def fakes_with(manifest: dict, family: str) -> list[tuple[str, dict]]:
    return [(p, e) for p, e in manifest.items() if e["label"] == 1 and family in e["families"]]


# ------------------------------------------------------------------------------------------------ layouts


def test_ffpp_layout_and_splits(corpus, corpus_manifest):
    root = corpus / "FaceForensics++"
    original = re.compile(r"original_sequences/youtube/c23/videos/(\d{3})\.mp4")
    fake = re.compile(rf"manipulated_sequences/({'|'.join(FFPP_METHODS)})/c23/videos/(\d{{3}})_(\d{{3}})\.mp4")
    originals, fakes = set(), []
    for rel in relative_files(root):
        if rel in ("train.json", "val.json", "test.json"):
            continue
        if m := original.fullmatch(rel):
            originals.add(m.group(1))
        elif m := fake.fullmatch(rel):
            fakes.append(m.groups())
        else:
            pytest.fail(f"unexpected file in FF++ layout: {rel}")
    assert len(originals) >= 20 and len(fakes) >= 20
    assert {m for m, _, _ in fakes} == set(FFPP_METHODS)

    split_of = {}
    for split in ("train", "val", "test"):
        pairs = json.loads((root / f"{split}.json").read_text())
        assert pairs and all(isinstance(p, list) and len(p) == 2 and all(re.fullmatch(r"\d{3}", i) for i in p)
                             for p in pairs)
        for pair in pairs:
            for vid in pair:
                assert vid not in split_of, f"FF++ id {vid} is in both {split_of[vid]} and {split}"
                split_of[vid] = split
    assert set(split_of) == originals
    for method, target, source in fakes:
        assert target in originals and source in originals
        assert split_of[target] == split_of[source], "a fake's two ids belong to the same official pair"
        entry = corpus_manifest[f"FaceForensics++/manipulated_sequences/{method}/c23/videos/{target}_{source}.mp4"]
        assert entry["original"] == f"FaceForensics++/original_sequences/youtube/c23/videos/{target}.mp4"
        assert entry["label"] == 1 and entry["families"]


def test_celebdf_layout_and_test_list(corpus, corpus_manifest):
    root = corpus / "Celeb-DF-v2"
    patterns = [r"Celeb-real/id\d+_\d{4}\.mp4", r"Celeb-synthesis/id\d+_id\d+_\d{4}\.mp4", r"YouTube-real/\d{5}\.mp4"]
    files = [f for f in relative_files(root) if f != "List_of_testing_videos.txt"]
    for rel in files:
        assert any(re.fullmatch(p, rel) for p in patterns), f"unexpected file in Celeb-DF layout: {rel}"
    for folder in ("Celeb-real", "Celeb-synthesis", "YouTube-real"):
        assert any(f.startswith(folder + "/") for f in files)

    lines = (root / "List_of_testing_videos.txt").read_text().splitlines()
    assert 0 < len(lines) < len(files)
    for line in lines:
        label, rel = re.fullmatch(r"([01]) (\S+\.mp4)", line).groups()
        assert (root / rel).is_file()
        # The official convention is inverted: 1 = real, 0 = fake.
        assert corpus_manifest[f"Celeb-DF-v2/{rel}"]["label"] == 1 - int(label)
    for rel in files:
        if rel.startswith("Celeb-synthesis/"):
            target, _, clip = Path(rel).stem.split("_")
            assert corpus_manifest[f"Celeb-DF-v2/{rel}"]["original"] == f"Celeb-DF-v2/Celeb-real/{target}_{clip}.mp4"


def test_dfdc_layout_and_metadata(corpus, corpus_manifest):
    root = corpus / "DFDC"
    chunks = sorted(p.name for p in root.iterdir())
    assert chunks == [f"dfdc_train_part_{k}" for k in range(10)]
    for chunk in chunks:
        metadata = json.loads((root / chunk / "metadata.json").read_text())
        videos = sorted(p.name for p in (root / chunk).glob("*.mp4"))
        assert sorted(metadata) == videos
        for name, info in metadata.items():
            assert re.fullmatch(r"[a-z]{10}\.mp4", name)
            assert set(info) == {"label", "split", "original"}
            assert info["split"] == "train" and info["label"] in ("FAKE", "REAL")
            entry = corpus_manifest[f"DFDC/{chunk}/{name}"]
            assert entry["label"] == (1 if info["label"] == "FAKE" else 0)
            if info["label"] == "FAKE":
                assert metadata[info["original"]]["label"] == "REAL"
            else:
                assert info["original"] is None
    assert any(len(e["faces"]) == 2 for e in corpus_manifest.values() if e["dataset"] == "dfdc"), "two-person videos"


def test_boxes_files_cover_every_frame(corpus, corpus_manifest):
    for dataset, directory in (("ffpp", "FaceForensics++"), ("celebdf", "Celeb-DF-v2"), ("dfdc", "DFDC")):
        boxes = json.loads((corpus / "boxes" / f"{dataset}.json").read_text())
        for rel, per_frame in boxes.items():
            entry = corpus_manifest[f"{directory}/{rel}"]
            assert len(per_frame) == entry["frames"]
            assert all(len(frame_boxes) == len(entry["faces"]) for frame_boxes in per_frame)


# ------------------------------------------------------------------------------------------------ media


def test_every_video_decodes_with_pyav_and_opencv(corpus, corpus_manifest):
    assert len(corpus_manifest) == len(list(corpus.rglob("*.mp4")))
    for rel, entry in corpus_manifest.items():
        path = corpus / rel
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            frames = sum(1 for _ in container.decode(video=0))
            audio = list(container.streams.audio)
        assert frames == entry["frames"], rel
        if entry["dataset"] == "dfdc":
            assert len(audio) == 1 and audio[0].codec_context.name == "aac", f"{rel}: DFDC has AAC audio"
        else:
            assert not audio, f"{rel}: FF++ and Celeb-DF have no audio"
        capture = cv2.VideoCapture(str(path))
        count = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            assert image.shape == (entry["height"], entry["width"], 3)
            count += 1
        capture.release()
        assert count == entry["frames"], rel


def corpus_digest(root: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in relative_files(root)}


@pytest.mark.slow  # generates three corpora
def test_same_seed_gives_the_same_corpus(tmp_path):
    small = ["--videos", "8", "--seconds", "1", "--size", "72", "synth.dfdc_chunks=2"]
    run = [sys.executable, "-m", "interceptor", "synth"]
    subprocess.run([*run, "--out", str(tmp_path / "a"), "--seed", "5", *small], check=True, capture_output=True)
    subprocess.run([*run, "--out", str(tmp_path / "b"), "--seed", "5", *small], check=True, capture_output=True)
    subprocess.run([*run, "--out", str(tmp_path / "c"), "--seed", "6", *small], check=True, capture_output=True)
    a, b, c = (corpus_digest(tmp_path / d) for d in "abc")
    assert len(a) > 20 and a == b
    assert a != c
    assert not any(name.endswith(".tmp") for name in a)


def test_a_group_renders_to_the_same_bytes_whatever_the_process_rendered_before(tmp_path):
    """libx264 reads memory it never wrote: without filled allocations, a group's bytes depended on the groups its
    worker had encoded before it, so the corpus depended on how the pool scheduled them."""
    from interceptor.schema import SynthConfig
    from interceptor.synth.corpus import plan_corpus, render_group

    cfg = SynthConfig(videos=8, seconds=1.0, size=180, dfdc_chunks=2)
    groups = plan_corpus(cfg)[0]
    first, other = groups[0], groups[-1]

    def render(group, folder: str) -> list[str]:
        render_group(group, cfg, str(tmp_path / folder))
        return [hashlib.sha256((tmp_path / folder / v.path).read_bytes()).hexdigest() for v in group.videos]

    alone = render(first, "a")
    render(other, "b")
    assert render(first, "c") == alone


# ------------------------------------------------------------------------------------------------ artifacts


def paired_frames(corpus: Path, rel: str, entry: dict, every: int = 1):
    fake = am.decode_frames(corpus / rel, every)
    original = am.decode_frames(corpus / entry["original"], every)
    return original, fake, entry["faces"][0][::every]


def test_cm_fakes_are_blockier_than_their_originals(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "CM")
    assert len(fakes) >= 20
    for rel, entry in fakes:
        original, fake, boxes = paired_frames(corpus, rel, entry, every=3)
        assert am.blockiness(fake, boxes) > am.blockiness(original, boxes) + 0.02, rel


def test_rr_fakes_have_less_high_frequency_energy(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "RR")
    assert len(fakes) >= 10
    for rel, entry in fakes:
        original, fake, boxes = paired_frames(corpus, rel, entry, every=3)
        assert am.high_frequency(fake, boxes) < 0.85 * am.high_frequency(original, boxes), rel


def test_tm_fakes_change_more_from_frame_to_frame(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "TM")
    assert len(fakes) >= 10
    for rel, entry in fakes:
        original, fake, boxes = paired_frames(corpus, rel, entry)
        assert am.temporal_change(fake, boxes) > 1.3 * am.temporal_change(original, boxes), rel


def test_av_fakes_audio_follows_the_mouth_worse(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "AV")
    assert len(fakes) >= 10
    for rel, entry in fakes:
        original, fake, boxes = paired_frames(corpus, rel, entry)
        rate = 16000
        sync_real = am.av_sync(original, boxes, entry["mouth_in_box"], am.decode_audio(corpus / entry["original"], rate),
                               rate, entry["fps"])
        sync_fake = am.av_sync(fake, boxes, entry["mouth_in_box"], am.decode_audio(corpus / rel, rate), rate,
                               entry["fps"])
        assert sync_real > 0.6, entry["original"]
        assert sync_fake < sync_real - 0.3, rel


def test_ll_fakes_mismatch_luminance_and_noise_in_low_light(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "LL")
    assert len(fakes) >= 10
    for rel, entry in fakes:
        assert entry["low_light"], rel
        original, fake, boxes = paired_frames(corpus, rel, entry, every=2)
        ratio = am.face_to_background_luma(fake, boxes) / am.face_to_background_luma(original, boxes)
        assert abs(np.log(ratio)) > np.log(1.15), f"{rel}: face/background luminance ratio changed by {ratio:.3f}"

        assert am.face_noise(fake, boxes) < 0.9 * am.face_noise(original, boxes), f"{rel}: face noise matches the scene"


def test_bg_fakes_light_the_face_differently_from_the_scene(corpus, corpus_manifest):
    fakes = fakes_with(corpus_manifest, "BG")
    assert len(fakes) >= 10
    for rel, entry in fakes:
        original, fake, boxes = paired_frames(corpus, rel, entry, every=3)
        change = np.abs(am.face_lighting(fake, boxes) - am.face_lighting(original, boxes))
        mode = entry["families"]["BG"]["mode"]
        # temperature: log red/blue ratio moves; direction: log right/left luma ratio moves.
        assert change[0 if mode == "temperature" else 1] > 0.1, f"{rel}: {mode} change {change}"


def test_originals_carry_no_artifacts(corpus_manifest):
    for rel, entry in corpus_manifest.items():
        if entry["label"] == 0:
            assert entry["families"] == {} and entry["original"] is None, rel
        else:
            assert entry["families"], f"{rel}: every fake carries at least one artifact family"
