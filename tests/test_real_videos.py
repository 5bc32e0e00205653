"""Videos as they come (issue 11): display rotation, several faces, the standard dataset protocols, and builds
that cannot silently come out empty. Small hand-made videos (tests/scenes.py), not the corpus."""

from __future__ import annotations

import numpy as np
import pytest

from interceptor.shards import extract_clips

from scenes import render_scene, write_video


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
