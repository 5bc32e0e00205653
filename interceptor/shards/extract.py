"""One video in, face clips out: decode, detect, track every face, crop, audio.

:func:`extract_clips` is the whole per-video path of the shard builder, usable on any single video file (the
``predict`` command imports it)::

    from interceptor.config import load_config
    from interceptor.shards import extract_clips

    video = extract_clips("some.mp4", load_config().shards)
    for clip in video.clips:  # every face's clips (clip.face: 0 is the largest face)
        clip.frames  # (T, S, S, 3) uint8 RGB face crops
        clip.audio   # (samples,) int16 mono at shards.audio_rate, or None when the video has no audio

One streaming pass decodes the video: every ``detector.every``-th frame goes to the face detector, the frames of
the planned clips are kept as decoded (so memory is bounded by clips x frames, not by the video's length; only
the crop windows are converted to RGB), and audio is kept only inside the clips' time windows. A second pass
happens only when fewer frames decode than the file announced (truncated or corrupt data): the clips are then
planned over the frames that do decode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from interceptor.schema import ShardsConfig
from interceptor.shards.faces import Detection, FaceDetector, make_detector
from interceptor.shards.track import FaceTrack, build_tracks
from interceptor.shards.video import (AudioChunk, MediaReader, UprightFrame, VideoError, VideoInfo, audio_window,
                                     plan_clips)


@dataclass
class Clip:
    """One sample: T crops of one face in evenly strided frames, their boxes, and the audio playing meanwhile."""

    face: int  # the face track it follows (0: the largest face)
    index: int  # position among the video's planned clips (stable even when a clip is dropped)
    frame_indices: list[int]
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB
    boxes: np.ndarray  # (T, 4) face boxes x0, y0, x1, y1 in source pixels
    crop_boxes: np.ndarray  # (T, 4) int: the square windows cut out (parts outside the frame are black)
    scores: np.ndarray  # (T,) detection scores, interpolated between detection frames
    audio: np.ndarray | None  # (samples,) int16 mono, None when the video has no audio track


@dataclass
class VideoClips:
    """Everything :func:`extract_clips` learnt about one video."""

    info: VideoInfo
    clips: list[Clip]  # face by face, each face's clips in order
    tracks: list[FaceTrack]  # one per face, largest first
    detector: str  # the backend that found the boxes, or "original" when they were reused
    has_audio: bool
    clips_without_face: int = 0  # planned clips (of every face) dropped because the face's track does not cover them
    warnings: list[str] = field(default_factory=list)

    def clip_times(self, clip: Clip) -> tuple[float, float]:
        """Start and end (seconds) of the clip: from its first frame to the end of its last frame."""
        return clip.frame_indices[0] / self.info.fps, (clip.frame_indices[-1] + 1) / self.info.fps


@dataclass
class _Pass:
    """What one decoding pass collected."""

    count: int = 0  # frames decoded
    end: int = 0  # one past the last frame index seen
    frames: dict[int, UprightFrame] = field(default_factory=dict)
    detections: dict[int, list[Detection]] = field(default_factory=dict)
    audio: list[np.ndarray] | None = None
    audio_found: bool = False
    error: str | None = None
    audio_error: str | None = None


def _decode(reader: MediaReader, cfg: ShardsConfig, plan: list[list[int]], detector: FaceDetector | None) -> _Pass:
    """One streaming pass: detections every k frames, RGB frames of the plan, audio of the clip windows.

    Without a plan every frame is decoded (to count them); otherwise only what is needed.
    """
    every = cfg.detector.every
    clip_frames = {i for clip in plan for i in clip}
    wanted = (lambda i: i in clip_frames or (detector is not None and i % every == 0)) if plan else None
    result = _Pass()
    info = reader.info
    windows = [audio_window(c[0], c[-1], info.fps, cfg.audio_rate) for c in plan] if info.has_audio else []
    result.audio = [np.zeros(end - start, np.int16) for start, end in windows] if info.has_audio else None
    for item in reader.read(wanted):
        if isinstance(item, AudioChunk):
            result.audio_found = True
            _copy_overlaps(item, windows, result.audio)
            continue
        index, frame = item
        if detector is not None and index % every == 0:
            result.detections[index] = detector(frame, index)
        if index in clip_frames:
            result.frames[index] = frame  # the decoded picture; only the crop windows are converted to RGB
        result.count += 1
        result.end = max(result.end, index + 1)
    result.error, result.audio_error = reader.error, reader.audio_error
    return result


def _copy_overlaps(chunk: AudioChunk, windows: list[tuple[int, int]], buffers: list[np.ndarray]) -> None:
    end = chunk.start + len(chunk.samples)
    for (lo, hi), buffer in zip(windows, buffers):
        start, stop = max(lo, chunk.start), min(hi, end)
        if start < stop:
            buffer[start - lo:stop - lo] = chunk.samples[start - chunk.start:stop - chunk.start]


def square_crop_box(box: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """The square window around a face box: its longer side plus ``margin`` of it on each side, whole pixels."""
    x0, y0, x1, y1 = box
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))))
    left = int(round((x0 + x1) / 2 - side / 2))
    top = int(round((y0 + y1) / 2 - side / 2))
    return left, top, left + side, top + side


def crop_square(frame: UprightFrame, window: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Cut ``window`` out of ``frame`` as RGB (black outside the frame) and resize it to ``size`` x ``size``.

    Shrinking uses area averaging (no aliasing), enlarging bicubic interpolation.
    """
    left, top, right, bottom = window
    side = right - left
    patch = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, left), max(0, top), min(frame.width, right), min(frame.height, bottom)
    if sx0 < sx1 and sy0 < sy1:
        patch[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = frame.region(sx0, sy0, sx1, sy1)
    if side == size:
        return patch
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def extract_clips(path: str | os.PathLike, cfg: ShardsConfig, tracks: list[FaceTrack] | None = None, *,
                  num_clips: int | None = None, dataset_path: str | None = None) -> VideoClips:
    """Face clips of one video file: every face's clips at the same planned frames.

    ``tracks``: face tracks to reuse instead of detecting (a fake's original's, from :attr:`VideoClips.tracks`);
    ignored when their frame size differs from this video's. ``num_clips``: clips to sample (default
    ``cfg.clips_per_video``). ``dataset_path``: the video's path relative to its dataset root, which the
    ``boxes`` detector backend looks up.

    Raises :class:`VideoError` with the reason when the video gives no clip: unreadable, no decodable frames,
    shorter than one clip, no face.
    """
    num_clips = num_clips or cfg.clips_per_video

    def plan_for(frames: int) -> list[list[int]]:
        return plan_clips(frames, num_clips, cfg.frames_per_clip, cfg.frame_stride)

    reader = MediaReader(path, cfg.audio_rate, cfg.decode_threads)
    info = reader.info
    if tracks and (tracks[0].width, tracks[0].height) != (info.width, info.height):
        tracks = None

    def detector() -> FaceDetector | None:  # a fresh one for each pass: detectors follow faces from call to call
        return None if tracks else make_detector(cfg.detector, dataset_path)

    plan = plan_for(info.num_frames)
    decoded = _decode(reader, cfg, plan, detector())
    if decoded.count == 0:
        raise VideoError("no decodable video frames" + (f" ({decoded.error})" if decoded.error else ""))
    # the first pass's truncation (a second pass may stop before the damage): an error, or planned frames missing
    missing = bool(plan) and any(i not in decoded.frames for clip in plan for i in clip)
    stopped = (f"decoding stopped at frame {decoded.end} of {info.num_frames}: {decoded.error or 'end of data'}"
               if decoded.error or missing else None)
    if info.missing_frames:  # cut short where no planned frame is: the clips decode, the file is still incomplete
        stopped = (f"{stopped + '; ' if stopped else ''}the file holds {info.num_frames} of the "
                   f"{info.announced_frames} frames its header announces")
    if not plan or missing:  # no frame count in the header, or fewer frames than announced
        plan = plan_for(decoded.end)
        if not plan:
            span = (cfg.frames_per_clip - 1) * cfg.frame_stride + 1
            raise VideoError(f"shorter than one clip: {decoded.end} frames, a clip spans {span}")
        decoded = _decode(reader, cfg, plan, detector())
    # A truncated file's second pass may stop a few frames earlier than the first (frames still in the decoder
    # when the data ends are lost): clips reaching past the frames decoded are dropped, and counted.
    whole = [all(i in decoded.frames for i in clip) for clip in plan]
    if not any(whole):
        raise VideoError(f"truncated: {stopped or 'decoding stopped early'}; no whole clip decodes")
    if not all(whole):
        stopped = f"{stopped or 'decoding stopped early'}; {whole.count(False)} of {len(plan)} clips lost"

    warnings = [stopped] if stopped else []
    if decoded.audio_error:
        warnings.append(f"audio decoding stopped: {decoded.audio_error}")
    if tracks:
        source = "original"
    else:
        num_frames = max(decoded.end, info.num_frames)
        tracks = build_tracks(decoded.detections, num_frames, cfg.detector, info.width, info.height)
        if not tracks:
            raise VideoError(f"no face found ({sum(map(len, decoded.detections.values()))} detections in "
                             f"{len(decoded.detections)} detection frames, none stable)")
        source = cfg.detector.backend

    has_audio = info.has_audio and decoded.audio_found
    clips = []
    for face, track in enumerate(tracks):
        for index, frame_indices in enumerate(plan):
            if not whole[index]:
                continue
            clip_boxes = np.stack([track.box(i) for i in frame_indices])
            if np.isnan(clip_boxes).any():
                continue
            windows = [square_crop_box(b, cfg.margin) for b in clip_boxes]
            frames = np.stack([crop_square(decoded.frames[i], w, cfg.crop_size)
                               for i, w in zip(frame_indices, windows)])
            clips.append(Clip(face=face, index=index, frame_indices=frame_indices, frames=frames, boxes=clip_boxes,
                              crop_boxes=np.array(windows, dtype=np.int64),
                              scores=np.array([track.score(i) for i in frame_indices]),
                              audio=decoded.audio[index] if has_audio else None))
    if not clips:
        raise VideoError(f"no face in any of the {len(plan)} clips (the face tracks cover frames "
                         f"{', '.join(_coverage(t) for t in tracks)})")
    return VideoClips(info=info, clips=clips, tracks=tracks, detector=source, has_audio=has_audio,
                      clips_without_face=sum(whole) * len(tracks) - len(clips), warnings=warnings)


def _coverage(track: FaceTrack) -> str:
    covered = np.flatnonzero(~np.isnan(track.boxes[:, 0]))
    return f"{covered[0]}-{covered[-1]}" if len(covered) else "none"
