"""Pseudo-fakes (``data.pseudo_fakes``): each family alters the face, not its surroundings, and the training
stream mixes them in as fakes, deterministically."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import torch

from interceptor.config import load_config
from interceptor.data.shard_sets import DataError, resolve_shard_sets
from interceptor.data.streams import TrainStream
from interceptor.inputs import InputKind, InputSpec, model_inputs, stack_inputs, clip_item
from interceptor.models.registry import pseudo_fake_maker
from interceptor.pseudo_fakes import draw_mask, face_masks, jpeg_round_trip

MARGIN = 0.333
SIZE = 96


def textured_clip(frames: int = 4, seed: int = 0) -> np.ndarray:
    """A dim, noisy clip with smooth shading: (T, 96, 96, 3) uint8."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = 60 + 40 * np.sin(3 * xs) * np.cos(2 * ys)
    clip = base[None, ..., None] + rng.normal(0, 6, (frames, SIZE, SIZE, 3))
    return np.clip(clip, 0, 255).astype(np.uint8)


def face_and_border(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre of the face box and the outer border of the crop (outside any mask)."""
    return image[..., 38:58, 38:58, :], np.concatenate([image[..., :8, :, :], image[..., -8:, :, :]], axis=-3)


def made(specialist: str, clip: np.ndarray, seed: int, audio=None, other_audio=None):
    """``specialist``'s pseudo-fake of a (T, H, W, 3) uint8 clip as the loader draws and the device makes it:
    (uint8 frames, audio), or None."""
    family = pseudo_fake_maker(specialist)
    drawn = family.draw(clip, audio, np.random.default_rng(seed), MARGIN, other_audio)
    if drawn is None:
        return None
    params, audio = drawn
    levels = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float()
    frames = family.apply(levels, torch.from_numpy(params)[None])[0]
    return frames.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy(), audio


def test_face_mask_covers_the_face_box_and_fades_out():
    params = torch.tensor([draw_mask(np.random.default_rng(seed), MARGIN) for seed in range(4)])
    masks = face_masks(params, SIZE, SIZE)[:, 0]
    assert masks.shape == (4, SIZE, SIZE) and masks.dtype == torch.float32
    for mask in masks:
        assert mask[48, 48] > 0.95 and mask[:4].max() < 0.05 and mask[:, :4].max() < 0.05
        assert 0.05 < mask[48, 25] < 0.95 or 0.05 < mask[25, 48] < 0.95  # a soft edge on the face box side


@pytest.mark.parametrize("specialist", ["ll", "bg", "cm", "rr", "tm"])
def test_visual_families_change_the_face_and_keep_the_surroundings(specialist):
    clip = textured_clip()
    for seed in range(5):
        frames, audio = made(specialist, clip, seed)
        assert frames.shape == clip.shape and frames.dtype == np.uint8 and audio is None
        face_change = np.abs(face_and_border(frames)[0].astype(int) - face_and_border(clip)[0]).mean()
        border_change = np.abs(face_and_border(frames)[1].astype(int) - face_and_border(clip)[1]).mean()
        assert face_change > 1.0 and border_change < 0.25, (seed, face_change, border_change)


def test_temporal_jitter_moves_the_face_differently_in_every_frame():
    still = np.repeat(textured_clip(1), 4, axis=0)
    frames, _ = made("tm", still, 1)
    face = face_and_border(frames)[0].astype(float)
    assert np.abs(np.diff(face, axis=0)).mean() > 0.5  # the real clip has no change between frames at all


def test_the_jpeg_round_trip_is_libjpegs_within_a_level_or_two():
    """The device's JPEG (DCT quantization by libjpeg's tables, 4:2:0 chroma) against OpenCV's libjpeg at the
    qualities CM's pseudo-fakes use: the same 8x8 blocking, not a blur of another kind."""
    image = textured_clip(1, seed=3)[0]
    for quality in (8, 25, 44):
        ours = jpeg_round_trip(torch.from_numpy(image).permute(2, 0, 1)[None].float(), quality)[0]
        ours = ours.permute(1, 2, 0).numpy()
        theirs = cv2.imdecode(cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                              cv2.IMREAD_COLOR_RGB).astype(np.float32)
        loss = np.abs(theirs - image).mean()
        assert np.abs(ours - theirs).mean() < 0.35 * loss, (quality, np.abs(ours - theirs).mean(), loss)


def test_audio_mismatch_needs_audio_and_leaves_the_frames():
    clip = textured_clip()
    assert made("av", clip, 0) is None
    audio = (np.sin(np.linspace(0, 60, 10240)) * 8000).astype(np.int16)
    other = (np.cos(np.linspace(0, 13, 5000)) * 8000).astype(np.int16)
    for seed in range(6):
        frames, mismatched = made("av", clip, seed, audio, other)
        assert (frames == clip).all() and mismatched.shape == audio.shape and mismatched.dtype == np.int16
        assert np.abs(mismatched.astype(int) - audio).mean() > 1000


def test_the_device_makes_the_drawn_pseudo_fakes_of_the_marked_samples_only():
    """The loader draws (the batch carries ``pseudo_fake`` and ``pseudo``), ``model_inputs`` makes them on the
    device: marked samples altered exactly as the family's ``apply``, in whole levels, the others untouched."""
    spec = InputSpec(InputKind.FRAME, SIZE, 1)
    family = pseudo_fake_maker("ll")
    clip = textured_clip(1)
    items = [clip_item(clip, None, spec, np.random.default_rng(seed),
                       pseudo_fake=(lambda f, a, r: family.draw(f, a, r, MARGIN)) if seed % 2 else
                       (lambda f, a, r: None)) for seed in range(4)]
    batch = stack_inputs(items, spec)
    assert batch["pseudo_fake"].tolist() == [False, True, False, True] and batch["pseudo"].shape == (4, 10)
    assert (batch["pixels"].numpy() == clip).all()  # the loader ships the real frames
    image = model_inputs(batch, spec, torch.device("cpu"), pseudo_fake=family)["image"]
    real = torch.from_numpy(clip[0]).permute(2, 0, 1).float() / 255
    assert torch.equal(image[0], real) and torch.equal(image[2], real)
    for row in (1, 3):
        expected = family.apply(real[None, None] * 255, batch["pseudo"][row:row + 1])[0, 0].round() / 255
        off = (image[row] - expected).abs() * 255  # a level where the batch's float sums round the other way
        assert off.max() < 1 + 1e-4 and off.mean() < 0.01 and (image[row] - real).abs().mean() > 1 / 255
        assert torch.allclose(image[row] * 255, (image[row] * 255).round(), atol=1e-4)  # whole levels, as reals
    assert torch.equal(model_inputs(batch, spec, torch.device("cpu"))["image"][1], real)  # without the family


def test_unknown_specialist_names_the_key():
    with pytest.raises(KeyError, match="data.pseudo_fakes: unknown specialist 'xx'"):
        pseudo_fake_maker("xx")


def stream_batches(shards_root, overrides, count=6, specialist="ll"):
    cfg = load_config("demo", ["data.batch_size=8", "data.shuffle_buffer=16", *overrides])
    sets = resolve_shard_sets(shards_root, ["ffpp/train"], "train")
    spec = InputSpec(InputKind.FRAME, 64, 1)
    stream = TrainStream(sets, cfg.data, spec, False, 0, 0, 0, 1, pseudo_fake=pseudo_fake_maker(specialist))
    batches = iter(stream)
    return [next(batches) for _ in range(count)]


def test_stream_mixes_pseudo_fakes_into_the_fake_share_deterministically(shards_root):
    plain = stream_batches(shards_root, ["data.pseudo_fakes=0"])
    mixed = stream_batches(shards_root, ["data.pseudo_fakes=0.5"])
    again = stream_batches(shards_root, ["data.pseudo_fakes=0.5"])
    labels = np.concatenate([b["label"].numpy() for b in mixed])
    fakes_from_reals = sum(v.split("-")[2] == "original" and label == 1
                           for b in mixed for v, label in zip(b["video"], b["label"].tolist()))
    assert 0.3 < labels.mean() < 0.7  # class_mix still holds: pseudo-fakes replace some fakes
    assert fakes_from_reals >= 5  # about a quarter of 48 samples
    assert not any(v.split("-")[2] == "original" and label == 1
                   for b in plain for v, label in zip(b["video"], b["label"].tolist()))
    for first, second in zip(mixed, again):
        assert first["key"] == second["key"] and (first["pixels"] == second["pixels"]).all()
        assert (first["label"] == second["label"]).all() and torch.equal(first["pseudo"], second["pseudo"])
        assert torch.equal(first["pseudo_fake"], first["label"].bool() & torch.tensor(
            [v.split("-")[2] == "original" for v in first["video"]]))


def test_pseudo_fakes_need_the_class_stream(shards_root):
    with pytest.raises(DataError, match="data.pseudo_fakes=0.5 needs data.balance=stream"):
        stream_batches(shards_root, ["data.pseudo_fakes=0.5", "data.balance=loss"], count=1)
